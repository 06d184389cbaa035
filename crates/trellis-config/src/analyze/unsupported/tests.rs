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
            "spec.tracing",
            "Telemetry",
            json!({"tracing": [{"randomSamplingPercentage": 10.0}]}),
            json!({"accessLogging": [{"providers": [{"name": "envoy"}]}]}),
            "spec.tracing",
        ),
        (
            "spec.metrics",
            "Telemetry",
            json!({"metrics": [{"providers": [{"name": "prometheus"}]}]}),
            json!({"accessLogging": [{"disabled": true}]}),
            "spec.metrics",
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
        ("enableEnvoyAccessLogService", json!(true)),
        ("enableTracing", json!(true)),
        (
            "extensionProviders[].envoyExtAuthzHttp",
            json!([{"name": "p", "envoyExtAuthzHttp": {"service": "authz.x", "port": 80}}]),
        ),
        (
            "extensionProviders[].envoyExtAuthzGrpc",
            json!([{"name": "p", "envoyExtAuthzGrpc": {"service": "authz.x", "port": 9000}}]),
        ),
        (
            "extensionProviders[].zipkin",
            json!([{"name": "p", "zipkin": {"service": "zipkin.x", "port": 9411}}]),
        ),
        (
            "extensionProviders[].lightstep",
            json!([{"name": "p", "lightstep": {"service": "ls.x", "port": 8080}}]),
        ),
        (
            "extensionProviders[].datadog",
            json!([{"name": "p", "datadog": {"service": "dd.x", "port": 8126}}]),
        ),
        (
            "extensionProviders[].stackdriver",
            json!([{"name": "p", "stackdriver": {}}]),
        ),
        (
            "extensionProviders[].opencensus",
            json!([{"name": "p", "opencensus": {"service": "oc.x", "port": 55678}}]),
        ),
        (
            "extensionProviders[].skywalking",
            json!([{"name": "p", "skywalking": {"service": "sw.x", "port": 11800}}]),
        ),
        (
            "extensionProviders[].opentelemetry",
            json!([{"name": "p", "opentelemetry": {"service": "otel.x", "port": 4317}}]),
        ),
        (
            "extensionProviders[].prometheus",
            json!([{"name": "p", "prometheus": {}}]),
        ),
        (
            "extensionProviders[].envoyHttpAls",
            json!([{"name": "p", "envoyHttpAls": {"service": "als.x", "port": 9000}}]),
        ),
        (
            "extensionProviders[].envoyTcpAls",
            json!([{"name": "p", "envoyTcpAls": {"service": "als.x", "port": 9000}}]),
        ),
        (
            "extensionProviders[].envoyOtelAls",
            json!([{"name": "p", "envoyOtelAls": {"service": "otel.x", "port": 4317}}]),
        ),
        (
            "extensionProviders[].sds",
            json!([{"name": "p", "sds": {"name": "s"}}]),
        ),
        ("defaultProviders.metrics", json!(["prometheus"])),
        ("defaultProviders.tracing", json!(["zipkin"])),
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
        // `a[].b`: the case gives `a`'s list, and the finding names its first item.
        let (top, path) = match field.split_once("[]") {
            Some((top, _)) => (top, field.replace("[]", "[0]")),
            None => (field, field.to_string()),
        };
        let nested = top.rsplit('.').fold(value, |v, key| json!({ key: v }));
        let got = run(&[], &mesh(&nested));
        assert_eq!(got.len(), 1, "{field}: {got:?}");
        assert_eq!(got[0].origin, "MeshConfig");
        assert!(
            got[0]
                .message
                .starts_with(&format!("Field {path} is not implemented")),
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
        "meshMTLS": {"minProtocolVersion": "TLSV1_3", "cipherSuites": ["ECDHE-RSA-AES128-GCM-SHA256"]},
        "accessLogFile": "/dev/stdout", "accessLogEncoding": "JSON", "accessLogFormat": "{}",
        "extensionProviders": [{"name": "f", "envoyFileAccessLog": {"path": "/dev/stdout"}}],
        "defaultProviders": {"accessLogging": ["envoy"]}}),
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

#[test]
fn telemetry_providers_without_a_file_logger_are_reported() {
    let spec = json!({"accessLogging": [{"providers": [
        {"name": "envoy"}, {"name": "FILE"}, {"name": "als"}, {"name": "missing"}]}]});
    let config = mesh(&json!({"extensionProviders": [
        {"name": "file", "envoyFileAccessLog": {"path": "/dev/stdout"}},
        {"name": "als", "envoyHttpAls": {"service": "als.x", "port": 9000}}]}));
    let got: Vec<String> = run(&[object("Telemetry", &spec)], &config)
        .into_iter()
        .filter(|m| m.origin.starts_with("Telemetry"))
        .map(|m| m.message)
        .collect();
    assert_eq!(
        got,
        [
            "Field spec.accessLogging[0].providers[2] is not implemented by Trellis yet and is \
             ignored: provider \"als\": only envoyFileAccessLog providers write access logs",
            "Field spec.accessLogging[0].providers[3] is not implemented by Trellis yet and is \
             ignored: provider \"missing\": no extension provider has this name",
        ]
    );
}
