use std::collections::BTreeMap;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest,
};
use trellis_config::store::{ChangeKind, ObjectKey};

use super::*;
use crate::proxy::ProxyKind;
use crate::testing::snapshot;
use crate::xds::resources::XdsType;
use crate::xds::state::{Delta, Sotw};

const SERVICES: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  selector: {app: ratings}
  ports:
  - {name: http, port: 9080}
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
kind: WorkloadEntry
metadata: {name: ratings-v1}
spec:
  address: 127.0.0.21
  labels: {app: ratings, version: v1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1}
spec:
  address: 127.0.0.11
  labels: {app: reviews, version: v1}
";

const REVIEWS_V2: &str = "
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2}
spec:
  address: 127.0.0.12
  labels: {app: reviews, version: v2}
";

fn mesh(extra: &str) -> MeshSnapshot {
    MeshSnapshot::new(
        snapshot(&format!("{SERVICES}{extra}")),
        &[],
        Arc::new(Default::default()),
    )
}

fn client() -> ProxyNode {
    let id = ProxyNode::node_id(ProxyKind::Sidecar, "127.0.0.2", "client", "default");
    ProxyNode::from_parts(&id, &BTreeMap::new(), BTreeMap::new()).unwrap()
}

fn change(kind: Kind, name: &str) -> Change {
    Change {
        key: ObjectKey {
            kind,
            namespace: "default".into(),
            name: name.into(),
        },
        kind: ChangeKind::Added,
    }
}

fn full(mesh: &MeshSnapshot, proxy: &ProxyNode) -> Arc<ProxyResources> {
    Arc::new(translate(mesh, proxy).into())
}

const REVIEWS: &str = "outbound|9080||reviews.default.svc.cluster.local";
const REVIEWS_V2_CLUSTER: &str = "outbound|9080|v2|reviews.default.svc.cluster.local";

#[test]
fn a_new_workload_entry_changes_only_the_endpoints_of_its_service() {
    let (before, after) = (mesh(""), mesh(REVIEWS_V2));
    let scope = classify(
        &before,
        &after,
        &[change(Kind::WorkloadEntry, "reviews-v2")],
    );
    let PushScope::Endpoints { ports, addresses } = &scope else {
        panic!("{scope:?}");
    };
    assert_eq!(
        ports.iter().collect::<Vec<_>>(),
        [&("reviews.default.svc.cluster.local".to_string(), 9080)]
    );
    assert!(addresses.contains("127.0.0.12"));

    let proxy = client();
    let current = full(&before, &proxy);
    let Plan::Endpoints(next) = plan(&after, &proxy, &current, &scope, &Pool::default()) else {
        panic!("expected an endpoints-only plan");
    };
    // Exactly what full translation gives, with the other types shared, not rebuilt.
    assert_eq!(*next, *full(&after, &proxy));
    for t in [XdsType::Cluster, XdsType::Listener, XdsType::Route] {
        assert!(next.shares(&current, t), "{t:?} rebuilt");
    }
}

/// Clusters check the service accounts of a service's workloads in mutual TLS: an
/// endpoint with a new identity changes clusters too.
#[test]
fn a_new_workload_identity_is_a_full_push() {
    let with_identity = REVIEWS_V2.replace(
        "  address: 127.0.0.12\n",
        "  address: 127.0.0.12\n  serviceAccount: reviews-v2\n",
    );
    assert_ne!(with_identity, REVIEWS_V2);
    let scope = classify(
        &mesh(""),
        &mesh(&with_identity),
        &[change(Kind::WorkloadEntry, "reviews-v2")],
    );
    assert_eq!(scope, PushScope::Full);
}

#[test]
fn an_endpoint_change_sends_only_the_affected_load_assignments() {
    let (before, after) = (mesh(""), mesh(REVIEWS_V2));
    let proxy = client();
    let current = full(&before, &proxy);
    let eds_names: Vec<String> = current.of_type(XdsType::Endpoint).keys().cloned().collect();
    assert!(eds_names.len() >= 4, "{eds_names:?}");

    // Delta: subscribed to everything, then the push.
    let mut delta = Delta::new(current.clone());
    for t in XdsType::ORDER {
        let names = if t == XdsType::Endpoint {
            eds_names.clone()
        } else {
            vec![]
        };
        delta.on_request(&DeltaDiscoveryRequest {
            type_url: t.url().into(),
            resource_names_subscribe: names,
            ..Default::default()
        });
    }
    let scope = classify(
        &before,
        &after,
        &[change(Kind::WorkloadEntry, "reviews-v2")],
    );
    let Plan::Endpoints(next) = plan(&after, &proxy, &current, &scope, &Pool::default()) else {
        panic!("expected an endpoints-only plan");
    };
    let sent = delta.on_push(next.clone());
    let summary: Vec<(XdsType, Vec<String>)> = sent
        .iter()
        .map(|(t, r)| {
            let r: DeltaDiscoveryResponse = r.decode().unwrap();
            (*t, r.resources.iter().map(|r| r.name.clone()).collect())
        })
        .collect();
    // The new endpoint is in the service's cluster and in its v2 subset; ratings and v1
    // are untouched.
    assert_eq!(
        summary,
        [(
            XdsType::Endpoint,
            vec![REVIEWS_V2_CLUSTER.to_string(), REVIEWS.to_string()]
        )]
    );

    // State of the world: one EDS response, nothing else.
    let mut sotw = Sotw::new(current.clone());
    for t in XdsType::ORDER {
        let names = if t == XdsType::Endpoint {
            eds_names.clone()
        } else {
            vec![]
        };
        sotw.on_request(&DiscoveryRequest {
            type_url: t.url().into(),
            resource_names: names,
            ..Default::default()
        });
    }
    let sent: Vec<XdsType> = sotw.on_push(next).into_iter().map(|(t, _)| t).collect();
    assert_eq!(sent, [XdsType::Endpoint]);
}

#[test]
fn proxies_that_use_none_of_the_changed_endpoints_are_skipped() {
    let (before, after) = (mesh(""), mesh(REVIEWS_V2));
    let scope = classify(&before, &after, &[]);
    let proxy = client();
    let mut current = (*full(&before, &proxy)).clone();
    let kept: TypeSet = current
        .of_type(XdsType::Endpoint)
        .iter()
        .filter(|(n, _)| !n.contains("reviews"))
        .map(|(n, r)| (n.clone(), r.clone()))
        .collect();
    current = current.with_endpoints(kept);
    assert_eq!(
        plan(&after, &proxy, &Arc::new(current), &scope, &Pool::default()),
        Plan::Skip
    );
}

#[test]
fn a_proxy_whose_own_endpoint_changed_is_translated_fully() {
    let (before, after) = (mesh(""), mesh(REVIEWS_V2));
    let scope = classify(
        &before,
        &after,
        &[change(Kind::WorkloadEntry, "reviews-v2")],
    );
    let id = ProxyNode::node_id(ProxyKind::Sidecar, "127.0.0.12", "reviews-v2", "default");
    let proxy = ProxyNode::from_parts(&id, &BTreeMap::new(), BTreeMap::new()).unwrap();
    let current = full(&before, &proxy);
    assert!(matches!(
        plan(&after, &proxy, &current, &scope, &Pool::default()),
        Plan::Full(_)
    ));
}

#[test]
fn config_changes_are_full_and_namespaced_sidecars_skip_other_namespaces() {
    let (before, after) = (mesh(""), mesh(""));
    assert_eq!(
        classify(&before, &after, &[change(Kind::VirtualService, "reviews")]),
        PushScope::Full
    );
    let scope = classify(&before, &after, &[change(Kind::Sidecar, "default")]);
    assert_eq!(
        scope,
        PushScope::Namespaces(["default".to_string()].into_iter().collect())
    );
    let id = ProxyNode::node_id(ProxyKind::Sidecar, "127.0.0.3", "other", "other");
    let other = ProxyNode::from_parts(&id, &BTreeMap::new(), BTreeMap::new()).unwrap();
    let current = full(&before, &other);
    assert_eq!(
        plan(&after, &other, &current, &scope, &Pool::default()),
        Plan::Skip
    );
    assert!(matches!(
        plan(&after, &client(), &current, &scope, &Pool::default()),
        Plan::Full(_)
    ));
    // A Sidecar in the root namespace is the default of every namespace.
    let mut root = change(Kind::Sidecar, "default");
    root.key.namespace = "istio-system".into();
    assert_eq!(classify(&before, &after, &[root]), PushScope::Full);
}

/// A full translation after a VirtualService change shares every type it left equal with
/// the resources before, so connections skip those types by pointer.
#[test]
fn a_full_plan_shares_the_types_it_did_not_change() {
    let vs = "
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
";
    let (before, after) = (mesh(""), mesh(vs));
    let proxy = client();
    let pool = Pool::default();
    let current = Arc::new(ProxyResources::interned(translate(&before, &proxy), &pool));
    let Plan::Full(next) = plan(&after, &proxy, &current, &PushScope::Full, &pool) else {
        panic!("a full scope translates");
    };
    assert!(!next.shares(&current, XdsType::Route), "routes changed");
    assert_ne!(
        next.of_type(XdsType::Route),
        current.of_type(XdsType::Route)
    );
    for t in [XdsType::Cluster, XdsType::Endpoint, XdsType::Listener] {
        assert!(next.shares(&current, t), "{t:?} is shared");
    }
    assert_eq!(
        *next,
        ProxyResources::interned(translate(&after, &proxy), &pool)
    );
}
