use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;

use super::*;
use crate::proxy::ProxyKind;
use crate::testing::snapshot;
use crate::translate::translate;

const MESH: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
  - {name: grpc-admin, port: 9090}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1}
spec:
  address: 127.0.0.11
  labels: {app: reviews, version: v1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1}
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer:
        consistentHash: {httpHeaderName: x-user}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
  - name: v2
    labels: {version: v2}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-dns}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 443, name: tls, protocol: TLS}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-rr}
spec:
  hosts: [rr.example.com]
  location: MESH_EXTERNAL
  resolution: DNS_ROUND_ROBIN
  ports:
  - {number: 80, name: http, protocol: HTTP}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-none}
spec:
  hosts: [any.example.com]
  location: MESH_EXTERNAL
  resolution: NONE
  ports:
  - {number: 8443, name: tcp, protocol: TCP}
";

fn proxy(ip: &str) -> ProxyNode {
    let id = ProxyNode::node_id(ProxyKind::Sidecar, ip, "client", "default");
    ProxyNode::from_parts(&id, &Default::default(), Default::default()).unwrap()
}

fn mesh() -> MeshSnapshot {
    MeshSnapshot::new(snapshot(MESH), &[], Arc::new(Default::default()))
}

fn cluster<'a>(all: &'a [Cluster], name: &str) -> &'a Cluster {
    all.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

fn kind(c: &Cluster) -> Option<ClusterDiscoveryType> {
    c.cluster_discovery_type.clone()
}

fn of(t: DiscoveryType) -> Option<ClusterDiscoveryType> {
    Some(ClusterDiscoveryType::Type(t as i32))
}

#[test]
fn destination_rule_shapes_each_cluster() {
    let out = translate(&mesh(), &proxy("127.0.0.2")).clusters;
    let base = cluster(&out, "outbound|9080||reviews.default.svc.cluster.local");
    assert_eq!(base.lb_policy, LbPolicy::Random as i32);
    let t = &base.circuit_breakers.as_ref().unwrap().thresholds[0];
    assert_eq!(t.max_connections.as_ref().unwrap().value, 1);
    let v1 = cluster(&out, "outbound|9080|v1|reviews.default.svc.cluster.local");
    assert_eq!(v1.lb_policy, LbPolicy::RoundRobin as i32);
    let v1t = &v1.circuit_breakers.as_ref().unwrap().thresholds[0];
    assert_eq!(
        v1t.max_connections.as_ref().unwrap().value,
        1,
        "the pool is inherited from the top level"
    );
    let v2 = cluster(&out, "outbound|9080|v2|reviews.default.svc.cluster.local");
    assert_eq!(v2.lb_policy, LbPolicy::Random as i32);
    // Port-level settings replace the policy: ring hash, and no inherited pool limits.
    let grpc = cluster(&out, "outbound|9090||reviews.default.svc.cluster.local");
    assert_eq!(grpc.lb_policy, LbPolicy::RingHash as i32);
    let gt = &grpc.circuit_breakers.as_ref().unwrap().thresholds[0];
    assert_eq!(gt.max_connections.as_ref().unwrap().value, u32::MAX);
    assert!(
        grpc.typed_extension_protocol_options
            .contains_key(HTTP_PROTOCOL_OPTIONS),
        "grpc speaks HTTP/2 upstream"
    );
    assert!(base.typed_extension_protocol_options.is_empty());
}

#[test]
fn service_entry_resolutions() {
    let out = translate(&mesh(), &proxy("127.0.0.2")).clusters;
    let dns = cluster(&out, "outbound|443||api.example.com");
    assert_eq!(kind(dns), of(DiscoveryType::StrictDns));
    let hosts = &dns.load_assignment.as_ref().unwrap().endpoints[0].lb_endpoints;
    assert_eq!(hosts.len(), 1);
    let rr = cluster(&out, "outbound|80||rr.example.com");
    assert_eq!(kind(rr), of(DiscoveryType::LogicalDns));
    let none = cluster(&out, "outbound|8443||any.example.com");
    assert_eq!(kind(none), of(DiscoveryType::OriginalDst));
    assert_eq!(none.lb_policy, LbPolicy::ClusterProvided as i32);
    let eds = cluster(&out, "outbound|9080||reviews.default.svc.cluster.local");
    assert_eq!(kind(eds), of(DiscoveryType::Eds));
}

#[test]
fn inbound_clusters_for_the_proxys_own_workload() {
    let out = translate(&mesh(), &proxy("127.0.0.11")).clusters;
    let names: Vec<&str> = out
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| n.starts_with("inbound") || n.starts_with("Inbound"))
        .collect();
    assert_eq!(
        names,
        [
            "InboundPassthroughCluster",
            "inbound|9080||",
            "inbound|9090||"
        ]
    );
}

#[test]
fn hash_policy_for_routes() {
    let mesh = mesh();
    let p = proxy("127.0.0.2");
    let host = "reviews.default.svc.cluster.local";
    let policies = hash_policy_for(&mesh, &p, host, "", 9090);
    assert!(matches!(
        &policies[0].policy_specifier,
        Some(PolicySpecifier::Header(h)) if h.header_name == "x-user"
    ));
    assert!(hash_policy_for(&mesh, &p, host, "", 9080).is_empty());
    assert!(hash_policy_for(&mesh, &p, host, "v1", 9080).is_empty());
    assert!(hash_policy_for(&mesh, &p, "unknown.example", "", 80).is_empty());
}
