//! Route translation through the whole pipeline (snapshot → route configurations).

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use trellis_api::Spec;
use trellis_api::istio::networking::StringMatch;

use super::*;
use crate::proxy::ProxyKind;
use crate::testing::snapshot;

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
";

fn mesh(extra: &str) -> MeshSnapshot {
    MeshSnapshot::new(
        snapshot(&format!("{SERVICES}---\n{extra}")),
        &[],
        Arc::new(Default::default()),
    )
}

fn node(kind: ProxyKind, name: &str, ns: &str, labels: &[(&str, &str)]) -> ProxyNode {
    let id = ProxyNode::node_id(kind, "10.0.0.9", name, ns);
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ProxyNode::from_parts(&id, &Default::default(), labels).unwrap()
}

fn client() -> ProxyNode {
    node(
        ProxyKind::Sidecar,
        "productpage",
        "default",
        &[("app", "productpage")],
    )
}

fn sidecar_routes(mesh: &MeshSnapshot, proxy: &ProxyNode) -> RouteConfiguration {
    let scope = Scope::of(mesh, proxy);
    sidecar_route_configuration(mesh, proxy, &scope, 9080)
}

fn vhost<'a>(rc: &'a RouteConfiguration, name: &str) -> &'a VirtualHost {
    rc.virtual_hosts
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no virtual host {name} in {rc:#?}"))
}

fn cluster(r: &Route) -> &str {
    match &r.action {
        Some(Action::Route(a)) => match &a.cluster_specifier {
            Some(ClusterSpecifier::Cluster(c)) => c,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

const REVIEWS: &str = "reviews.default.svc.cluster.local:9080";

#[test]
fn source_labels_are_evaluated_for_the_proxy() {
    let m = mesh(
        "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: from-productpage
    match:
    - sourceLabels: {app: productpage}
    route:
    - destination: {host: reviews, subset: v2}
  - name: rest
    route:
    - destination: {host: reviews, subset: v1}
",
    );
    // For productpage the first match is decided at translation time and matches every
    // request, so it is a catch-all and nothing follows it.
    let rc = sidecar_routes(&m, &client());
    let routes = &vhost(&rc, REVIEWS).routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].name, "from-productpage");
    assert_eq!(
        cluster(&routes[0]),
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );

    let other = node(
        ProxyKind::Sidecar,
        "ratings",
        "default",
        &[("app", "ratings")],
    );
    let rc = sidecar_routes(&m, &other);
    let routes = &vhost(&rc, REVIEWS).routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].name, "rest");
}

#[test]
fn first_virtual_service_owns_the_host() {
    let m = mesh(
        "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a-reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b-reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: reviews, subset: v2}
",
    );
    let rc = sidecar_routes(&m, &client());
    let routes = &vhost(&rc, REVIEWS).routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(
        cluster(&routes[0]),
        "outbound|9080|v1|reviews.default.svc.cluster.local"
    );
    // Every domain is served by exactly one virtual host.
    let mut all: Vec<&String> = rc.virtual_hosts.iter().flat_map(|v| &v.domains).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n);
}

#[test]
fn a_virtual_service_with_no_route_here_leaves_the_default() {
    let m = mesh(
        "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match:
    - port: 8080
    route:
    - destination: {host: reviews, subset: v2}
",
    );
    let rc = sidecar_routes(&m, &client());
    let routes = &vhost(&rc, REVIEWS).routes;
    assert_eq!(routes[0].name, DEFAULT_ROUTE);
    assert_eq!(
        cluster(&routes[0]),
        "outbound|9080||reviews.default.svc.cluster.local"
    );
}

#[test]
fn an_invalid_regex_skips_only_its_route() {
    let mut m = mesh(
        "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: bad
    match:
    - uri: {regex: /ok}
    route:
    - destination: {host: reviews, subset: v2}
  - name: good
    route:
    - destination: {host: reviews, subset: v1}
",
    );
    // Validation would reject the object; translation must hold even when it gets one.
    let vs = m
        .virtual_services
        .iter_mut()
        .find(|r| r.meta.name == "reviews")
        .unwrap();
    let mut resource = (**vs).clone();
    if let Spec::VirtualService(spec) = &mut resource.spec {
        spec.http[0].r#match[0].uri = Some(StringMatch {
            regex: Some("/(unclosed".into()),
            ..Default::default()
        });
    }
    *vs = Arc::new(resource);
    let rc = sidecar_routes(&m, &client());
    let routes = &vhost(&rc, REVIEWS).routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].name, "good");
    assert!(rc.virtual_hosts.len() >= 3, "other hosts still served");
}

#[test]
fn routes_after_a_catch_all_are_dropped() {
    let m = mesh(
        "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: all
    route:
    - destination: {host: reviews, subset: v1}
  - name: never
    match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v2}
",
    );
    let rc = sidecar_routes(&m, &client());
    let names: Vec<&str> = vhost(&rc, REVIEWS)
        .routes
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["all"]);
}

#[test]
fn delegate_routes_are_merged_into_the_root() {
    let m = mesh(
        "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-root}
spec:
  hosts: [reviews]
  http:
  - name: root
    match:
    - uri: {prefix: /reviews}
    timeout: 3s
    delegate: {name: reviews-leaf}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-leaf}
spec:
  http:
  - name: v2
    match:
    - uri: {prefix: /reviews/v2}
    route:
    - destination: {host: reviews, subset: v2}
  - name: outside
    match:
    - uri: {prefix: /ratings}
    route:
    - destination: {host: reviews, subset: v1}
",
    );
    let rc = sidecar_routes(&m, &client());
    let routes = &vhost(&rc, REVIEWS).routes;
    let names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["root-v2"]);
    let Some(Action::Route(action)) = &routes[0].action else {
        panic!()
    };
    assert_eq!(action.timeout.map(|t| t.seconds), Some(3));
}

#[test]
fn registry_only_blocks_with_502() {
    let m = mesh(
        "
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
",
    );
    let rc = sidecar_routes(&m, &client());
    let last = rc.virtual_hosts.last().unwrap();
    assert_eq!(last.name, BLOCK_ALL);
    assert!(matches!(
        &last.routes[0].action,
        Some(Action::DirectResponse(d)) if d.status == 502
    ));
}

#[test]
fn mirrors_faults_and_cors_are_attached() {
    let m = mesh(
        "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - fault:
      delay: {fixedDelay: 2s, percentage: {value: 10}}
    corsPolicy:
      allowOrigins: [{exact: 'https://example.com'}]
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 25}
    route:
    - destination: {host: ratings}
",
    );
    let rc = sidecar_routes(&m, &client());
    let route = &vhost(&rc, "ratings.default.svc.cluster.local:9080").routes[0];
    let mut filters: Vec<&str> = route
        .typed_per_filter_config
        .keys()
        .map(String::as_str)
        .collect();
    filters.sort();
    assert_eq!(filters, [CORS_FILTER, FAULT_FILTER]);
    let Some(Action::Route(action)) = &route.action else {
        panic!()
    };
    assert_eq!(
        action.request_mirror_policies[0].cluster,
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
}

#[test]
fn gateway_merges_virtual_services_catch_all_last() {
    let m = mesh(
        "
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*/bookinfo.example.com']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a-catch-all}
spec:
  hosts: [bookinfo.example.com]
  gateways: [istio-system/gw]
  http:
  - route:
    - destination: {host: reviews, port: {number: 9080}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b-ratings}
spec:
  hosts: [bookinfo.example.com]
  gateways: [istio-system/gw]
  http:
  - name: ratings
    match:
    - uri: {prefix: /ratings}
    route:
    - destination: {host: ratings}
",
    );
    let gw = node(
        ProxyKind::Router,
        "ingress",
        "istio-system",
        &[("istio", "ingressgateway")],
    );
    let rc = gateway::route_configuration(&m, &gw, "http.80").unwrap();
    let vh = vhost(&rc, "bookinfo.example.com:80");
    assert_eq!(vh.domains, ["bookinfo.example.com"]);
    let clusters: Vec<&str> = vh.routes.iter().map(cluster).collect();
    assert_eq!(
        clusters,
        [
            "outbound|9080||ratings.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local",
        ]
    );
    // A name no server uses gives an empty configuration, not an error.
    let empty = gateway::route_configuration(&m, &gw, "http.81").unwrap();
    assert!(empty.virtual_hosts.is_empty());
}
