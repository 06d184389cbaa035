use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
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
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1}
spec:
  address: 127.0.0.11
  labels: {app: reviews, version: v1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-2}
spec:
  address: 127.0.0.12
  labels: {app: reviews, version: v1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {tier: one}}
  - {name: v2, labels: {tier: two}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match:
    - sourceLabels: {track: canary}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews}
spec:
  selector:
    matchLabels: {app: reviews}
  action: DENY
  rules:
  - to:
    - operation: {paths: [/admin]}
";

fn mesh() -> MeshSnapshot {
    MeshSnapshot::new(snapshot(MESH), &[], Arc::new(Default::default()))
}

fn sidecar(name: &str, ip: &str, labels: &[(&str, &str)]) -> ProxyNode {
    let id = ProxyNode::node_id(ProxyKind::Sidecar, ip, name, "default");
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ProxyNode::from_parts(&id, &BTreeMap::new(), labels).unwrap()
}

fn key(mesh: &MeshSnapshot, proxy: &ProxyNode) -> ViewKey {
    ViewKey::of(&ViewInputs::of(mesh), proxy)
}

#[test]
fn proxies_differing_only_in_what_translation_ignores_share_a_view() {
    let mesh = mesh();
    let pairs = [
        // Clients: other ids, addresses, apps and unselected labels.
        (
            sidecar("client-a", "127.0.0.50", &[("app", "a"), ("tier", "one")]),
            sidecar("client-b", "127.0.0.51", &[("app", "b"), ("tier", "two")]),
        ),
        // Two replicas of the same service: other addresses, same instances.
        (
            sidecar("reviews-1", "127.0.0.11", &[("app", "reviews")]),
            sidecar("reviews-2", "127.0.0.12", &[("app", "reviews")]),
        ),
    ];
    for (a, b) in pairs {
        assert_eq!(key(&mesh, &a), key(&mesh, &b), "{} / {}", a.id, b.id);
        assert_eq!(
            translate(&mesh, &a),
            translate(&mesh, &b),
            "{} / {}",
            a.id,
            b.id
        );
    }
}

#[test]
fn every_input_translation_reads_makes_another_view() {
    let mesh = mesh();
    let base = sidecar("client", "127.0.0.50", &[("app", "client")]);
    let mut variants = vec![
        // A label a VirtualService matches on (sourceLabels).
        sidecar(
            "client",
            "127.0.0.50",
            &[("app", "client"), ("track", "canary")],
        ),
        // A label an AuthorizationPolicy selects on.
        sidecar("client", "127.0.0.50", &[("app", "reviews")]),
        // An address that is an endpoint of a service.
        sidecar("client", "127.0.0.11", &[("app", "client")]),
    ];
    let mut other = base.clone();
    other.namespace = "other".into();
    variants.push(other);
    let mut other = base.clone();
    other.sds = true;
    variants.push(other);
    let mut other = base.clone();
    other.ports = vec![8080];
    variants.push(other);
    let mut other = base.clone();
    other.kind = ProxyKind::Router;
    variants.push(other);
    let base_key = key(&mesh, &base);
    for v in &variants {
        assert_ne!(key(&mesh, v), base_key, "{v:?}");
    }
    // The canary client really is routed differently, the reviews replica really has
    // inbound resources: sharing would be wrong.
    for v in &variants[..3] {
        assert_ne!(translate(&mesh, v), translate(&mesh, &base), "{v:?}");
    }
}

#[test]
fn only_selector_labels_count_and_routers_keep_all_labels() {
    let inputs = ViewInputs::of(&mesh());
    // Subset labels (`tier`) and the workloads' own labels select no proxy.
    let expected =
        [("app", "reviews"), ("track", "canary")].map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(inputs.selector_labels, BTreeSet::from(expected));
    let mut a = sidecar(
        "gw",
        "127.0.0.60",
        &[("istio", "ingressgateway"), ("tier", "one")],
    );
    a.kind = ProxyKind::Router;
    let mut b = a.clone();
    b.labels.insert("tier".into(), "two".into());
    assert_ne!(ViewKey::of(&inputs, &a), ViewKey::of(&inputs, &b));
    let gateway = |name: &str| sidecar("gw", "127.0.0.60", &[(GATEWAY_NAME_LABEL, name)]);
    assert_ne!(
        ViewKey::of(&inputs, &gateway("one")),
        ViewKey::of(&inputs, &gateway("two"))
    );
}

#[test]
fn sidecar_workload_selectors_and_ingress_count() {
    let yaml = "
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: pinned}
spec:
  workloadSelector:
    labels: {role: edge}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 0.0.0.0:9080
";
    let mesh = MeshSnapshot::new(snapshot(yaml), &[], Arc::new(Default::default()));
    let a = sidecar("a", "127.0.0.50", &[("role", "edge")]);
    let b = sidecar("b", "127.0.0.51", &[("role", "edge")]);
    let c = sidecar("c", "127.0.0.50", &[("role", "core")]);
    // The ingress binds each proxy's own address: no sharing between addresses.
    assert_ne!(key(&mesh, &a), key(&mesh, &b));
    assert_ne!(translate(&mesh, &a), translate(&mesh, &b));
    assert_ne!(key(&mesh, &a), key(&mesh, &c));
}
