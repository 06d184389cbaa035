//! MeshConfig (the mesh-wide settings) and the ProxyConfig defaults it carries, by Istio's
//! agent validation rules: ports, timeouts, proxy addresses, tracing collectors, locality
//! load balancing, service settings, trust domains, TLS defaults, the default traffic and
//! retry policies, extension providers, and meshNetworks.
//!
//! Istio validates a mesh config after laying it over its defaults, so an unset field is
//! valid here when Istio's default for it is ([`proxy_config_with_defaults`] gives the
//! ProxyConfig defaults). The pieces are public on their own too (`validate_trust_domain`,
//! `validate_proxy_address`...), for tools and for the compatibility suite, whose upstream
//! table tests them one by one. Sub-messages shared with the networking API (locality
//! settings, retries, TLS, connection pools) are checked by the same functions that check
//! DestinationRules and VirtualServices.

use std::collections::BTreeMap;

use serde::Deserialize;
use trellis_api::Duration;
use trellis_api::istio::mesh::{
    AuthenticationPolicy, MeshConfig, MeshConfigDefaultTrafficPolicy, MeshConfigExtensionProvider,
    PrivateKeyProvider, ProxyConfig, ProxyConfigConnectionSettings,
};
use trellis_api::istio::networking::{
    ConnectionPoolSettingsHttpSettingsH2UpgradePolicy, HttpRetry, LocalityLoadBalancerSetting,
    ZoneAwareLoadBalancerSetting,
};

use super::common::{self, validate_duration, validate_fqdn, validate_port};
use super::report::{at, idx, key};
use super::{Finding, Report, destination_rule as dr, virtual_service as vs};

/// Validates a MeshConfig by Istio's rules, its unset fields taking Istio's defaults.
pub fn validate_mesh_config(mesh: &MeshConfig) -> Vec<Finding> {
    let mut r = Report::default();
    if mesh.proxy_listen_port != 0
        && let Err(e) = validate_port(i64::from(mesh.proxy_listen_port))
    {
        r.error("proxyListenPort", format!("invalid proxy listen port: {e}"));
    }
    if let Some(t) = &mesh.connect_timeout
        && let Err(e) = validate_connect_timeout(t)
    {
        r.error("connectTimeout", format!("invalid connect timeout: {e}"));
    }
    if let Some(t) = &mesh.protocol_detection_timeout
        && t.as_nanos() != 0
        && t.as_nanos() % 1_000_000 != 0
    {
        r.error(
            "protocolDetectionTimeout",
            "invalid protocol detection timeout: only durations to ms precision are supported",
        );
    }
    let proxy = proxy_config_with_defaults(mesh.default_config.clone().unwrap_or_default());
    check_proxy_config(&mut r, "defaultConfig", &proxy);
    if let Some(lb) = &mesh.locality_lb_setting {
        check_locality_lb(&mut r, "localityLbSetting", lb, true);
    }
    if let Some(lb) = &mesh.zone_aware_lb_setting {
        check_zone_aware_lb(&mut r, "zoneAwareLbSetting", lb, true);
    }
    for (i, s) in mesh.service_settings.iter().enumerate() {
        let path = idx("", "serviceSettings", i);
        check_service_settings_hosts(&mut r, &path, &s.hosts);
    }
    if !mesh.trust_domain.is_empty() {
        r.check("trustDomain", validate_trust_domain(&mesh.trust_domain));
    }
    for (i, alias) in mesh.trust_domain_aliases.iter().enumerate() {
        r.check(
            &idx("", "trustDomainAliases", i),
            validate_trust_domain(alias),
        );
    }
    if mesh
        .mesh_m_tls
        .as_ref()
        .is_some_and(|t| !t.ecdh_curves.is_empty())
    {
        r.error(
            "meshMTLS.ecdhCurves",
            "mesh TLS does not support ECDH curves configuration",
        );
    }
    if let Some(t) = &mesh.tls_defaults {
        check_ecdh_curves(&mut r, "tlsDefaults.ecdhCurves", &t.ecdh_curves);
    }
    if let Some(p) = &mesh.default_traffic_policy {
        check_default_traffic_policy(&mut r, "defaultTrafficPolicy", p);
    }
    // Istio only logs invalid extension providers ("can be ignored if the given extension
    // provider is not used"); they are warnings here.
    let mut providers = Report::default();
    check_extension_providers(
        &mut providers,
        "extensionProviders",
        &mesh.extension_providers,
    );
    for f in providers.into_findings() {
        r.warn(&f.path, f.message);
    }
    r.into_findings()
}

/// Istio's defaults (`mesh.DefaultProxyConfig()`) in the fields `config` leaves unset.
pub fn proxy_config_with_defaults(mut config: ProxyConfig) -> ProxyConfig {
    fn or(field: &mut String, default: &str) {
        if field.is_empty() {
            *field = default.to_string();
        }
    }
    or(&mut config.config_path, "./etc/istio/proxy");
    or(&mut config.binary_path, "/usr/local/bin/envoy");
    or(
        &mut config.discovery_address,
        "istiod.istio-system.svc:15012",
    );
    if config.service_cluster.is_none() && config.tracing_service_name.is_none() {
        config.service_cluster = Some("istio-proxy".to_string());
    }
    config.drain_duration.get_or_insert(Duration::from_secs(45));
    config
        .termination_drain_duration
        .get_or_insert(Duration::from_secs(5));
    if config.proxy_admin_port == 0 {
        config.proxy_admin_port = 15000;
    }
    if config.control_plane_auth_policy == AuthenticationPolicy::None {
        config.control_plane_auth_policy = AuthenticationPolicy::MutualTls;
    }
    if config.stat_name_length == 0 {
        config.stat_name_length = 189;
    }
    if config.status_port == 0 {
        config.status_port = 15020;
    }
    config
}

/// Validates a ProxyConfig as it is (no defaults applied): Istio's
/// `ValidateMeshConfigProxyConfig`.
pub fn validate_proxy_config(config: &ProxyConfig) -> Vec<Finding> {
    let mut r = Report::default();
    check_proxy_config(&mut r, "", config);
    r.into_findings()
}

fn check_proxy_config(r: &mut Report, path: &str, c: &ProxyConfig) {
    if c.config_path.is_empty() {
        r.error(&at(path, "configPath"), "config path must be set");
    }
    if c.binary_path.is_empty() {
        r.error(&at(path, "binaryPath"), "binary path must be set");
    }
    match (&c.service_cluster, &c.tracing_service_name) {
        (Some(s), _) if s.is_empty() => {
            r.error(
                &at(path, "serviceCluster"),
                "service cluster must be specified",
            );
        }
        (Some(_), _) | (None, Some(_)) => {}
        (None, None) => r.error(
            path,
            "oneof service cluster or tracing service name must be specified",
        ),
    }
    r.check(
        &at(path, "drainDuration"),
        validate_drain_duration(c.drain_duration.as_ref()),
    );
    if c.discovery_address.is_empty() {
        r.error(
            &at(path, "discoveryAddress"),
            "discovery address must be set to the proxy discovery service",
        );
    } else if let Err(e) = validate_proxy_address(&c.discovery_address) {
        r.error(
            &at(path, "discoveryAddress"),
            format!("invalid discovery address: {e}"),
        );
    }
    if let Some(t) = &c.tracing {
        let tpath = at(path, "tracing");
        if let Some(ls) = &t.lightstep {
            let mut errs = Vec::new();
            if ls.address.is_empty() {
                errs.push("address is required".to_string());
            }
            if let Err(e) = validate_proxy_address(&ls.address) {
                errs.push(format!("invalid lightstep address: {e}"));
            }
            if ls.access_token.is_empty() {
                errs.push("access token is required".to_string());
            }
            for e in errs {
                r.error(&tpath, format!("invalid lightstep config: {e}"));
            }
        }
        if let Some(z) = &t.zipkin
            && let Err(e) =
                validate_proxy_address(&z.address.replacen("$(HOST_IP)", "127.0.0.1", 1))
        {
            r.error(&tpath, format!("invalid zipkin config: {e}"));
        }
        if let Some(d) = &t.datadog
            && let Err(e) =
                validate_proxy_address(&d.address.replacen("$(HOST_IP)", "127.0.0.1", 1))
        {
            r.error(&tpath, format!("invalid datadog config: {e}"));
        }
        if let Some(tls) = &t.tls_settings {
            let mut sub = Report::default();
            dr::validate_client_tls(&mut sub, "", "", tls);
            for f in sub.into_findings() {
                r.error(&tpath, format!("invalid tracing TLS config: {}", f.message));
            }
        }
    }
    let addresses = [
        (
            "statsdUdpAddress",
            "invalid statsd udp address",
            &c.statsd_udp_address,
        ),
        (
            "envoyMetricsServiceAddress",
            "invalid envoy metrics service address",
            &c.envoy_metrics_service_address,
        ),
    ];
    for (field, what, addr) in addresses {
        if !addr.is_empty()
            && let Err(e) = validate_proxy_address(addr)
        {
            r.error(&at(path, field), format!("{what} {addr:?}: {e}"));
        }
    }
    if c.proxy_metadata
        .contains_key("ISTIO_META_DNS_AUTO_ALLOCATE")
    {
        r.warn(
            &at(path, "proxyMetadata"),
            "'ISTIO_META_DNS_AUTO_ALLOCATE' is deprecated; review \
             https://istio.io/latest/docs/ops/configuration/traffic-management/dns-proxy/#dns-auto-allocation-v2 \
             for information about replacement functionality",
        );
    }
    let services = [
        (
            "envoyMetricsService",
            "invalid envoy metrics service address",
            &c.envoy_metrics_service,
        ),
        (
            "envoyAccessLogService",
            "invalid envoy access log service address",
            &c.envoy_access_log_service,
        ),
    ];
    for (field, what, service) in services {
        if let Some(s) = service
            && !s.address.is_empty()
            && let Err(e) = validate_proxy_address(&s.address)
        {
            r.error(&at(path, field), format!("{what} {:?}: {e}", s.address));
        }
    }
    if let Err(e) = validate_port(i64::from(c.proxy_admin_port)) {
        r.error(
            &at(path, "proxyAdminPort"),
            format!("invalid proxy admin port: {e}"),
        );
    }
    if let Err(e) = validate_control_plane_auth_policy(c.control_plane_auth_policy) {
        r.error(
            &at(path, "controlPlaneAuthPolicy"),
            format!("invalid authentication policy: {e}"),
        );
    }
    if let Err(e) = validate_port(i64::from(c.status_port)) {
        r.error(&at(path, "statusPort"), format!("invalid status port: {e}"));
    }
    if let Some(p) = &c.private_key_provider {
        for e in private_key_provider_errors(p) {
            r.error(
                &at(path, "privateKeyProvider"),
                format!("invalid private key provider configuration: {e}"),
            );
        }
    }
    if let Some(cs) = &c.connection_settings {
        check_connection_settings(r, &at(path, "connectionSettings"), cs);
    }
}

/// A control-plane authentication policy: NONE or MUTUAL_TLS.
pub fn validate_control_plane_auth_policy(policy: AuthenticationPolicy) -> Result<(), String> {
    match policy {
        AuthenticationPolicy::None | AuthenticationPolicy::MutualTls => Ok(()),
        other => Err(format!(
            "unrecognized control plane auth policy {:?}",
            other.as_str()
        )),
    }
}

fn validate_drain_duration(d: Option<&Duration>) -> Result<(), String> {
    let d = d.copied().unwrap_or_default();
    validate_duration(&d).map_err(|e| format!("invalid drain duration: {e}"))?;
    if d.as_nanos() % 1_000_000_000 != 0 {
        return Err("drain time only supports durations to seconds precision".to_string());
    }
    Ok(())
}

/// A connect timeout: a valid duration between 1ms and 1h.
pub fn validate_connect_timeout(t: &Duration) -> Result<(), String> {
    validate_duration(t)?;
    let nanos = t.as_nanos();
    if !(1_000_000..=3_600_000_000_000).contains(&nanos) {
        return Err(format!("time {t} must be >1ms and <1h0m0s"));
    }
    Ok(())
}

fn private_key_provider_errors(p: &PrivateKeyProvider) -> Vec<String> {
    let poll = match (&p.cryptomb, &p.qat) {
        (Some(c), _) => c.poll_delay,
        (None, Some(q)) => q.poll_delay,
        (None, None) => {
            return vec![
                "private key provider configuration is required".to_string(),
                "unknown private key provider".to_string(),
            ];
        }
    };
    match poll {
        None => vec!["pollDelay is required".to_string()],
        Some(d) if d.as_nanos() == 0 => vec!["pollDelay must be non zero".to_string()],
        Some(_) => Vec::new(),
    }
}

/// Envoy's connection settings of a proxy: limits positive or non-negative, HTTP/2 windows
/// at least 65535.
pub(crate) fn check_connection_settings(
    r: &mut Report,
    path: &str,
    cs: &ProxyConfigConnectionSettings,
) {
    let mut fail = |msg: &str| r.error(path, format!("invalid connection settings: {msg}"));
    let negative = |v: Option<i32>| v.is_some_and(|v| v < 0);
    let not_positive = |v: Option<i32>| v.is_some_and(|v| v <= 0);
    let negative_duration = |d: &Option<Duration>| d.as_ref().is_some_and(Duration::is_negative);
    if negative(cs.listener_per_connection_buffer_limit_bytes) {
        fail("listener_per_connection_buffer_limit_bytes must be non-negative");
    }
    if negative(cs.cluster_per_connection_buffer_limit_bytes) {
        fail("cluster_per_connection_buffer_limit_bytes must be non-negative");
    }
    let durations = [
        (&cs.http_idle_timeout, "http_idle_timeout"),
        (
            &cs.http_max_connection_duration,
            "http_max_connection_duration",
        ),
        (&cs.http_drain_timeout, "http_drain_timeout"),
        (&cs.http_request_timeout, "http_request_timeout"),
        (
            &cs.http_request_headers_timeout,
            "http_request_headers_timeout",
        ),
        (&cs.http_stream_idle_timeout, "http_stream_idle_timeout"),
        (&cs.http_max_stream_duration, "http_max_stream_duration"),
    ];
    for (d, name) in durations {
        if negative_duration(d) {
            fail(&format!("{name} must be non-negative"));
        }
    }
    if not_positive(cs.http_max_concurrent_streams) {
        fail("http_max_concurrent_streams must be positive");
    }
    if cs
        .http2_initial_stream_window_size
        .is_some_and(|v| v < 65535)
    {
        fail("http2_initial_stream_window_size must be at least 65535");
    }
    if cs
        .http2_initial_connection_window_size
        .is_some_and(|v| v < 65535)
    {
        fail("http2_initial_connection_window_size must be at least 65535");
    }
    if not_positive(cs.listener_connection_limit) {
        fail("listener_connection_limit must be positive");
    }
    if not_positive(cs.global_downstream_connection_limit) {
        fail("global_downstream_connection_limit must be positive");
    }
}

/// `host:port` of a collector or a discovery server: a port in range and a host that is a
/// domain name or an IP address (an IPv6 address in brackets).
pub fn validate_proxy_address(addr: &str) -> Result<(), String> {
    let (host, port) =
        split_host_port(addr).map_err(|e| format!("unable to split {addr:?}: {e}"))?;
    let number: i64 = port
        .strip_prefix('+')
        .unwrap_or(port)
        .parse()
        .map_err(|_| format!("port ({port}) is not a number"))?;
    validate_port(number)?;
    if validate_fqdn(host).is_err() && !common::is_ip(host) {
        return Err(format!("{host:?} is not a valid hostname or an IP address"));
    }
    Ok(())
}

/// Go's `net.SplitHostPort`: `host:port`, `[v6]:port`.
fn split_host_port(addr: &str) -> Result<(&str, &str), String> {
    let Some(colon) = addr.rfind(':') else {
        return Err("missing port in address".to_string());
    };
    let (host, port) = (&addr[..colon], &addr[colon + 1..]);
    if let Some(inner) = host.strip_prefix('[') {
        let Some(inner) = inner.strip_suffix(']') else {
            return Err("missing ']' in address".to_string());
        };
        return Ok((inner, port));
    }
    if host.contains(':') {
        return Err("too many colons in address".to_string());
    }
    if host.contains(['[', ']']) {
        return Err("unexpected '[' or ']' in address".to_string());
    }
    Ok((host, port))
}

/// A SPIFFE trust domain: dot-separated DNS-1123 labels (a trailing dot allowed).
pub fn validate_trust_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("empty domain name not allowed".to_string());
    }
    let parts: Vec<&str> = domain.split('.').collect();
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !common::is_dns1123_label(label) {
            return Err(format!("trust domain name {domain:?} invalid"));
        }
    }
    Ok(())
}

/// The hosts of one `serviceSettings` entry: domain names, wildcards allowed first.
pub(crate) fn check_service_settings_hosts(r: &mut Report, path: &str, hosts: &[String]) {
    for h in hosts {
        if let Err(e) = common::validate_wildcard_domain(h) {
            r.error(&at(path, "hosts"), format!("host `{h}`: {e}"));
        }
    }
}

/// Locality load balancing of the mesh (the DestinationRule rules; the mesh always counts
/// as having outlier detection).
pub(crate) fn check_locality_lb(
    r: &mut Report,
    path: &str,
    lb: &LocalityLoadBalancerSetting,
    has_outlier: bool,
) {
    dr::validate_locality_lb(r, path, lb, has_outlier);
}

pub(crate) fn check_zone_aware_lb(
    r: &mut Report,
    path: &str,
    lb: &ZoneAwareLoadBalancerSetting,
    has_outlier: bool,
) {
    dr::validate_zone_aware_lb(r, path, lb, has_outlier);
}

/// Curves Envoy knows, for `tlsDefaults.ecdhCurves`.
const ECDH_CURVES: &[&str] = &["P-256", "P-384", "P-521", "X25519", "X25519MLKEM768"];

fn check_ecdh_curves(r: &mut Report, path: &str, curves: &[String]) {
    let mut seen = std::collections::BTreeSet::new();
    let mut unknown = std::collections::BTreeSet::new();
    let mut repeated = std::collections::BTreeSet::new();
    for c in curves {
        if !ECDH_CURVES.contains(&c.as_str()) {
            unknown.insert(c.as_str());
        } else if !seen.insert(c.as_str()) {
            repeated.insert(c.as_str());
        }
    }
    let list = |s: &std::collections::BTreeSet<&str>| {
        format!("[{}]", s.iter().copied().collect::<Vec<_>>().join(" "))
    };
    if !unknown.is_empty() {
        r.warn(
            path,
            format!("detected unrecognized ECDH curves: {}", list(&unknown)),
        );
    }
    if !repeated.is_empty() {
        r.warn(
            path,
            format!("detected duplicate ECDH curves: {}", list(&repeated)),
        );
    }
}

/// The mesh-wide baseline traffic policy: the DestinationRule checks of its connection pool
/// and outlier detection.
pub(crate) fn check_default_traffic_policy(
    r: &mut Report,
    path: &str,
    p: &MeshConfigDefaultTrafficPolicy,
) {
    if let Some(cp) = &p.connection_pool {
        let cp_path = at(path, "connectionPool");
        dr::validate_connection_pool(r, &cp_path, cp);
        if let Some(h) = &cp.http
            && h.h2_upgrade_policy == ConnectionPoolSettingsHttpSettingsH2UpgradePolicy::Upgrade
            && h.use_client_protocol
        {
            r.error(
                &cp_path,
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
    }
    if let Some(od) = &p.outlier_detection {
        dr::validate_outlier_detection(r, &at(path, "outlierDetection"), od);
    }
}

/// The mesh-wide default retry policy of inbound routes: a valid retry policy, of which
/// only attempts, retryOn and backoff apply (the others are ignored, with a warning).
pub(crate) fn check_default_inbound_retry_policy(r: &mut Report, path: &str, retry: &HttpRetry) {
    let mut sub = Report::default();
    vs::validate_retry(&mut sub, path, retry);
    for f in sub.into_findings() {
        r.error(
            &f.path,
            format!("invalid default inbound http retry policy: {}", f.message),
        );
    }
    if retry.attempts == 0 && retry.backoff.is_some() {
        r.error(
            path,
            "invalid default inbound http retry policy: backoff configured when attempts are set to 0 (disabled)",
        );
    }
    if retry.per_try_timeout.is_some() {
        r.warn(
            path,
            "perTryTimeout is ignored by the default inbound http retry policy",
        );
    }
    if retry.retry_remote_localities.is_some() {
        r.warn(
            path,
            "retryRemoteLocalities is ignored by the default inbound http retry policy",
        );
    }
    if retry.retry_ignore_previous_hosts.is_some() {
        r.warn(
            path,
            "retryIgnorePreviousHosts is ignored by the default inbound http retry policy",
        );
    }
}

/// The service of an extension provider: a domain name or IP address, or
/// `namespace/hostname`.
pub fn validate_extension_provider_service(service: &str) -> Result<(), String> {
    if service.is_empty() {
        return Err("service must not be empty".to_string());
    }
    if !service.contains('/') {
        if validate_fqdn(service).is_err() && !common::is_ip(service) {
            return Err(format!(
                "invalid service fmt {service}: {service} is not a valid IP"
            ));
        }
        return Ok(());
    }
    let errs = common::validate_namespace_slash_host(service, false, false);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// A provider reached at `service:port`.
pub(crate) fn check_provider_endpoint(r: &mut Report, path: &str, service: &str, port: u32) {
    r.check(
        &at(path, "service"),
        validate_extension_provider_service(service),
    );
    if let Err(e) = validate_port(i64::from(port)) {
        r.error(&at(path, "port"), format!("invalid service port: {e}"));
    }
}

/// Extension providers: named uniquely, each provider's endpoint valid.
pub(crate) fn check_extension_providers(
    r: &mut Report,
    path: &str,
    providers: &[MeshConfigExtensionProvider],
) {
    let mut names = std::collections::BTreeSet::new();
    for (i, p) in providers.iter().enumerate() {
        let ppath = format!("{path}[{i}]");
        if p.name.is_empty() {
            r.error(&ppath, "empty extension provider name");
        } else if !names.insert(p.name.as_str()) {
            r.error(
                &ppath,
                format!("duplicate extension provider name {}", p.name),
            );
        }
        check_extension_provider(r, &ppath, p);
    }
}

fn check_extension_provider(r: &mut Report, path: &str, p: &MeshConfigExtensionProvider) {
    if let Some(x) = &p.envoy_ext_authz_http {
        r.check(
            &at(path, "envoyExtAuthzHttp.port"),
            validate_port(i64::from(x.port)),
        );
        r.check(
            &at(path, "envoyExtAuthzHttp.service"),
            validate_extension_provider_service(&x.service),
        );
        if !x.path_prefix.is_empty() && !x.path_prefix.starts_with('/') {
            r.error(
                &at(path, "envoyExtAuthzHttp.pathPrefix"),
                format!(
                    "pathPrefix should begin with `/` but found {:?}",
                    x.path_prefix
                ),
            );
        }
    }
    if let Some(x) = &p.envoy_ext_authz_grpc {
        check_provider_endpoint(r, &at(path, "envoyExtAuthzGrpc"), &x.service, x.port);
    }
    if let Some(x) = &p.zipkin {
        check_provider_endpoint(r, &at(path, "zipkin"), &x.service, x.port);
    }
    if let Some(x) = &p.lightstep {
        check_provider_endpoint(r, &at(path, "lightstep"), &x.service, x.port);
        if x.access_token.is_empty() {
            r.error(
                &at(path, "lightstep.accessToken"),
                "access token is required",
            );
        }
    }
    if let Some(x) = &p.datadog {
        check_provider_endpoint(r, &at(path, "datadog"), &x.service, x.port);
    }
    if let Some(x) = &p.opencensus {
        check_provider_endpoint(r, &at(path, "opencensus"), &x.service, x.port);
    }
    if let Some(x) = &p.skywalking {
        check_provider_endpoint(r, &at(path, "skywalking"), &x.service, x.port);
    }
    if let Some(x) = &p.opentelemetry {
        check_provider_endpoint(r, &at(path, "opentelemetry"), &x.service, x.port);
        if x.grpc.is_some() && x.http.is_some() {
            r.error(
                &at(path, "opentelemetry"),
                "OpenTelemetryTracingProvider cannot specify both grpc and http",
            );
        }
    }
    if let Some(x) = &p.envoy_otel_als {
        check_provider_endpoint(r, &at(path, "envoyOtelAls"), &x.service, x.port);
    }
    if let Some(x) = &p.envoy_http_als {
        check_provider_endpoint(r, &at(path, "envoyHttpAls"), &x.service, x.port);
    }
    if let Some(x) = &p.envoy_tcp_als {
        check_provider_endpoint(r, &at(path, "envoyTcpAls"), &x.service, x.port);
    }
}

/// `meshNetworks`: the networks of a multi-network mesh (Istio's `MeshNetworks`, which the
/// generated API types do not carry).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshNetworks {
    pub networks: BTreeMap<String, Network>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    pub endpoints: Vec<NetworkEndpoints>,
    pub gateways: Vec<NetworkGateway>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkEndpoints {
    pub from_cidr: Option<String>,
    pub from_registry: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkGateway {
    pub registry_service_name: Option<String>,
    pub address: Option<String>,
    pub port: u32,
    pub locality: String,
}

/// Validates meshNetworks: endpoint CIDRs and registry names, gateway names, addresses
/// (an IP: hostnames need RESOLVE_HOSTNAME_GATEWAYS, off by default) and ports.
pub fn validate_mesh_networks(networks: &MeshNetworks) -> Vec<Finding> {
    let mut r = Report::default();
    for (name, n) in &networks.networks {
        let path = key("", "networks", name);
        let mut fail = |e: String| r.error(&path, format!("invalid network {name}: {e}"));
        for e in &n.endpoints {
            if let Some(cidr) = &e.from_cidr
                && let Err(err) = common::validate_ip_subnet(cidr)
            {
                fail(err);
            }
            if let Some(reg) = &e.from_registry
                && !common::is_dns1123_label(reg)
            {
                fail(format!("invalid registry name: {reg}"));
            }
        }
        for g in &n.gateways {
            if let Some(svc) = &g.registry_service_name
                && let Err(err) = validate_fqdn(svc)
            {
                fail(err);
            }
            if let Some(addr) = &g.address
                && let Err(err) = common::validate_ip_address(addr)
            {
                fail(format!(
                    "{err} (hostname is allowed if RESOLVE_HOSTNAME_GATEWAYS is enabled)"
                ));
            }
            if let Err(err) = validate_port(i64::from(g.port)) {
                fail(err);
            }
        }
    }
    r.into_findings()
}

/// The mesh-config message names [`validate_mesh_fragment`] accepts.
pub const MESH_FRAGMENT_KINDS: &[&str] = &[
    "ProxyConfig",
    "ProxyConfig_ConnectionSettings",
    "MeshConfig_DefaultTrafficPolicy",
    "DefaultInboundHTTPRetryPolicy",
    "LocalityLoadBalancerSetting",
    "ZoneAwareLoadBalancerSetting",
    "Localities",
    "ServiceSettingsHosts",
    "MeshNetworks",
    "ClientTLSSettings",
    "MeshConfig_ExtensionProvider",
    "MeshConfig_ExtensionProvider_ZipkinTracingProvider",
    "MeshConfig_ExtensionProvider_LightstepTracingProvider",
    "MeshConfig_ExtensionProvider_DatadogTracingProvider",
    "MeshConfig_ExtensionProvider_OpenCensusAgentTracingProvider",
    "MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider",
    "MeshConfig_ExtensionProvider_EnvoyOpenTelemetryLogProvider",
    "MeshConfig_ExtensionProvider_EnvoyHttpGrpcV3LogProvider",
    "MeshConfig_ExtensionProvider_EnvoyTcpGrpcV3LogProvider",
];

fn decode<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Decodes `value` as the mesh-config message `kind` (Istio's Go type name) and validates
/// it as [`validate_mesh_config`] validates that part of a mesh config. Three kinds are not
/// messages: `Localities` is a list of locality names, `ServiceSettingsHosts` the hosts of a
/// `serviceSettings` entry, and `DefaultInboundHTTPRetryPolicy` an HTTPRetry used as the
/// mesh's default inbound retry policy. A ProxyConfig is validated as given (no defaults).
/// `has_outlier` tells the locality settings whether outlier detection accompanies them
/// (the mesh always counts as having it).
pub fn validate_mesh_fragment(
    kind: &str,
    value: serde_json::Value,
    has_outlier: bool,
) -> Result<Vec<Finding>, String> {
    use trellis_api::istio::mesh as m;
    let mut r = Report::default();
    match kind {
        "ProxyConfig" => check_proxy_config(&mut r, "", &decode(value)?),
        "ProxyConfig_ConnectionSettings" => {
            check_connection_settings(&mut r, "", &decode(value)?);
        }
        "MeshConfig_DefaultTrafficPolicy" => {
            check_default_traffic_policy(&mut r, "", &decode(value)?);
        }
        "DefaultInboundHTTPRetryPolicy" => {
            check_default_inbound_retry_policy(&mut r, "", &decode(value)?);
        }
        "LocalityLoadBalancerSetting" => {
            check_locality_lb(&mut r, "", &decode(value)?, has_outlier);
        }
        "ZoneAwareLoadBalancerSetting" => {
            check_zone_aware_lb(&mut r, "", &decode(value)?, has_outlier);
        }
        "Localities" => {
            let list: Vec<String> = decode(value)?;
            r.check("", dr::validate_localities(&list));
        }
        "ServiceSettingsHosts" => {
            let hosts: Vec<String> = decode(value)?;
            check_service_settings_hosts(&mut r, "", &hosts);
        }
        "MeshNetworks" => return Ok(validate_mesh_networks(&decode(value)?)),
        "ClientTLSSettings" => dr::validate_client_tls(&mut r, "", "", &decode(value)?),
        "MeshConfig_ExtensionProvider" => {
            let p: MeshConfigExtensionProvider = decode(value)?;
            check_extension_providers(&mut r, "", std::slice::from_ref(&p));
        }
        "MeshConfig_ExtensionProvider_LightstepTracingProvider" => {
            let p: m::MeshConfigExtensionProviderLightstepTracingProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
            if p.access_token.is_empty() {
                r.error("accessToken", "access token is required");
            }
        }
        "MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider" => {
            let p: m::MeshConfigExtensionProviderOpenTelemetryTracingProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
            if p.grpc.is_some() && p.http.is_some() {
                r.error(
                    "",
                    "OpenTelemetryTracingProvider cannot specify both grpc and http",
                );
            }
        }
        "MeshConfig_ExtensionProvider_ZipkinTracingProvider" => {
            let p: m::MeshConfigExtensionProviderZipkinTracingProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
        }
        "MeshConfig_ExtensionProvider_DatadogTracingProvider" => {
            let p: m::MeshConfigExtensionProviderDatadogTracingProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
        }
        "MeshConfig_ExtensionProvider_OpenCensusAgentTracingProvider" => {
            let p: m::MeshConfigExtensionProviderOpenCensusAgentTracingProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
        }
        "MeshConfig_ExtensionProvider_EnvoyOpenTelemetryLogProvider" => {
            let p: m::MeshConfigExtensionProviderEnvoyOpenTelemetryLogProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
        }
        "MeshConfig_ExtensionProvider_EnvoyHttpGrpcV3LogProvider" => {
            let p: m::MeshConfigExtensionProviderEnvoyHttpGrpcV3LogProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
        }
        "MeshConfig_ExtensionProvider_EnvoyTcpGrpcV3LogProvider" => {
            let p: m::MeshConfigExtensionProviderEnvoyTcpGrpcV3LogProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
        }
        other => return Err(format!("unknown mesh config fragment kind {other:?}")),
    }
    Ok(r.into_findings())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_addresses() {
        assert!(validate_proxy_address("istiod.istio-system.svc:15012").is_ok());
        assert!(validate_proxy_address("[2001:db8::1]:80").is_ok());
        assert!(validate_proxy_address("10.0.0.1:0").is_err());
        assert!(validate_proxy_address("no-port").is_err());
        assert!(validate_proxy_address("bad_host!:80").is_err());
    }

    #[test]
    fn defaults_make_an_empty_proxy_config_valid() {
        assert!(!validate_proxy_config(&ProxyConfig::default()).is_empty());
        let filled = proxy_config_with_defaults(ProxyConfig::default());
        assert!(validate_proxy_config(&filled).is_empty());
        assert!(validate_mesh_config(&MeshConfig::default()).is_empty());
    }

    #[test]
    fn trust_domains() {
        assert!(validate_trust_domain("cluster.local").is_ok());
        assert!(validate_trust_domain("istio.io.").is_ok());
        assert!(validate_trust_domain("").is_err());
        assert!(validate_trust_domain("a..b").is_err());
    }
}
