//! Translation: the pure function `(mesh snapshot, proxy) → Envoy xDS resources`.
//!
//! No I/O, deterministic output (every list sorted by name), Istio's resource names. Each
//! concept has its own module: [`clusters`] (CDS), [`endpoints`] (EDS), [`listeners`]
//! (LDS), [`routes`] (RDS), [`scope`] (which services a proxy sees), [`mtls`] (Istio mutual
//! TLS on both sides), [`name_table`] (NDS, for the DNS proxy), [`access_log`] (Istio's
//! access logs on listeners, HCMs and `tcp_proxy`).

pub mod access_log;
pub mod authn;
pub mod authz;
pub mod clusters;
pub mod endpoints;
pub mod listeners;
pub mod mtls;
pub mod name_table;
pub mod names;
pub mod routes;
pub mod scope;
pub mod view;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;

use trellis_dns::nds::NameTable;

use crate::mesh::MeshSnapshot;
use crate::proxy::ProxyNode;

/// Everything one proxy needs, by xDS type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
    /// Istio's NDS name table, for proxies that proxy DNS ([`ProxyNode::dns_capture`]).
    pub name_table: Option<NameTable>,
}

/// Translates the mesh for one proxy.
pub fn translate(mesh: &MeshSnapshot, proxy: &ProxyNode) -> Resources {
    let scope = scope::Scope::of(mesh, proxy);
    let clusters = clusters::clusters(mesh, proxy, &scope);
    let endpoints = endpoints::load_assignments(mesh, &clusters);
    let listeners = listeners::listeners(mesh, proxy, &scope);
    let routes = routes::route_configurations(mesh, proxy, &scope, &listeners);
    Resources {
        listeners,
        routes,
        clusters,
        endpoints,
        name_table: proxy.dns_capture.then(|| name_table::name_table(&scope)),
    }
}

/// A protobuf Duration from a std duration.
pub(crate) fn pb_duration(d: std::time::Duration) -> envoy_types::pb::google::protobuf::Duration {
    envoy_types::pb::google::protobuf::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests;
