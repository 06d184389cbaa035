//! What the translation does not honour yet (TRL0001, Trellis's own code): every field and
//! every kind in [`UNSUPPORTED`] that an object sets is reported once per exact field path,
//! so that nothing a user wrote is dropped silently (DESIGN.md, principle 1).
//!
//! The table is the single list: each entry was confirmed by reading the control plane's
//! translation (`crates/trellis-control-plane/src/translate`), and the entry goes away in
//! the commit that makes the translation honour it.
//!
//! Patterns are written with Istio's YAML names and matched against the object's proto3
//! JSON (which leaves unset fields out): `a.b` names fields, `[]` any item of a list,
//! `[x.y=V]` the items whose `x.y` is `V` (ASCII case ignored), `**` any depth (zero or
//! more fields or items). An empty pattern means the whole object: the kind itself is not
//! implemented.

use serde_json::Value;
use trellis_api::Kind;

use super::context::origin;
use super::messages as m;
use super::{Context, Message};

/// Where an entry looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Kind(Kind),
    /// The mesh config given to the control plane (`--mesh-config`).
    MeshConfig,
}

/// When a field found at an entry's pattern is reported.
#[derive(Debug, Clone, Copy)]
pub enum When {
    /// Whenever it is set.
    Set,
    /// When its value is one of these (an enum name, a string, `true`...).
    OneOf(&'static [&'static str]),
    /// When it is a string starting with this.
    StartsWith(&'static str),
    /// When it is a list of more than one item.
    Several,
}

/// One thing the translation does not honour.
#[derive(Debug, Clone, Copy)]
pub struct Unsupported {
    pub target: Target,
    /// The field's pattern ([module docs](self)); empty for the whole kind.
    pub field: &'static str,
    pub when: When,
    /// What happens instead, for the message.
    pub reason: &'static str,
}

const fn kind(kind: Kind, reason: &'static str) -> Unsupported {
    Unsupported {
        target: Target::Kind(kind),
        field: "",
        when: When::Set,
        reason,
    }
}

const fn field(kind: Kind, field: &'static str, when: When, reason: &'static str) -> Unsupported {
    Unsupported {
        target: Target::Kind(kind),
        field,
        when,
        reason,
    }
}

const fn mesh(field: &'static str, reason: &'static str) -> Unsupported {
    Unsupported {
        target: Target::MeshConfig,
        field,
        when: When::Set,
        reason,
    }
}

use When::*;

const DR: Kind = Kind::DestinationRule;
const VS: Kind = Kind::VirtualService;
const GW: Kind = Kind::Gateway;
const SC: Kind = Kind::Sidecar;

const GW_SKIPPED: &str = "the server gets no listener";

/// Everything the translation does not honour today. Remove an entry when it lands.
pub const UNSUPPORTED: &[Unsupported] = &[
    // Whole kinds: nothing of theirs reaches the proxies.
    kind(
        Kind::Telemetry,
        "no metrics, access log or tracing configuration is applied",
    ),
    kind(Kind::WasmPlugin, "no Wasm plugin is loaded"),
    kind(Kind::TrafficExtension, "no extension is loaded"),
    kind(
        Kind::EnvoyFilter,
        "no patch is applied to the generated configuration",
    ),
    kind(
        Kind::ProxyConfig,
        "proxy settings come from the proxy's own command line",
    ),
    kind(
        Kind::WorkloadGroup,
        "workloads register from their proxy's metadata alone",
    ),
    // DestinationRule: clusters/traffic_policy.rs keeps only loadBalancer, connectionPool,
    // outlierDetection and tls; `**` covers the top level, portLevelSettings and subsets.
    field(
        DR,
        "spec.**.loadBalancer.localityLbSetting",
        Set,
        "endpoints are balanced without regard to locality (no distribute, failover or priorities)",
    ),
    field(
        DR,
        "spec.**.loadBalancer.zoneAwareLbSetting",
        Set,
        "endpoints are balanced without regard to zones",
    ),
    field(DR, "spec.**.tunnel", Set, "connections are not tunneled"),
    field(
        DR,
        "spec.**.proxyProtocol",
        Set,
        "no PROXY protocol header is sent upstream",
    ),
    field(
        DR,
        "spec.**.retryBudget",
        Set,
        "retries are limited by connectionPool.http.maxRetries only",
    ),
    field(
        DR,
        "spec.**.outlierDetection.outlierDetectionHttpErrorCodes",
        Set,
        "only 5xx and gateway errors count towards ejection",
    ),
    field(
        DR,
        "spec.workloadSelector",
        Set,
        "the rule applies to every proxy that sees it, not only to the selected workloads",
    ),
    // AuthorizationPolicy: translate/authz calls no external authorizer.
    field(
        Kind::AuthorizationPolicy,
        "spec.action",
        OneOf(&["CUSTOM"]),
        "no external authorizer is called; requests the rules match are denied, as Istio does for a provider it cannot use",
    ),
    // RequestAuthentication: jwks.rs fetches plain http:// only.
    field(
        Kind::RequestAuthentication,
        "spec.jwtRules[].jwksUri",
        StartsWith("https://"),
        "only http:// JWKS URIs are fetched; tokens of this issuer are rejected unless the keys are given inline in jwks",
    ),
    // VirtualService: listeners/tcp.rs matches port, sourceLabels, sourceNamespace and
    // gateways (and sniHosts for tls).
    field(
        VS,
        "spec.tcp[].match[].destinationSubnets",
        Set,
        "the match ignores the destination address",
    ),
    field(
        VS,
        "spec.tcp[].match[].sourceSubnet",
        Set,
        "the match ignores the source address",
    ),
    field(
        VS,
        "spec.tls[].match[].destinationSubnets",
        Set,
        "the match ignores the destination address",
    ),
    // Gateway: listeners/gateway.rs listens on 0.0.0.0 and skips the servers it cannot serve.
    field(GW, "spec.servers[].bind", Set, "the listener binds 0.0.0.0"),
    field(
        GW,
        "spec.servers[].tls.mode",
        OneOf(&["ISTIO_MUTUAL", "AUTO_PASSTHROUGH"]),
        GW_SKIPPED,
    ),
    field(
        GW,
        "spec.servers[port.protocol=TLS].tls.mode",
        OneOf(&["SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL"]),
        "TLS termination on a TLS (TCP) port is not translated; the server gets no listener",
    ),
    field(
        GW,
        "spec.servers[].tls.credentialNames",
        Several,
        "only the first credential is served",
    ),
    field(
        GW,
        "spec.servers[].tls.tlsCertificates",
        Set,
        "no certificate from this list is served",
    ),
    field(
        GW,
        "spec.servers[].tls.minProtocolVersion",
        Set,
        "Envoy's default TLS versions apply",
    ),
    field(
        GW,
        "spec.servers[].tls.maxProtocolVersion",
        Set,
        "Envoy's default TLS versions apply",
    ),
    field(
        GW,
        "spec.servers[].tls.cipherSuites",
        Set,
        "Envoy's default cipher suites apply",
    ),
    field(
        GW,
        "spec.servers[].tls.verifyCertificateSpki",
        Set,
        "client certificates are not pinned",
    ),
    field(
        GW,
        "spec.servers[].tls.verifyCertificateHash",
        Set,
        "client certificates are not pinned",
    ),
    field(
        GW,
        "spec.servers[].tls.insecureSkipVerify",
        Set,
        "client certificates are verified",
    ),
    // Sidecar: clusters/inbound.rs reads port, bind, captureMode and defaultEndpoint.
    field(
        SC,
        "spec.ingress[].tls",
        Set,
        "the listener does not terminate TLS",
    ),
    field(
        SC,
        "spec.ingress[].connectionPool",
        Set,
        "the inbound cluster has no connection limits",
    ),
    field(
        SC,
        "spec.ingress[].defaultEndpoint",
        StartsWith("unix"),
        "unix socket endpoints are not supported; the ingress listener is left out",
    ),
    field(
        SC,
        "spec.inboundConnectionPool",
        Set,
        "inbound clusters have no connection limits",
    ),
    field(
        SC,
        "spec.outboundTrafficPolicy.egressProxy",
        Set,
        "unknown destinations go to PassthroughCluster, not to the egress proxy",
    ),
    // MeshConfig: the control plane reads rootNamespace, connectTimeout, tcpKeepalive,
    // h2UpgradePolicy, defaultHttpRetryPolicy, outboundTrafficPolicy.mode, enableAutoMtls,
    // trustDomain, trustDomainAliases and meshMTLS (but its ecdhCurves).
    mesh(
        "localityLbSetting",
        "endpoints are balanced without regard to locality",
    ),
    mesh(
        "zoneAwareLbSetting",
        "endpoints are balanced without regard to zones",
    ),
    mesh(
        "defaultTrafficPolicy",
        "only DestinationRules set traffic policies",
    ),
    // translate/mtls/downstream.rs reads meshMTLS.minProtocolVersion and cipherSuites.
    mesh(
        "meshMTLS.ecdhCurves",
        "mesh mutual TLS uses Envoy's default curves",
    ),
    mesh(
        "tlsDefaults",
        "TLS origination uses Envoy's default cipher suites and curves",
    ),
    mesh(
        "inboundTrafficPolicy",
        "inbound traffic is passed through as in the default mode",
    ),
    mesh(
        "defaultServiceExportTo",
        "services are exported to every namespace by default",
    ),
    mesh(
        "defaultVirtualServiceExportTo",
        "VirtualServices are exported to every namespace by default",
    ),
    mesh(
        "defaultDestinationRuleExportTo",
        "DestinationRules are exported to every namespace by default",
    ),
    mesh(
        "pathNormalization",
        "paths are normalized as in Istio's default (BASE)",
    ),
    mesh("protocolDetectionTimeout", "Envoy's default applies"),
    mesh("accessLogFile", "proxies write no access log"),
    mesh("accessLogFormat", "proxies write no access log"),
    mesh("accessLogEncoding", "proxies write no access log"),
    mesh("enableTracing", "no tracing is configured"),
    mesh(
        "extensionProviders",
        "no telemetry or authorization provider is configured",
    ),
    mesh("defaultProviders", "no telemetry provider is configured"),
    mesh("serviceSettings", "services keep the default settings"),
    mesh("discoverySelectors", "every namespace is read"),
    mesh(
        "inboundClusterStatName",
        "clusters keep Istio's default stat names",
    ),
    mesh(
        "outboundClusterStatName",
        "clusters keep Istio's default stat names",
    ),
    mesh(
        "proxyListenPort",
        "sidecars capture outbound traffic on 15001",
    ),
    mesh(
        "proxyInboundListenPort",
        "sidecars capture inbound traffic on 15006",
    ),
    mesh(
        "defaultConfig",
        "proxy settings come from the proxy's own command line",
    ),
];

/// The analyzer's name, to run it alone.
pub const NAME: &str = "trellis.UnsupportedFieldAnalyzer";

pub fn unsupported_fields(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let mesh = serde_json::to_value(ctx.mesh).unwrap_or(Value::Null);
    for entry in UNSUPPORTED
        .iter()
        .filter(|e| e.target == Target::MeshConfig)
    {
        for field in find(&mesh, entry) {
            out.push(m::unsupported_field(
                "MeshConfig".to_string(),
                &field,
                entry.reason,
            ));
        }
    }
    for r in &ctx.resources {
        let target = Target::Kind(r.kind());
        let mut entries = UNSUPPORTED.iter().filter(|e| e.target == target).peekable();
        if entries.peek().is_none() {
            continue;
        }
        // Serialized once per object, only for the kinds the table names.
        let Ok(spec) = serde_json::to_value(&r.spec) else {
            continue;
        };
        let root = Value::Object([("spec".to_string(), spec)].into_iter().collect());
        for entry in entries {
            if entry.field.is_empty() {
                out.push(m::unsupported_kind(r, entry.reason));
                continue;
            }
            for field in find(&root, entry) {
                out.push(m::unsupported_field(origin(r), &field, entry.reason));
            }
        }
    }
}

/// One step of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step<'p> {
    Field(&'p str),
    /// Every item of a list whose `path` (if any) equals the value.
    Items(Option<(Vec<&'p str>, &'p str)>),
    /// Zero or more fields or items.
    AnyDepth,
}

fn parse(pattern: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let name = &rest[..end];
        match name {
            "" => {}
            "**" => steps.push(Step::AnyDepth),
            name => steps.push(Step::Field(name)),
        }
        rest = &rest[end..];
        if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']').unwrap_or(after.len());
            let filter = &after[..close];
            steps.push(Step::Items(
                filter
                    .split_once('=')
                    .map(|(path, value)| (path.split('.').collect(), value)),
            ));
            rest = after.get(close + 1..).unwrap_or("");
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    steps
}

/// The paths of the fields `entry` reports in `root`, in document order.
fn find(root: &Value, entry: &Unsupported) -> Vec<String> {
    let steps = parse(entry.field);
    let mut found = Vec::new();
    walk(root, &steps, String::new(), &mut found);
    let mut out = Vec::new();
    for (path, value) in found {
        match entry.when {
            Set => out.push(path),
            OneOf(values) => {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if values.contains(&text.as_str()) {
                    out.push(path);
                }
            }
            StartsWith(prefix) => {
                if value.as_str().is_some_and(|s| s.starts_with(prefix)) {
                    out.push(path);
                }
            }
            Several => {
                if value.as_array().is_some_and(|a| a.len() > 1) {
                    out.push(path);
                }
            }
        }
    }
    out
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn walk<'v>(
    value: &'v Value,
    steps: &[Step<'_>],
    path: String,
    out: &mut Vec<(String, &'v Value)>,
) {
    let Some((step, rest)) = steps.split_first() else {
        if !value.is_null() {
            out.push((path, value));
        }
        return;
    };
    match step {
        Step::Field(name) => {
            if let Some(v) = value.get(*name) {
                walk(v, rest, join(&path, name), out);
            }
        }
        Step::Items(filter) => {
            for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                let admitted = filter.as_ref().is_none_or(|(at, expected)| {
                    at.iter()
                        .try_fold(item, |v, k| v.get(*k))
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case(expected))
                });
                if admitted {
                    walk(item, rest, format!("{path}[{i}]"), out);
                }
            }
        }
        Step::AnyDepth => {
            walk(value, rest, path.clone(), out);
            match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        walk(v, steps, join(&path, k), out);
                    }
                }
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        walk(v, steps, format!("{path}[{i}]"), out);
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use trellis_api::istio::mesh::MeshConfig;

    use trellis_api::Resource;

    use super::*;
    use crate::analyze::unsupported_fields as run;

    fn object(kind: &str, spec: &Value) -> Resource {
        let group = match kind {
            "PeerAuthentication" | "AuthorizationPolicy" | "RequestAuthentication" => {
                "security.istio.io/v1"
            }
            "Telemetry" => "telemetry.istio.io/v1",
            "WasmPlugin" | "TrafficExtension" => "extensions.istio.io/v1alpha1",
            "EnvoyFilter" => "networking.istio.io/v1alpha3",
            "ProxyConfig" => "networking.istio.io/v1beta1",
            _ => "networking.istio.io/v1",
        };
        let doc = json!({
            "apiVersion": group,
            "kind": kind,
            "metadata": {"name": "x", "namespace": "default"},
            "spec": spec,
        });
        let decoded = trellis_api::decode_bytes("t.yaml", doc.to_string().as_bytes(), "default");
        assert!(
            decoded.errors.is_empty(),
            "{kind} {spec}: {:?}",
            decoded.errors
        );
        assert_eq!(decoded.resources.len(), 1, "{kind} {spec}");
        decoded.resources.into_iter().next().unwrap()
    }

    fn kind_named(name: &str) -> Kind {
        *Kind::ALL.iter().find(|k| k.as_str() == name).expect(name)
    }

    fn mesh(value: &Value) -> MeshConfig {
        trellis_api::decode_mesh_config("mesh.yaml", value.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{value}: {e}"))
    }

    /// One case per entry of [`UNSUPPORTED`]: (pattern, kind, spec with the field, spec
    /// without it, the field path the warning names).
    type Case = (&'static str, &'static str, Value, Value, &'static str);

    fn dr(policy: Value) -> Value {
        json!({"host": "reviews", "trafficPolicy": policy})
    }

    fn server(protocol: &str, tls: Value) -> Value {
        json!({"servers": [{"port": {"number": 443, "name": "p", "protocol": protocol},
            "hosts": ["*"], "tls": tls}]})
    }

    fn simple_tls(extra: Value) -> Value {
        let mut tls = json!({"mode": "SIMPLE", "credentialName": "cert"});
        tls.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        tls
    }

    fn tcp_vs(m: Value) -> Value {
        json!({"hosts": ["db"], "tcp": [{"match": [m], "route": [{"destination": {"host": "db"}}]}]})
    }

    fn ingress(extra: Value) -> Value {
        let mut l = json!({"port": {"number": 9080, "protocol": "HTTP", "name": "http"},
            "defaultEndpoint": "127.0.0.1:8080"});
        l.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"ingress": [l]})
    }

    fn cases() -> Vec<Case> {
        let lb = json!({"simple": "ROUND_ROBIN"});
        let pool = json!({"tcp": {"maxConnections": 10}});
        vec![
            (
                "spec.action",
                "AuthorizationPolicy",
                json!({"action": "CUSTOM", "provider": {"name": "opa"}, "rules": [{}]}),
                json!({"action": "DENY", "rules": [{}]}),
                "spec.action",
            ),
            (
                "spec.jwtRules[].jwksUri",
                "RequestAuthentication",
                json!({"jwtRules": [{"issuer": "i", "jwksUri": "https://keys.example/jwks"}]}),
                json!({"jwtRules": [{"issuer": "i", "jwksUri": "http://keys.example/jwks"}]}),
                "spec.jwtRules[0].jwksUri",
            ),
            (
                "",
                "Telemetry",
                json!({"tracing": [{"randomSamplingPercentage": 10.0}]}),
                Value::Null,
                "",
            ),
            (
                "",
                "WasmPlugin",
                json!({"url": "oci://x/y"}),
                Value::Null,
                "",
            ),
            ("", "TrafficExtension", json!({}), Value::Null, ""),
            (
                "",
                "EnvoyFilter",
                json!({"configPatches": []}),
                Value::Null,
                "",
            ),
            (
                "",
                "ProxyConfig",
                json!({"concurrency": 2}),
                Value::Null,
                "",
            ),
            (
                "",
                "WorkloadGroup",
                json!({"template": {"serviceAccount": "sa"}}),
                Value::Null,
                "",
            ),
            (
                "spec.**.loadBalancer.localityLbSetting",
                "DestinationRule",
                dr(
                    json!({"loadBalancer": {"simple": "ROUND_ROBIN", "localityLbSetting": {"enabled": true}}}),
                ),
                dr(json!({"loadBalancer": lb})),
                "spec.trafficPolicy.loadBalancer.localityLbSetting",
            ),
            (
                "spec.**.loadBalancer.zoneAwareLbSetting",
                "DestinationRule",
                json!({"host": "reviews", "trafficPolicy": {"portLevelSettings": [{"port": {"number": 80},
                    "loadBalancer": {"simple": "RANDOM", "zoneAwareLbSetting": {"enabled": true}}}]}}),
                json!({"host": "reviews", "trafficPolicy": {"portLevelSettings": [{"port": {"number": 80},
                    "loadBalancer": {"simple": "RANDOM"}}]}}),
                "spec.trafficPolicy.portLevelSettings[0].loadBalancer.zoneAwareLbSetting",
            ),
            (
                "spec.**.tunnel",
                "DestinationRule",
                json!({"host": "reviews", "subsets": [{"name": "v1", "labels": {"v": "1"},
                    "trafficPolicy": {"tunnel": {"protocol": "CONNECT", "targetHost": "t", "targetPort": 8080}}}]}),
                json!({"host": "reviews", "subsets": [{"name": "v1", "labels": {"v": "1"},
                    "trafficPolicy": {"connectionPool": pool}}]}),
                "spec.subsets[0].trafficPolicy.tunnel",
            ),
            (
                "spec.**.proxyProtocol",
                "DestinationRule",
                dr(json!({"proxyProtocol": {"version": "V1"}})),
                dr(json!({"connectionPool": pool})),
                "spec.trafficPolicy.proxyProtocol",
            ),
            (
                "spec.**.retryBudget",
                "DestinationRule",
                dr(json!({"retryBudget": {"percent": 20.0}})),
                dr(json!({"connectionPool": {"http": {"maxRetries": 3}}})),
                "spec.trafficPolicy.retryBudget",
            ),
            (
                "spec.**.outlierDetection.outlierDetectionHttpErrorCodes",
                "DestinationRule",
                dr(
                    json!({"outlierDetection": {"consecutive5xxErrors": 3, "outlierDetectionHttpErrorCodes": [503]}}),
                ),
                dr(json!({"outlierDetection": {"consecutive5xxErrors": 3}})),
                "spec.trafficPolicy.outlierDetection.outlierDetectionHttpErrorCodes",
            ),
            (
                "spec.workloadSelector",
                "DestinationRule",
                json!({"host": "reviews", "workloadSelector": {"matchLabels": {"app": "a"}}}),
                json!({"host": "reviews"}),
                "spec.workloadSelector",
            ),
            (
                "spec.tcp[].match[].destinationSubnets",
                "VirtualService",
                tcp_vs(json!({"port": 5432, "destinationSubnets": ["10.0.0.0/8"]})),
                tcp_vs(json!({"port": 5432})),
                "spec.tcp[0].match[0].destinationSubnets",
            ),
            (
                "spec.tcp[].match[].sourceSubnet",
                "VirtualService",
                tcp_vs(json!({"port": 5432, "sourceSubnet": "10.0.0.0/8"})),
                tcp_vs(json!({"port": 5432})),
                "spec.tcp[0].match[0].sourceSubnet",
            ),
            (
                "spec.tls[].match[].destinationSubnets",
                "VirtualService",
                json!({"hosts": ["a.example.com"], "tls": [{"match": [{"sniHosts": ["a.example.com"],
                    "destinationSubnets": ["10.0.0.0/8"]}], "route": [{"destination": {"host": "a.example.com"}}]}]}),
                json!({"hosts": ["a.example.com"], "tls": [{"match": [{"sniHosts": ["a.example.com"]}],
                    "route": [{"destination": {"host": "a.example.com"}}]}]}),
                "spec.tls[0].match[0].destinationSubnets",
            ),
            (
                "spec.servers[].bind",
                "Gateway",
                json!({"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                    "hosts": ["*"], "bind": "10.0.0.1"}]}),
                json!({"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                    "hosts": ["*"]}]}),
                "spec.servers[0].bind",
            ),
            (
                "spec.servers[].tls.mode",
                "Gateway",
                server("TLS", json!({"mode": "AUTO_PASSTHROUGH"})),
                server("TLS", json!({"mode": "PASSTHROUGH"})),
                "spec.servers[0].tls.mode",
            ),
            (
                "spec.servers[port.protocol=TLS].tls.mode",
                "Gateway",
                server("tls", simple_tls(json!({}))),
                server("HTTPS", simple_tls(json!({}))),
                "spec.servers[0].tls.mode",
            ),
            (
                "spec.servers[].tls.credentialNames",
                "Gateway",
                server(
                    "HTTPS",
                    json!({"mode": "SIMPLE", "credentialNames": ["rsa", "ecdsa"]}),
                ),
                server(
                    "HTTPS",
                    json!({"mode": "SIMPLE", "credentialNames": ["rsa"]}),
                ),
                "spec.servers[0].tls.credentialNames",
            ),
            (
                "spec.servers[].tls.tlsCertificates",
                "Gateway",
                server(
                    "HTTPS",
                    json!({"mode": "SIMPLE", "tlsCertificates": [
                    {"serverCertificate": "/c.pem", "privateKey": "/k.pem"}]}),
                ),
                server(
                    "HTTPS",
                    json!({"mode": "SIMPLE", "serverCertificate": "/c.pem", "privateKey": "/k.pem"}),
                ),
                "spec.servers[0].tls.tlsCertificates",
            ),
            (
                "spec.servers[].tls.minProtocolVersion",
                "Gateway",
                server(
                    "HTTPS",
                    simple_tls(json!({"minProtocolVersion": "TLSV1_3"})),
                ),
                server("HTTPS", simple_tls(json!({}))),
                "spec.servers[0].tls.minProtocolVersion",
            ),
            (
                "spec.servers[].tls.maxProtocolVersion",
                "Gateway",
                server(
                    "HTTPS",
                    simple_tls(json!({"maxProtocolVersion": "TLSV1_2"})),
                ),
                server("HTTPS", simple_tls(json!({}))),
                "spec.servers[0].tls.maxProtocolVersion",
            ),
            (
                "spec.servers[].tls.cipherSuites",
                "Gateway",
                server(
                    "HTTPS",
                    simple_tls(json!({"cipherSuites": ["ECDHE-RSA-AES256-GCM-SHA384"]})),
                ),
                server("HTTPS", simple_tls(json!({}))),
                "spec.servers[0].tls.cipherSuites",
            ),
            (
                "spec.servers[].tls.verifyCertificateSpki",
                "Gateway",
                server(
                    "HTTPS",
                    simple_tls(json!({"verifyCertificateSpki": ["abc"]})),
                ),
                server("HTTPS", simple_tls(json!({}))),
                "spec.servers[0].tls.verifyCertificateSpki",
            ),
            (
                "spec.servers[].tls.verifyCertificateHash",
                "Gateway",
                server(
                    "HTTPS",
                    simple_tls(json!({"verifyCertificateHash": ["ab:cd"]})),
                ),
                server("HTTPS", simple_tls(json!({}))),
                "spec.servers[0].tls.verifyCertificateHash",
            ),
            (
                "spec.servers[].tls.insecureSkipVerify",
                "Gateway",
                server("HTTPS", simple_tls(json!({"insecureSkipVerify": true}))),
                server("HTTPS", simple_tls(json!({}))),
                "spec.servers[0].tls.insecureSkipVerify",
            ),
            (
                "spec.ingress[].tls",
                "Sidecar",
                ingress(
                    json!({"tls": {"mode": "SIMPLE", "serverCertificate": "/c.pem", "privateKey": "/k.pem"}}),
                ),
                ingress(json!({})),
                "spec.ingress[0].tls",
            ),
            (
                "spec.ingress[].connectionPool",
                "Sidecar",
                ingress(json!({"connectionPool": pool})),
                ingress(json!({})),
                "spec.ingress[0].connectionPool",
            ),
            (
                "spec.ingress[].defaultEndpoint",
                "Sidecar",
                ingress(json!({"defaultEndpoint": "unix:///var/run/app.sock"})),
                ingress(json!({"defaultEndpoint": "0.0.0.0:8080"})),
                "spec.ingress[0].defaultEndpoint",
            ),
            (
                "spec.inboundConnectionPool",
                "Sidecar",
                json!({"inboundConnectionPool": pool}),
                json!({"egress": [{"hosts": ["./*"]}]}),
                "spec.inboundConnectionPool",
            ),
            (
                "spec.outboundTrafficPolicy.egressProxy",
                "Sidecar",
                json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY", "egressProxy": {"host": "egress"}}}),
                json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}}),
                "spec.outboundTrafficPolicy.egressProxy",
            ),
        ]
    }

    fn mesh_cases() -> Vec<(&'static str, Value)> {
        vec![
            ("localityLbSetting", json!({"enabled": true})),
            ("zoneAwareLbSetting", json!({"enabled": true})),
            (
                "defaultTrafficPolicy",
                json!({"connectionPool": {"tcp": {"maxConnections": 1}}}),
            ),
            ("meshMTLS.ecdhCurves", json!(["P-256"])),
            ("tlsDefaults", json!({"ecdhCurves": ["P-256"]})),
            ("inboundTrafficPolicy", json!({"mode": "LOCALHOST"})),
            ("defaultServiceExportTo", json!(["."])),
            ("defaultVirtualServiceExportTo", json!(["."])),
            ("defaultDestinationRuleExportTo", json!(["."])),
            (
                "pathNormalization",
                json!({"normalization": "MERGE_SLASHES"}),
            ),
            ("protocolDetectionTimeout", json!("1s")),
            ("accessLogFile", json!("/dev/stdout")),
            ("accessLogFormat", json!("%START_TIME%")),
            ("accessLogEncoding", json!("JSON")),
            ("enableTracing", json!(true)),
            (
                "extensionProviders",
                json!([{"name": "otel", "opentelemetry": {"service": "otel.x", "port": 4317}}]),
            ),
            ("defaultProviders", json!({"metrics": ["prometheus"]})),
            (
                "serviceSettings",
                json!([{"settings": {"clusterLocal": true}, "hosts": ["*.local"]}]),
            ),
            (
                "discoverySelectors",
                json!([{"matchLabels": {"mesh": "on"}}]),
            ),
            ("inboundClusterStatName", json!("%SERVICE%")),
            ("outboundClusterStatName", json!("%SERVICE%")),
            ("proxyListenPort", json!(15002)),
            ("proxyInboundListenPort", json!(15007)),
            ("defaultConfig", json!({"concurrency": 2})),
        ]
    }

    #[test]
    fn patterns_parse() {
        assert_eq!(
            parse("spec.servers[port.protocol=TLS].tls.mode"),
            vec![
                Step::Field("spec"),
                Step::Field("servers"),
                Step::Items(Some((vec!["port", "protocol"], "TLS"))),
                Step::Field("tls"),
                Step::Field("mode"),
            ]
        );
        assert_eq!(
            parse("spec.**.tunnel"),
            vec![Step::Field("spec"), Step::AnyDepth, Step::Field("tunnel")]
        );
        assert_eq!(
            parse("spec.tcp[].match[].sourceSubnet"),
            vec![
                Step::Field("spec"),
                Step::Field("tcp"),
                Step::Items(None),
                Step::Field("match"),
                Step::Items(None),
                Step::Field("sourceSubnet"),
            ]
        );
    }

    /// Every entry has its case, and every case its entry: the table and the tests move
    /// together.
    #[test]
    fn every_entry_has_a_case() {
        let mut covered: Vec<(Target, &str)> = cases()
            .iter()
            .map(|(field, kind, ..)| (Target::Kind(kind_named(kind)), *field))
            .collect();
        covered.extend(mesh_cases().iter().map(|(f, _)| (Target::MeshConfig, *f)));
        for e in UNSUPPORTED {
            assert!(
                covered.contains(&(e.target, e.field)),
                "no case for {:?} {}",
                e.target,
                e.field
            );
        }
        assert_eq!(covered.len(), UNSUPPORTED.len());
    }

    #[test]
    fn each_entry_warns_with_its_field_and_not_without_it() {
        let defaults = MeshConfig::default();
        for (pattern, kind, with, without, path) in cases() {
            let entry = UNSUPPORTED
                .iter()
                .find(|e| e.field == pattern && e.target == Target::Kind(kind_named(kind)))
                .unwrap();
            let got = run(&[object(kind, &with)], &defaults);
            let expected = if path.is_empty() {
                format!(
                    "{kind} is not implemented by Trellis yet and is ignored: {}",
                    entry.reason
                )
            } else {
                format!(
                    "Field {path} is not implemented by Trellis yet and is ignored: {}",
                    entry.reason
                )
            };
            assert_eq!(got.len(), 1, "{kind} {pattern}: {got:?}");
            assert_eq!(got[0].code, "TRL0001");
            assert_eq!(got[0].level, crate::analyze::Level::Warning);
            assert_eq!(got[0].origin, format!("{kind} default/x"));
            assert_eq!(got[0].message, expected, "{kind} {pattern}");
            if !without.is_null() {
                let got = run(&[object(kind, &without)], &defaults);
                assert!(
                    got.is_empty(),
                    "{kind} {pattern} without the field: {got:?}"
                );
            }
        }
    }

    #[test]
    fn each_mesh_config_entry_warns_when_set() {
        assert!(run(&[], &MeshConfig::default()).is_empty());
        for (field, value) in mesh_cases() {
            let nested = field.rsplit('.').fold(value, |v, key| json!({ key: v }));
            let got = run(&[], &mesh(&nested));
            assert_eq!(got.len(), 1, "{field}: {got:?}");
            assert_eq!(got[0].origin, "MeshConfig");
            assert!(
                got[0]
                    .message
                    .starts_with(&format!("Field {field} is not implemented")),
                "{}",
                got[0].message
            );
        }
        // What the control plane reads is not reported.
        let read = mesh(
            &json!({"rootNamespace": "istio-system", "connectTimeout": "5s",
            "h2UpgradePolicy": "UPGRADE", "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
            "tcpKeepalive": {"time": "10s"}, "defaultHttpRetryPolicy": {"attempts": 2},
            "enableAutoMtls": false, "trustDomain": "example.org", "trustDomainAliases": ["old.org"],
            "meshMTLS": {"minProtocolVersion": "TLSV1_3", "cipherSuites": ["ECDHE-RSA-AES128-GCM-SHA256"]}}),
        );
        assert!(run(&[], &read).is_empty());
    }

    #[test]
    fn every_occurrence_is_reported_with_its_path() {
        let zone = json!({"loadBalancer": {"zoneAwareLbSetting": {"enabled": true}}});
        let mut port = zone.clone();
        port["port"] = json!({"number": 80});
        let spec = json!({"host": "reviews",
            "trafficPolicy": {"loadBalancer": {"zoneAwareLbSetting": {"enabled": true}},
                "portLevelSettings": [port]},
            "subsets": [{"name": "v1", "labels": {"v": "1"}, "trafficPolicy": zone},
                {"name": "v2", "labels": {"v": "2"}, "trafficPolicy": {"tls": {"mode": "DISABLE"}}}]});
        let got = run(&[object("DestinationRule", &spec)], &MeshConfig::default());
        let fields: Vec<&str> = got
            .iter()
            .map(|m| m.message.split(' ').nth(1).unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "spec.subsets[0].trafficPolicy.loadBalancer.zoneAwareLbSetting",
                "spec.trafficPolicy.loadBalancer.zoneAwareLbSetting",
                "spec.trafficPolicy.portLevelSettings[0].loadBalancer.zoneAwareLbSetting",
            ]
        );
    }

    /// A plain bookinfo-style configuration uses nothing unsupported.
    #[test]
    fn supported_configuration_is_quiet() {
        let objects = [
            object(
                "VirtualService",
                &json!({"hosts": ["reviews"], "http": [
                {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
                 "route": [{"destination": {"host": "reviews", "subset": "v2"}}],
                 "retries": {"attempts": 3}, "timeout": "2s"}]}),
            ),
            object(
                "DestinationRule",
                &json!({"host": "reviews", "trafficPolicy": {
                "loadBalancer": {"consistentHash": {"httpHeaderName": "x"}},
                "connectionPool": {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}},
                "outlierDetection": {"consecutive5xxErrors": 1}, "tls": {"mode": "DISABLE"}},
                "subsets": [{"name": "v2", "labels": {"version": "v2"}}]}),
            ),
            object("Gateway", &server("HTTPS", simple_tls(json!({})))),
            object(
                "PeerAuthentication",
                &json!({"selector": {"matchLabels": {"app": "reviews"}},
                "mtls": {"mode": "STRICT"}, "portLevelMtls": {"9080": {"mode": "PERMISSIVE"}}}),
            ),
            object(
                "DestinationRule",
                &json!({"host": "ratings", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}),
            ),
        ];
        assert!(run(&objects, &MeshConfig::default()).is_empty());
    }
}
