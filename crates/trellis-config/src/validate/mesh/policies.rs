//! Mesh-wide policies: trust domains, service settings, locality load balancing, TLS
//! curves, and the default traffic and inbound retry policies.

use trellis_api::istio::mesh::MeshConfigDefaultTrafficPolicy;
use trellis_api::istio::networking::{
    ConnectionPoolSettingsHttpSettingsH2UpgradePolicy, HttpRetry, LocalityLoadBalancerSetting,
    ZoneAwareLoadBalancerSetting,
};

use crate::validate::common::{self};
use crate::validate::report::at;
use crate::validate::{Report, destination_rule as dr, virtual_service as vs};

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
pub(super) const ECDH_CURVES: &[&str] = &["P-256", "P-384", "P-521", "X25519", "X25519MLKEM768"];

pub(super) fn check_ecdh_curves(r: &mut Report, path: &str, curves: &[String]) {
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
