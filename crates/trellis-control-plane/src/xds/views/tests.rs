use std::collections::BTreeMap;

use super::*;
use crate::proxy::ProxyKind;
use crate::testing::snapshot;
use crate::xds::resources::XdsType;

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
  labels: {app: reviews}
";

fn mesh() -> MeshSnapshot {
    MeshSnapshot::new(snapshot(MESH), &[], Arc::new(Default::default()))
}

fn sidecar(name: &str, ip: &str, namespace: &str) -> ProxyNode {
    let id = ProxyNode::node_id(ProxyKind::Sidecar, ip, name, namespace);
    ProxyNode::from_parts(&id, &BTreeMap::new(), BTreeMap::new()).unwrap()
}

#[tokio::test]
async fn a_view_is_translated_once_and_shared_and_views_never_mix() {
    let (mesh, views) = (mesh(), Views::default());
    let a = views
        .resources(&mesh, &sidecar("a", "127.0.0.50", "default"), None)
        .await;
    let b = views
        .resources(&mesh, &sidecar("b", "127.0.0.51", "default"), None)
        .await;
    assert!(Arc::ptr_eq(&a.resources, &b.resources));
    assert_eq!(a.plan, "full");
    // Another namespace, and the service's own endpoint: views of their own.
    let other = views
        .resources(&mesh, &sidecar("c", "127.0.0.50", "other"), None)
        .await;
    let instance = views
        .resources(&mesh, &sidecar("d", "127.0.0.11", "default"), None)
        .await;
    for r in [&other.resources, &instance.resources] {
        assert!(!Arc::ptr_eq(&a.resources, r));
        assert_ne!(*a.resources, **r);
    }
    assert_eq!(views.cells.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn unchanged_resources_keep_their_identity_across_updates() {
    let proxy = sidecar("a", "127.0.0.50", "default");
    let first = Views::after(None);
    let before = first.resources(&mesh(), &proxy, None).await.resources;
    // A full retranslation of an equal mesh: new values, the same shared resources.
    let second = Views::after(Some(&first));
    let after = second
        .resources(&mesh(), &proxy, Some((&before, &PushScope::Full)))
        .await;
    assert_eq!(after.plan, "full");
    assert!(!Arc::ptr_eq(&before, &after.resources));
    for t in XdsType::ORDER {
        let (old, new) = (before.of_type(t), after.resources.of_type(t));
        assert_eq!(old.len(), new.len());
        for (name, r) in new {
            assert!(Arc::ptr_eq(r, &old[name]), "{t:?} {name}");
        }
    }
}
