//! meshNetworks: the networks of a multi-network mesh, their endpoints and gateways.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::validate::common::{self, validate_fqdn, validate_port};
use crate::validate::report::key;
use crate::validate::{Finding, Report};

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
