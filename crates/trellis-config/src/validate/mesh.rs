//! MeshConfig: the mesh-wide settings. Only the rules that keep a mesh from starting or
//! that Envoy would NACK are checked here: ports, timeouts, locality settings, trust domain.

use trellis_api::istio::mesh::MeshConfig;

use super::common;
use super::{Finding, Report};

/// Validates a MeshConfig by Istio's rules for the fields Trellis reads.
pub fn validate_mesh_config(mesh: &MeshConfig) -> Vec<Finding> {
    let mut r = Report::default();
    if mesh.proxy_listen_port != 0
        && let Err(e) = common::validate_port(i64::from(mesh.proxy_listen_port))
    {
        r.error("proxyListenPort", format!("invalid proxy listen port: {e}"));
    }
    if let Some(t) = &mesh.connect_timeout {
        if let Err(e) = common::validate_duration(t) {
            r.error("connectTimeout", format!("invalid connect timeout: {e}"));
        } else if t.as_nanos() < 1_000_000 || t.as_nanos() > 3_600_000_000_000 * 24 * 365 {
            r.error("connectTimeout", "invalid connect timeout: out of range");
        }
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
    if !mesh.trust_domain.is_empty() {
        let ok = mesh
            .trust_domain
            .trim_end_matches('.')
            .split('.')
            .all(common::is_dns1123_label);
        if !ok {
            r.error(
                "trustDomain",
                format!("trust domain name {:?} invalid", mesh.trust_domain),
            );
        }
    }
    r.into_findings()
}
