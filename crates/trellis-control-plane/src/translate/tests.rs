use std::sync::Arc;

use super::*;
use crate::proxy::ProxyKind;
use crate::testing::snapshot;

const MESH: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
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
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  egress:
  - port: {number: 9080, protocol: HTTP, name: http}
    bind: 127.0.0.2
    captureMode: NONE
    hosts: [./*]
";

fn proxy() -> ProxyNode {
    let id = ProxyNode::node_id(ProxyKind::Sidecar, "127.0.0.2", "client", "default");
    ProxyNode::from_parts(&id, &Default::default(), Default::default()).unwrap()
}

fn mesh() -> MeshSnapshot {
    MeshSnapshot::new(snapshot(MESH), &[], Arc::new(Default::default()))
}

#[test]
fn clusters_use_istio_names_and_subsets() {
    let out = translate(&mesh(), &proxy());
    let names: Vec<&str> = out.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "BlackHoleCluster",
            "InboundPassthroughCluster",
            "PassthroughCluster",
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080|v2|reviews.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local",
        ]
    );
}

#[test]
fn subset_endpoints_follow_labels() {
    let out = translate(&mesh(), &proxy());
    let count = |name: &str| {
        out.endpoints
            .iter()
            .find(|c| c.cluster_name == name)
            .map(|c| {
                c.endpoints
                    .iter()
                    .map(|l| l.lb_endpoints.len())
                    .sum::<usize>()
            })
    };
    assert_eq!(
        count("outbound|9080|v1|reviews.default.svc.cluster.local"),
        Some(1)
    );
    assert_eq!(
        count("outbound|9080|v2|reviews.default.svc.cluster.local"),
        Some(0)
    );
}

#[test]
fn listeners_include_capture_and_explicit_egress() {
    let out = translate(&mesh(), &proxy());
    let names: Vec<&str> = out.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.0.0.0_9080",
            "127.0.0.2_9080",
            "virtualInbound",
            "virtualOutbound"
        ]
    );
    let routes: Vec<&str> = out.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(routes, ["9080"]);
    let domains = &out.routes[0].virtual_hosts[0].domains;
    assert!(
        domains.contains(&"reviews".to_string())
            && domains.contains(&"reviews.default:9080".to_string())
    );
}

#[test]
fn translation_is_deterministic() {
    assert_eq!(translate(&mesh(), &proxy()), translate(&mesh(), &proxy()));
}
