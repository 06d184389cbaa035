//! Istio's validation rules for one object at a time.
//!
//! Each check returns [`Finding`]s (errors and warnings apart) that carry the field path,
//! so a message reads `spec.http[0].route[0].weight: ...`.
//!
//! The rules follow Istio's admission webhook (and, where the webhook is silent, the CRD
//! schema's CEL rules), so that an object Istio accepts is accepted here and an object Istio
//! rejects is rejected with a message carrying Istio's key words. Layout: one module per
//! kind, plus [`common`] for the pieces several kinds share (hosts, ports, labels,
//! durations, selectors...). Every function is pure and never panics on user input.

pub mod access_log;
pub mod common;
mod destination_rule;
mod envoy_filter;
mod extensions;
mod fragment;
mod gateway;
mod mesh;
mod report;
mod security;
mod service_entry;
mod sidecar;
mod telemetry;
mod virtual_service;

use trellis_api::{Resource, Spec};

pub use fragment::{FRAGMENT_KINDS, validate_fragment};
pub use mesh::{
    MESH_FRAGMENT_KINDS, MeshNetworks, proxy_config_with_defaults, validate_connect_timeout,
    validate_control_plane_auth_policy, validate_extension_provider_service, validate_mesh_config,
    validate_mesh_fragment, validate_mesh_networks, validate_proxy_address, validate_proxy_config,
    validate_trust_domain,
};
pub(crate) use report::Report;

/// How serious a finding is: an error rejects the object, a warning accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error,
    Warning,
}

/// One problem found in an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// Field path from the object's root, e.g. `spec.http[0].timeout`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        if self.path.is_empty() {
            write!(f, "{level}: {}", self.message)
        } else {
            write!(f, "{level}: {}: {}", self.path, self.message)
        }
    }
}

/// True when any finding is an error (the object would be rejected).
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.level == Level::Error)
}

/// Validates one decoded object by Istio's rules for its kind.
pub fn validate(resource: &Resource) -> Vec<Finding> {
    let mut r = Report::default();
    let meta = &resource.meta;
    common::validate_metadata(&mut r, resource);
    let ns = meta.namespace.as_str();
    match &resource.spec {
        Spec::VirtualService(vs) => virtual_service::validate_virtual_service(&mut r, meta, vs),
        Spec::DestinationRule(dr) => destination_rule::validate_destination_rule(&mut r, ns, dr),
        Spec::Gateway(gw) => gateway::validate_gateway(&mut r, meta, gw),
        Spec::ServiceEntry(se) => service_entry::validate_service_entry(&mut r, meta, se),
        Spec::WorkloadEntry(we) => service_entry::validate_workload_entry_resource(&mut r, we),
        Spec::WorkloadGroup(wg) => service_entry::validate_workload_group(&mut r, wg),
        Spec::Sidecar(sc) => sidecar::validate_sidecar(&mut r, ns, sc),
        Spec::EnvoyFilter(ef) => envoy_filter::validate_envoy_filter(&mut r, ef),
        Spec::ProxyConfig(pc) => extensions::validate_proxy_config(&mut r, pc),
        Spec::PeerAuthentication(pa) => security::validate_peer_authentication(&mut r, pa),
        Spec::AuthorizationPolicy(ap) => security::validate_authorization_policy(&mut r, ap),
        Spec::RequestAuthentication(ra) => security::validate_request_authentication(&mut r, ra),
        Spec::Telemetry(t) => telemetry::validate_telemetry(&mut r, t),
        Spec::WasmPlugin(w) => extensions::validate_wasm_plugin(&mut r, w),
        Spec::TrafficExtension(t) => extensions::validate_traffic_extension(&mut r, t),
        // Kubernetes' own objects are validated by Kubernetes, not by the mesh.
        Spec::Namespace(_)
        | Spec::Service(_)
        | Spec::Pod(_)
        | Spec::Deployment(_)
        | Spec::ConfigMap(_)
        | Spec::Secret(_) => {}
    }
    r.into_findings()
}
