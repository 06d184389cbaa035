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

use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

use super::mtls::{self, upstream::istio_tls_mode};
use super::names;
use crate::bootstrap::CLUSTER_ID;
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
        metadata: Some(endpoint_metadata(endpoint)),
        ..Default::default()
    }
}

/// Istio's telemetry metadata of an endpoint, `filter_metadata.istio.workload`:
/// `workload;namespace;canonical service;canonical revision;cluster id` (a `latest`
/// revision, Istio's default, is left empty), so that a client sidecar can label requests
/// with the destination workload even when metadata exchange cannot tell it.
pub fn istio_metadata(endpoint: &Endpoint) -> Struct {
    let (service, revision) = canonical_service(&endpoint.labels, &endpoint.workload_name);
    let workload = format!(
        "{};{};{service};{};{CLUSTER_ID}",
        endpoint.workload_name,
        endpoint.namespace,
        if revision == "latest" { "" } else { revision },
    );
    let fields = [(
        "workload".to_string(),
        Value {
            kind: Some(Kind::StringValue(workload)),
        },
    )];
    Struct {
        fields: fields.into_iter().collect(),
    }
}

/// An endpoint's metadata: its mTLS mode (when it has a sidecar) and its telemetry.
fn endpoint_metadata(endpoint: &Endpoint) -> Metadata {
    let mut metadata = tls_mode_metadata(endpoint).unwrap_or_default();
    metadata
        .filter_metadata
        .insert("istio".to_string(), istio_metadata(endpoint));
    metadata
}

/// Istio's canonical service name and revision: the first of
/// `service.istio.io/canonical-name`, `app.kubernetes.io/name`, `app` (else the workload
/// name), and of `service.istio.io/canonical-revision`, `app.kubernetes.io/version`,
/// `version` (else `latest`).
pub fn canonical_service<'a>(
    labels: &'a BTreeMap<String, String>,
    workload: &'a str,
) -> (&'a str, &'a str) {
    let first = |keys: [&str; 3]| keys.iter().find_map(|k| labels.get(*k)).map(String::as_str);
    (
        first([
            "service.istio.io/canonical-name",
            "app.kubernetes.io/name",
            "app",
        ])
        .unwrap_or(workload),
        first([
            "service.istio.io/canonical-revision",
            "app.kubernetes.io/version",
            "version",
        ])
        .unwrap_or("latest"),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(labels: &[(&str, &str)], workload: &str) -> Endpoint {
        Endpoint {
            address: "10.0.0.1".into(),
            port: 9080,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            service_account: "default".into(),
            namespace: "default".into(),
            has_sidecar: true,
            locality: String::new(),
            weight: 1,
            workload_name: workload.into(),
        }
    }

    fn workload(m: &Struct) -> &str {
        match &m.fields["workload"].kind {
            Some(Kind::StringValue(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn endpoints_carry_istios_workload_metadata() {
        let e = endpoint(&[("app", "reviews"), ("version", "v2")], "reviews-v2");
        assert_eq!(
            workload(&istio_metadata(&e)),
            "reviews-v2;default;reviews;v2;Kubernetes"
        );
        let canonical = endpoint(
            &[
                ("app", "reviews"),
                ("service.istio.io/canonical-name", "rev"),
                ("service.istio.io/canonical-revision", "r1"),
            ],
            "reviews-v2",
        );
        assert_eq!(
            workload(&istio_metadata(&canonical)),
            "reviews-v2;default;rev;r1;Kubernetes"
        );
        // No labels: the workload name, and `latest` left out.
        assert_eq!(
            workload(&istio_metadata(&endpoint(&[], "db-0"))),
            "db-0;default;db-0;;Kubernetes"
        );
        assert!(lb_endpoint(&e).metadata.is_some());
    }
}
