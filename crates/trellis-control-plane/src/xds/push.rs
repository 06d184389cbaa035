//! Incremental pushes: what a mesh update can have changed, and the cheapest correct way
//! to bring one proxy's resources up to date.
//!
//! [`classify`] compares two consecutive mesh snapshots with the store's changes between
//! them. Invariants, which the tests hold against full translation:
//! - [`PushScope::Endpoints`] only when no service changed (same hosts, ports, VIPs,
//!   resolution) and every service port whose endpoints changed is EDS (resolution
//!   STATIC) and kept its workload identities (service accounts: clusters check them in
//!   mutual TLS): then only ClusterLoadAssignments differ, except for a proxy whose own
//!   address is among the changed endpoints (its inbound side follows its endpoints), which
//!   is translated fully;
//! - [`PushScope::Namespaces`] only when nothing but Sidecars outside the root namespace
//!   changed: a Sidecar scopes the proxies of its own namespace only;
//! - anything else is [`PushScope::Full`].
//!
//! A connection applies a scope only to the update right after the one it last handled
//! (generations are consecutive); a connection that skipped an update translates fully.

use std::collections::BTreeSet;
use std::sync::Arc;

use trellis_api::Kind;
use trellis_config::store::Change;

use super::resources::{Pool, ProxyResources, TypeSet, XdsResource, XdsType};
use crate::mesh::MeshSnapshot;
use crate::proxy::ProxyNode;
use crate::registry::{Endpoint, Resolution};
use crate::translate::{endpoints, names, translate};

/// What a mesh update may have changed, relative to the update before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushScope {
    /// Anything: translate every proxy again.
    Full,
    /// Only the Sidecars of these namespaces: translate the proxies there, skip the rest.
    Namespaces(BTreeSet<String>),
    /// Only the endpoints of these EDS service ports `(host, port)`; `addresses` are the
    /// endpoint addresses involved, before and after.
    Endpoints {
        ports: BTreeSet<(String, u32)>,
        addresses: BTreeSet<String>,
    },
}

impl PushScope {
    /// The label used in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PushScope::Full => "full",
            PushScope::Namespaces(_) => "namespace",
            PushScope::Endpoints { .. } => "eds",
        }
    }
}

/// Kinds whose objects only ever become endpoints.
const ENDPOINT_KINDS: [Kind; 2] = [Kind::WorkloadEntry, Kind::Pod];

/// What changed from `prev` to `next`, given the store's `changes` in between (registered
/// workloads are seen through the registries).
pub fn classify(prev: &MeshSnapshot, next: &MeshSnapshot, changes: &[Change]) -> PushScope {
    if prev.jwks != next.jwks {
        // Fetched keys go into every proxy's jwt_authn filter that names their issuer.
        return PushScope::Full;
    }
    let sidecars_only = !changes.is_empty()
        && changes
            .iter()
            .all(|c| c.key.kind == Kind::Sidecar && c.key.namespace != next.root_namespace);
    let registry_same = prev.registry.services == next.registry.services
        && prev.registry.endpoints == next.registry.endpoints;
    if sidecars_only && registry_same {
        return PushScope::Namespaces(changes.iter().map(|c| c.key.namespace.clone()).collect());
    }
    if !changes.iter().all(|c| ENDPOINT_KINDS.contains(&c.key.kind)) {
        return PushScope::Full;
    }
    if prev.registry.services != next.registry.services {
        return PushScope::Full;
    }
    let (old, new) = (&prev.registry.endpoints, &next.registry.endpoints);
    let mut ports = BTreeSet::new();
    let mut addresses = BTreeSet::new();
    for key in old.keys().chain(new.keys()) {
        let (before, after) = (old.get(key), new.get(key));
        if before == after || ports.contains(key) {
            continue;
        }
        let eds = next
            .registry
            .service(&key.0)
            .is_some_and(|s| s.resolution == Resolution::Static);
        if !eds || identities(before) != identities(after) {
            return PushScope::Full;
        }
        for e in before.into_iter().chain(after).flatten() {
            addresses.insert(e.address.clone());
        }
        ports.insert(key.clone());
    }
    PushScope::Endpoints { ports, addresses }
}

/// The workload identities among some endpoints.
fn identities(endpoints: Option<&Vec<Endpoint>>) -> BTreeSet<(&str, &str)> {
    endpoints
        .into_iter()
        .flatten()
        .map(|e| (e.namespace.as_str(), e.service_account.as_str()))
        .collect()
}

/// How a proxy was brought up to date.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing it has can have changed.
    Skip,
    /// Translated again from scratch.
    Full(Arc<ProxyResources>),
    /// Only these load assignments were recomputed; everything else is shared with before.
    Endpoints(Arc<ProxyResources>),
}

impl Plan {
    pub fn label(&self) -> &'static str {
        match self {
            Plan::Skip => "skipped",
            Plan::Full(_) => "full",
            Plan::Endpoints(_) => "eds",
        }
    }
}

/// Brings `current` (the proxy's resources for the previous update) to `mesh` under
/// `scope`; new resources equal to known ones are shared through `pool`.
pub fn plan(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    current: &Arc<ProxyResources>,
    scope: &PushScope,
    pool: &Pool,
) -> Plan {
    let full = || {
        Plan::Full(Arc::new(ProxyResources::interned(
            translate(mesh, proxy),
            pool,
        )))
    };
    match scope {
        PushScope::Full => full(),
        PushScope::Namespaces(namespaces) if namespaces.contains(&proxy.namespace) => full(),
        PushScope::Namespaces(_) => Plan::Skip,
        PushScope::Endpoints { addresses, .. }
            if proxy
                .ips
                .iter()
                .any(|ip| addresses.contains(&ip.to_string())) =>
        {
            full()
        }
        PushScope::Endpoints { ports, .. } => {
            let old = current.of_type(XdsType::Endpoint);
            let affected: Vec<&String> = old
                .keys()
                .filter(|name| {
                    names::parse_outbound_cluster(name)
                        .is_some_and(|(port, _, host)| ports.contains(&(host.to_string(), port)))
                })
                .collect();
            if affected.is_empty() {
                return Plan::Skip;
            }
            let mut endpoints: TypeSet = old.clone();
            for name in affected {
                let assignment = endpoints::load_assignment(mesh, name);
                let shared = pool.intern(XdsType::Endpoint, XdsResource::Endpoint(assignment));
                endpoints.insert(name.clone(), shared);
            }
            Plan::Endpoints(Arc::new(current.with_endpoints(endpoints)))
        }
    }
}

#[cfg(test)]
mod tests;
