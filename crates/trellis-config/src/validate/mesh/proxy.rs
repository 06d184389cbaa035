//! ProxyConfig: Istio's defaults and the agent's rules for ports, drain and connect
//! timeouts, proxy addresses, tracing and private key providers.

use trellis_api::Duration;
use trellis_api::istio::mesh::{
    AuthenticationPolicy, PrivateKeyProvider, ProxyConfig, ProxyConfigConnectionSettings,
};

use crate::validate::common::{self, validate_duration, validate_fqdn, validate_port};
use crate::validate::report::at;
use crate::validate::{Finding, Report, destination_rule as dr};

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

pub(super) fn check_proxy_config(r: &mut Report, path: &str, c: &ProxyConfig) {
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

pub(super) fn validate_drain_duration(d: Option<&Duration>) -> Result<(), String> {
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

pub(super) fn private_key_provider_errors(p: &PrivateKeyProvider) -> Vec<String> {
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
pub(super) fn split_host_port(addr: &str) -> Result<(&str, &str), String> {
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
