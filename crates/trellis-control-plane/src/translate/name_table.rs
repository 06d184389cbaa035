//! Istio's name table (NDS) for one proxy, as istiod builds it (pkg/dns/server
//! `BuildNameTable`): every service the proxy can see that has an address, by its host
//! name, with that address. Kubernetes Services also carry their registry, name and
//! namespace, from which the proxy's DNS server derives the short aliases (`reviews`,
//! `reviews.default`); the table itself names full hosts only.
//!
//! Addresses are the ones the proxy's listeners use: a Service's `clusterIP`, a
//! ServiceEntry's first `addresses` entry, or the VIP the registry allocates (as Istio's
//! automatic allocation does). Not in the table, as in Istio: services without an address
//! (`resolution: NONE` without `addresses`, wildcard hosts without `addresses`). Istio's
//! per-pod entries for headless services are not built.

use std::collections::BTreeMap;

use trellis_dns::nds::{KUBERNETES, NameInfo, NameTable};

use super::scope::Scope;
use crate::registry::Service;

/// The registry name Istio gives ServiceEntry hosts.
const EXTERNAL: &str = "External";

/// The name table of the services in `scope`.
pub fn name_table(scope: &Scope) -> NameTable {
    let table: BTreeMap<String, NameInfo> = scope
        .services
        .iter()
        .filter_map(|service| Some((service.hostname.clone(), info(service)?)))
        .collect();
    NameTable { table }
}

fn info(service: &Service) -> Option<NameInfo> {
    let ip = service.address?;
    let mut info = NameInfo {
        ips: vec![ip.to_string()],
        registry: EXTERNAL.to_string(),
        ..Default::default()
    };
    if service.kubernetes {
        info.registry = KUBERNETES.to_string();
        info.shortname = service
            .hostname
            .split('.')
            .next()
            .unwrap_or_default()
            .to_string();
        info.namespace = service.namespace.clone();
    }
    Some(info)
}

#[cfg(test)]
mod tests;
