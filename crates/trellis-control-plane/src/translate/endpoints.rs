//! EDS: the endpoints of every EDS cluster, filtered by subset labels.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, Metadata, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints,
};

use super::mtls::{self, upstream::istio_tls_mode};
use super::names;
use crate::mesh::MeshSnapshot;
use crate::registry::Endpoint;
use crate::registry::build::selects;

/// One load assignment per EDS cluster, in cluster order.
pub fn load_assignments(mesh: &MeshSnapshot, clusters: &[Cluster]) -> Vec<ClusterLoadAssignment> {
    clusters
        .iter()
        .filter(|c| {
            c.cluster_discovery_type == Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
        })
        .map(|c| load_assignment(mesh, &c.name))
        .collect()
}

/// The load assignment of one outbound cluster.
pub fn load_assignment(mesh: &MeshSnapshot, cluster: &str) -> ClusterLoadAssignment {
    let endpoints = names::parse_outbound_cluster(cluster)
        .map(|(port, subset, host)| endpoints_of(mesh, host, port, subset))
        .unwrap_or_default();
    let lb_endpoints: Vec<LbEndpoint> = endpoints.into_iter().map(lb_endpoint).collect();
    ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints: if lb_endpoints.is_empty() {
            Vec::new()
        } else {
            vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}

/// The endpoints of a service port whose labels a subset selects (all without a subset),
/// as one locality group (empty when there are none).
pub fn locality_endpoints(
    mesh: &MeshSnapshot,
    host: &str,
    port: u32,
    subset_labels: Option<&BTreeMap<String, String>>,
) -> Vec<LocalityLbEndpoints> {
    let lb_endpoints: Vec<LbEndpoint> = mesh
        .registry
        .endpoints(host, port)
        .iter()
        .filter(|e| subset_labels.is_none_or(|l| selects(l, &e.labels)))
        .map(lb_endpoint)
        .collect();
    if lb_endpoints.is_empty() {
        return Vec::new();
    }
    vec![LocalityLbEndpoints {
        lb_endpoints,
        ..Default::default()
    }]
}

fn endpoints_of<'a>(
    mesh: &'a MeshSnapshot,
    host: &str,
    port: u32,
    subset: &str,
) -> Vec<&'a Endpoint> {
    let service = mesh.registry.service(host);
    let subset_labels = service.and_then(|s| {
        let (_, rule) = mesh.destination_rule(host, &s.namespace, &s.namespace)?;
        rule.subsets
            .iter()
            .find(|x| x.name == subset)
            .map(|x| &x.labels)
    });
    mesh.registry
        .endpoints(host, port)
        .iter()
        .filter(|e| subset.is_empty() || subset_labels.is_some_and(|l| selects(l, &e.labels)))
        .collect()
}

fn lb_endpoint(endpoint: &Endpoint) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(EnvoyEndpoint {
            address: Some(socket_address(&endpoint.address, endpoint.port)),
            ..Default::default()
        })),
        load_balancing_weight: Some(envoy_types::pb::google::protobuf::UInt32Value {
            value: endpoint.weight.max(1),
        }),
        metadata: tls_mode_metadata(endpoint),
        ..Default::default()
    }
}

/// `envoy.transport_socket_match: {tlsMode: istio}` on an endpoint whose workload has a
/// sidecar, which auto mTLS clusters' `transport_socket_matches` select on.
fn tls_mode_metadata(endpoint: &Endpoint) -> Option<Metadata> {
    endpoint.has_sidecar.then(|| Metadata {
        filter_metadata: [(mtls::TRANSPORT_SOCKET_MATCH.to_string(), istio_tls_mode())].into(),
        ..Default::default()
    })
}

/// An Envoy socket address.
pub fn socket_address(address: &str, port: u32) -> Address {
    Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: address.to_string(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}
