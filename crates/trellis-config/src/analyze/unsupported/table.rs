//! The table of [`UNSUPPORTED`] entries, one per field or kind the translation ignores.

use trellis_api::Kind;

use super::When::*;
use super::{Unsupported, field, kind, mesh};

const DR: Kind = Kind::DestinationRule;
const VS: Kind = Kind::VirtualService;
const GW: Kind = Kind::Gateway;
const SC: Kind = Kind::Sidecar;

const GW_SKIPPED: &str = "the server gets no listener";
const PROVIDER: &str = "the provider is not configured (only envoyFileAccessLog providers are)";

/// Everything the translation does not honour today. Remove an entry when it lands.
pub const UNSUPPORTED: &[Unsupported] = &[
    // Whole kinds: nothing of theirs reaches the proxies.
    // Telemetry: translate/access_log applies accessLogging; metrics and tracing are not.
    field(
        Kind::Telemetry,
        "spec.metrics",
        Set,
        "the proxies' standard metrics are neither overridden nor disabled",
    ),
    field(
        Kind::Telemetry,
        "spec.tracing",
        Set,
        "no tracing is configured",
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
    mesh(
        "enableEnvoyAccessLogService",
        "no gRPC access log service is configured (file access logs are)",
    ),
    mesh("enableTracing", "no tracing is configured"),
    // Extension providers: only envoyFileAccessLog is used (translate/access_log).
    mesh("extensionProviders[].envoyExtAuthzHttp", PROVIDER),
    mesh("extensionProviders[].envoyExtAuthzGrpc", PROVIDER),
    mesh("extensionProviders[].zipkin", PROVIDER),
    mesh("extensionProviders[].lightstep", PROVIDER),
    mesh("extensionProviders[].datadog", PROVIDER),
    mesh("extensionProviders[].stackdriver", PROVIDER),
    mesh("extensionProviders[].opencensus", PROVIDER),
    mesh("extensionProviders[].skywalking", PROVIDER),
    mesh("extensionProviders[].opentelemetry", PROVIDER),
    mesh("extensionProviders[].prometheus", PROVIDER),
    mesh("extensionProviders[].envoyHttpAls", PROVIDER),
    mesh("extensionProviders[].envoyTcpAls", PROVIDER),
    mesh("extensionProviders[].envoyOtelAls", PROVIDER),
    mesh("extensionProviders[].sds", PROVIDER),
    mesh(
        "defaultProviders.metrics",
        "no metrics provider is configured",
    ),
    mesh(
        "defaultProviders.tracing",
        "no tracing provider is configured",
    ),
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
        "proxy settings come from the proxy's own command line (only \
         gatewayTopology.numTrustedProxies is honoured, on gateways)",
    ),
];
