//! DestinationRule: host, subsets, exportTo, and the traffic policy (load balancing,
//! connection pool, outlier detection, client TLS, port-level settings, tunnel).
//!
//! The connection-pool check is shared with Sidecar ingress listeners.

use trellis_api::istio::networking::{
    ClientTlsSettings, ClientTlsSettingsTlsMode, ConnectionPoolSettings,
    ConnectionPoolSettingsHttpSettingsH2UpgradePolicy, DestinationRule, LoadBalancerSettings,
    LocalityLoadBalancerSetting, OutlierDetection, TrafficPolicy, ZoneAwareLoadBalancerSetting,
};

use super::Report;
use super::common::{self, validate_duration, validate_percent};
use super::report::{at, idx};
use super::virtual_service::validate_subset_name;

pub(crate) fn validate_destination_rule(r: &mut Report, namespace: &str, dr: &DestinationRule) {
    r.check("spec.host", common::validate_wildcard_domain(&dr.host));
    if let Some(tp) = &dr.traffic_policy {
        validate_traffic_policy(r, "spec.trafficPolicy", namespace, tp);
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, subset) in dr.subsets.iter().enumerate() {
        let p = idx("spec", "subsets", i);
        if names.contains(&subset.name.as_str()) {
            r.error(&p, format!("duplicate subset names: {}", subset.name));
        }
        names.push(&subset.name);
        r.check(&at(&p, "name"), validate_subset_name(&subset.name));
        for e in common::validate_labels(&subset.labels) {
            r.error(&at(&p, "labels"), e);
        }
        if let Some(tp) = &subset.traffic_policy {
            validate_traffic_policy(r, &at(&p, "trafficPolicy"), namespace, tp);
        }
    }
    let has_selector = dr.workload_selector.is_some();
    for e in common::validate_export_to(namespace, &dr.export_to, false, has_selector) {
        r.error("spec.exportTo", e);
    }
    common::check_workload_selector(r, "spec.workloadSelector", dr.workload_selector.as_ref());
}

/// A traffic policy must set something; tunnel and PROXY protocol exclude each other.
pub(crate) fn validate_traffic_policy(
    r: &mut Report,
    path: &str,
    namespace: &str,
    tp: &TrafficPolicy,
) {
    if tp.outlier_detection.is_none()
        && tp.connection_pool.is_none()
        && tp.load_balancer.is_none()
        && tp.tls.is_none()
        && tp.port_level_settings.is_empty()
        && tp.tunnel.is_none()
        && tp.proxy_protocol.is_none()
        && tp.retry_budget.is_none()
    {
        r.error(path, "traffic policy must have at least one field");
        return;
    }
    if tp.tunnel.is_some() && tp.proxy_protocol.is_some() {
        r.error(path, "tunnel and proxyProtocol must not be set together");
        return;
    }
    if let Some(od) = &tp.outlier_detection {
        validate_outlier_detection(r, &at(path, "outlierDetection"), od);
    }
    if let Some(cp) = &tp.connection_pool {
        validate_connection_pool(r, &at(path, "connectionPool"), cp);
    }
    if let Some(lb) = &tp.load_balancer {
        validate_load_balancer(
            r,
            &at(path, "loadBalancer"),
            lb,
            tp.outlier_detection.is_some(),
        );
    }
    if let Some(tls) = &tp.tls {
        validate_client_tls(r, &at(path, "tls"), namespace, tls);
    }
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let p = idx(path, "portLevelSettings", i);
        if pl.port.is_none() {
            r.error(&p, "portTrafficPolicy must have valid port");
        }
        if pl.outlier_detection.is_none()
            && pl.connection_pool.is_none()
            && pl.load_balancer.is_none()
            && pl.tls.is_none()
        {
            r.error(&p, "port traffic policy must have at least one field");
            continue;
        }
        if let Some(od) = &pl.outlier_detection {
            validate_outlier_detection(r, &at(&p, "outlierDetection"), od);
        }
        if let Some(cp) = &pl.connection_pool {
            validate_connection_pool(r, &at(&p, "connectionPool"), cp);
        }
        if let Some(lb) = &pl.load_balancer {
            validate_load_balancer(
                r,
                &at(&p, "loadBalancer"),
                lb,
                pl.outlier_detection.is_some(),
            );
        }
        if let Some(tls) = &pl.tls {
            validate_client_tls(r, &at(&p, "tls"), namespace, tls);
        }
    }
    if let Some(t) = &tp.tunnel {
        let p = at(path, "tunnel");
        if !t.protocol.is_empty() && t.protocol != "CONNECT" && t.protocol != "POST" {
            r.error(&p, "tunnel protocol must be \"CONNECT\" or \"POST\"");
        }
        if let (Err(fqdn), Err(ip)) = (
            common::validate_fqdn(&t.target_host),
            common::validate_ip_address(&t.target_host),
        ) {
            r.error(
                &p,
                format!("tunnel target host must be valid FQDN or IP address: {fqdn}; {ip}"),
            );
        }
        if let Err(e) = common::validate_port(i64::from(t.target_port)) {
            r.error(&p, format!("tunnel target port is invalid: {e}"));
        }
    }
    if let Some(rb) = &tp.retry_budget
        && let Some(pct) = rb.percent
        && !(0.0..=100.0).contains(&pct)
    {
        r.error(
            &at(path, "retryBudget.percent"),
            "retry budget percent must be in range [0.0, 100.0]",
        );
    }
}

pub(crate) fn validate_outlier_detection(r: &mut Report, path: &str, od: &OutlierDetection) {
    if let Some(d) = &od.base_ejection_time {
        r.check(&at(path, "baseEjectionTime"), validate_duration(d));
    }
    if od.consecutive_errors != 0 {
        r.warn(
            &at(path, "consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
    if !od.split_external_local_origin_errors
        && od.consecutive_local_origin_failures.unwrap_or(0) > 0
    {
        r.error(
            path,
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
    if let Some(d) = &od.interval {
        r.check(&at(path, "interval"), validate_duration(d));
    }
    r.check(
        &at(path, "maxEjectionPercent"),
        validate_percent(od.max_ejection_percent),
    );
    r.check(
        &at(path, "minHealthPercent"),
        validate_percent(od.min_health_percent),
    );
}

pub(crate) fn validate_connection_pool(r: &mut Report, path: &str, cp: &ConnectionPoolSettings) {
    if cp.http.is_none() && cp.tcp.is_none() {
        r.error(path, "connection pool must have at least one field");
        return;
    }
    if let Some(h) = &cp.http {
        let p = at(path, "http");
        for (value, what) in [
            (h.http1_max_pending_requests, "http1 max pending requests"),
            (h.http2_max_requests, "http2 max requests"),
            (h.max_requests_per_connection, "max requests per connection"),
            (h.max_retries, "max retries"),
            (h.max_concurrent_streams, "max concurrent streams"),
        ] {
            if value < 0 {
                r.error(&p, format!("{what} must be non-negative"));
            }
        }
        if let Some(d) = &h.idle_timeout {
            r.check(&at(&p, "idleTimeout"), validate_duration(d));
        }
        if h.h2_upgrade_policy == ConnectionPoolSettingsHttpSettingsH2UpgradePolicy::Upgrade
            && h.use_client_protocol
        {
            r.error(
                &p,
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
        if let Some(ka) = &h.http2_keep_alive {
            let kp = at(&p, "http2KeepAlive");
            match &ka.interval {
                None => r.error(&kp, "http2 keepalive interval is required"),
                Some(d) => r.check(&at(&kp, "interval"), validate_duration(d)),
            }
            match &ka.timeout {
                None => r.error(&kp, "http2 keepalive timeout is required"),
                Some(d) => r.check(&at(&kp, "timeout"), validate_duration(d)),
            }
        }
    }
    if let Some(t) = &cp.tcp {
        let p = at(path, "tcp");
        if t.max_connections < 0 {
            r.error(&p, "max connections must be non-negative");
        }
        if let Some(d) = &t.connect_timeout {
            r.check(&at(&p, "connectTimeout"), validate_duration(d));
        }
        if let Some(d) = &t.max_connection_duration {
            r.check(&at(&p, "maxConnectionDuration"), validate_duration(d));
        }
        // 0s disables the idle timeout altogether.
        if let Some(d) = &t.idle_timeout
            && d.as_nanos() / 1_000_000 != 0
        {
            r.check(&at(&p, "idleTimeout"), validate_duration(d));
        }
        if let Some(ka) = &t.tcp_keepalive {
            if let Some(d) = &ka.time {
                r.check(&at(&p, "tcpKeepalive.time"), validate_duration(d));
            }
            if let Some(d) = &ka.interval {
                r.check(&at(&p, "tcpKeepalive.interval"), validate_duration(d));
            }
        }
    }
}

/// Envoy's primality test for Maglev table sizes.
fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x & 1 == 0 {
        return false;
    }
    let mut f = 3u64;
    while f.saturating_mul(f) <= x {
        if x.is_multiple_of(f) {
            return false;
        }
        f += 2;
    }
    true
}

pub(crate) fn validate_load_balancer(
    r: &mut Report,
    path: &str,
    lb: &LoadBalancerSettings,
    has_outlier: bool,
) {
    common::check_oneofs(r, path, lb);
    if let Some(ch) = &lb.consistent_hash {
        let p = at(path, "consistentHash");
        common::check_oneofs(r, &p, ch);
        if let Some(cookie) = &ch.http_cookie {
            if cookie.name.is_empty() {
                r.error(&at(&p, "httpCookie"), "name required for HttpCookie");
            }
            let mut names: Vec<&str> = Vec::new();
            for attr in &cookie.attributes {
                if attr.name.is_empty() {
                    r.error(
                        &at(&p, "httpCookie"),
                        "cookie attribute name cannot be empty",
                    );
                    continue;
                }
                if names.contains(&attr.name.as_str()) {
                    r.error(
                        &at(&p, "httpCookie"),
                        format!("duplicate cookie attribute name: {}", attr.name),
                    );
                } else {
                    names.push(&attr.name);
                }
            }
        }
        if ch.minimum_ring_size != 0 {
            r.warn(
                &at(&p, "minimumRingSize"),
                "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
            );
            if ch.ring_hash.is_some() || ch.maglev.is_some() {
                r.error(
                    &p,
                    "only one of MinimumRingSize or Maglev/Ringhash can be specified",
                );
            }
        }
        if let Some(ml) = &ch.maglev {
            let mp = at(&p, "maglev.tableSize");
            if ml.table_size == 0 {
                r.error(&mp, "tableSize must be set for maglev");
            }
            if ml.table_size >= 5_000_011 {
                r.error(&mp, "tableSize must be less than 5000011 for maglev");
            }
            if !is_prime(ml.table_size) {
                r.error(&mp, "tableSize must be a prime number for maglev");
            }
        }
    }
    if lb.locality_lb_setting.is_some() && lb.zone_aware_lb_setting.is_some() {
        r.error(
            path,
            "only one of localityLbSetting and zoneAwareLbSetting can be set",
        );
    }
    if let Some(l) = &lb.locality_lb_setting {
        validate_locality_lb(r, &at(path, "localityLbSetting"), l, has_outlier);
    }
    if let Some(z) = &lb.zone_aware_lb_setting {
        validate_zone_aware_lb(r, &at(path, "zoneAwareLbSetting"), z, has_outlier);
    }
    if let Some(w) = &lb.warmup {
        let p = at(path, "warmup");
        match &w.duration {
            None => r.error(&at(&p, "duration"), "duration is required"),
            Some(d) => r.check(&at(&p, "duration"), validate_duration(d)),
        }
        if w.minimum_percent.unwrap_or(0.0) > 100.0 {
            r.error(
                &at(&p, "minimumPercent"),
                "minimumPercent value should be less than or equal to 100",
            );
        }
        if w.aggression.is_some_and(|a| a <= 0.0) {
            r.error(&at(&p, "aggression"), "aggression should be greater than 0");
        }
    }
}

const TOPOLOGY_LABELS: &[&str] = &[
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

/// Locality load balancing: distribute or failover (not both), weights summing to 100,
/// localities `region/zone/subzone` with at most a trailing `*`, and no overlaps.
pub(crate) fn validate_locality_lb(
    r: &mut Report,
    path: &str,
    lb: &LocalityLoadBalancerSetting,
    has_outlier: bool,
) {
    if !lb.distribute.is_empty() && !lb.failover.is_empty() {
        r.error(
            path,
            "can not simultaneously specify 'distribute' and 'failover'",
        );
        return;
    }
    if !lb.failover.is_empty()
        && let Some(l) = lb
            .failover_priority
            .iter()
            .find(|l| TOPOLOGY_LABELS.contains(&l.as_str()))
    {
        r.error(
            path,
            format!(
                "can not simultaneously set 'failover' and topology label '{l}' in 'failover_priority'"
            ),
        );
        return;
    }
    let mut sources = Vec::new();
    for d in &lb.distribute {
        sources.push(d.from.clone());
        let mut total: u64 = 0;
        for w in d.to.values() {
            if *w == 0 || *w > 100 {
                r.error(path, "locality weight must be in range [1, 100]");
                return;
            }
            total += u64::from(*w);
        }
        if total != 100 {
            r.error(path, format!("total locality weight {total} != 100"));
            return;
        }
        let dests: Vec<String> = d.to.keys().cloned().collect();
        r.check(path, validate_localities(&dests));
    }
    r.check(path, validate_localities(&sources));
    let pairs = lb.failover.iter().map(|f| (f.from.as_str(), f.to.as_str()));
    check_failover(
        r,
        path,
        Failover::Locality,
        pairs,
        !lb.failover_priority.is_empty(),
        has_outlier,
    );
}

pub(crate) fn validate_zone_aware_lb(
    r: &mut Report,
    path: &str,
    lb: &ZoneAwareLoadBalancerSetting,
    has_outlier: bool,
) {
    for l in &lb.failover_priority {
        if TOPOLOGY_LABELS.contains(&l.as_str()) {
            r.error(
                path,
                format!(
                    "'failover_priority' for zone aware lb must not use topology label '{l}'; region- and zone-level routing are handled automatically"
                ),
            );
        }
    }
    let pairs = lb.failover.iter().map(|f| (f.from.as_str(), f.to.as_str()));
    check_failover(
        r,
        path,
        Failover::ZoneAware,
        pairs,
        !lb.failover_priority.is_empty(),
        has_outlier,
    );
}

/// The two load balancer settings that fail over between regions, whose messages differ.
#[derive(Clone, Copy)]
enum Failover {
    Locality,
    ZoneAware,
}

/// Failover needs outlier detection, and each `from → to` pair names two different
/// regions without zones or wildcards.
fn check_failover<'a>(
    r: &mut Report,
    path: &str,
    kind: Failover,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    has_priority: bool,
    has_outlier: bool,
) {
    let (what, region_only) = match kind {
        Failover::Locality => ("locality lb", "locality lb failover only specify region"),
        Failover::ZoneAware => (
            "zone aware lb",
            "zone aware lb failover only specifies region; zone and subzone failover are handled automatically",
        ),
    };
    let pairs: Vec<(&str, &str)> = pairs.collect();
    if (!pairs.is_empty() || has_priority) && !has_outlier {
        r.warn(
            path,
            "outlier detection policy must be provided for failover",
        );
    }
    for (from, to) in pairs {
        if from == to {
            r.error(
                path,
                format!("{what} failover settings must specify different regions"),
            );
        }
        if from.contains('/') || to.contains('/') {
            r.error(path, region_only);
        }
        if from.contains('*') || to.contains('*') {
            r.error(
                path,
                format!("{what} failover region should not contain '*' wildcard"),
            );
        }
    }
}

/// Localities may not overlap: `us-east`, then `us-east/zone1` is an overlap.
pub(crate) fn validate_localities(localities: &[String]) -> Result<(), String> {
    let mut seen: Vec<Vec<String>> = Vec::new();
    for locality in localities {
        let stars = locality.matches('*').count();
        if stars > 1 || (stars == 1 && !locality.ends_with('*')) {
            return Err(format!(
                "locality {locality} wildcard '*' number can not exceed 1 and must be in the end"
            ));
        }
        if seen.iter().any(|s| s.first().is_some_and(|r| r == "*")) {
            return Err(format!(
                "locality {locality} overlap with previous specified ones"
            ));
        }
        let parts: Vec<String> = locality.splitn(3, '/').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) {
            return Err(format!(
                "locality {locality} must not contain empty region/zone/subzone info"
            ));
        }
        // Two localities overlap when one is a prefix of the other, or one uses `*` at a
        // level the other names.
        let overlaps = seen.iter().any(|s| {
            s.iter()
                .zip(parts.iter())
                .all(|(a, b)| a == b || a == "*" || b == "*")
        });
        if overlaps {
            return Err(format!(
                "locality {locality} overlap with previous specified ones"
            ));
        }
        seen.push(parts);
    }
    Ok(())
}

/// Client-side TLS: certificates are exclusive with credentialName; MUTUAL needs a client
/// certificate and key; insecureSkipVerify excludes CA and SANs.
pub(crate) fn validate_client_tls(
    r: &mut Report,
    path: &str,
    namespace: &str,
    tls: &ClientTlsSettings,
) {
    use ClientTlsSettingsTlsMode as M;
    if let Some(rest) = tls.credential_name.strip_prefix("configmap://") {
        let ns = match rest.split_once('/') {
            Some((ns, _)) => ns,
            None => namespace,
        };
        if ns != namespace || namespace.is_empty() || rest.is_empty() {
            r.error(
                &at(path, "credentialName"),
                format!(
                    "invalid configmap:// credentialName: namespace must match the configuration namespace {namespace:?}"
                ),
            );
        }
    }
    if tls.insecure_skip_verify == Some(true) {
        if tls.mode == M::Simple
            && (!tls.ca_certificates.is_empty()
                || !tls.credential_name.is_empty()
                || !tls.subject_alt_names.is_empty())
        {
            r.error(
                path,
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
        if tls.mode == M::Mutual
            && (!tls.ca_certificates.is_empty() || !tls.subject_alt_names.is_empty())
        {
            r.error(
                path,
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
    }
    if matches!(tls.mode, M::Simple | M::Mutual) && !tls.credential_name.is_empty() {
        if !tls.client_certificate.is_empty()
            || !tls.ca_certificates.is_empty()
            || !tls.private_key.is_empty()
            || !tls.ca_crl.is_empty()
        {
            r.error(
                path,
                "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
            );
        }
        return;
    }
    if tls.mode == M::Mutual {
        if tls.client_certificate.is_empty() {
            r.error(path, "client certificate required for mutual tls");
        }
        if tls.private_key.is_empty() {
            r.error(path, "private key required for mutual tls");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        assert!(is_prime(65537));
        assert!(!is_prime(1000));
        assert!(is_prime(2));
    }

    #[test]
    fn localities_overlap() {
        assert!(validate_localities(&["a/b".into(), "a/c".into()]).is_ok());
        assert!(validate_localities(&["a".into(), "a/c".into()]).is_err());
        assert!(validate_localities(&["a/*".into(), "a/c".into()]).is_err());
        assert!(validate_localities(&["a/*/c".into()]).is_err());
        assert!(validate_localities(&["a//c".into()]).is_err());
    }
}
