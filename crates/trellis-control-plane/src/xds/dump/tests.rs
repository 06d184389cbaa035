use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::mesh::MeshSnapshot;
use crate::proxy::{ProxyKind, ProxyNode};
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
metadata: {name: reviews-v1}
spec:
  address: 127.0.0.11
  labels: {app: reviews, version: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews}
";

#[test]
fn translation_summarises_into_istioctl_rows() {
    let mesh = MeshSnapshot::new(snapshot(MESH), &[], Arc::new(Default::default()));
    let id = ProxyNode::node_id(ProxyKind::Sidecar, "127.0.0.2", "client", "default");
    let proxy = ProxyNode::from_parts(&id, &Default::default(), Default::default()).unwrap();
    let resources: ProxyResources = translate(&mesh, &proxy).into();
    let dump = ConfigDump::from_resources(&id, &resources, |_| None);

    let reviews = "outbound|9080||reviews.default.svc.cluster.local";
    let cluster = dump.clusters.iter().find(|c| c.name == reviews).unwrap();
    assert_eq!(cluster.kind, "EDS");
    assert!(dump.clusters.iter().any(|c| c.name == "BlackHoleCluster"));
    assert_eq!(
        dump.endpoints
            .iter()
            .filter(|e| e.cluster == reviews)
            .map(|e| (e.endpoint.as_str(), e.status.as_str()))
            .collect::<Vec<_>>(),
        [("127.0.0.11:9080", "HEALTHY")]
    );
    let http = dump.listeners.iter().find(|l| l.port == 9080).unwrap();
    assert!(
        http.chains.iter().any(|c| c.destination == "Route: 9080"),
        "{http:?}"
    );
    let routes: Vec<&RouteInfo> = dump.routes.iter().filter(|r| r.name == "9080").collect();
    assert!(
        routes.iter().any(|r| r.matches == "/* + 1 header"
            && r.virtual_service.as_deref() == Some("reviews.default")),
        "{routes:?}"
    );
    // Round trip through JSON, as the CLI reads it.
    let back: ConfigDump = serde_json::from_value(serde_json::to_value(&dump).unwrap()).unwrap();
    assert_eq!(back, dump);
}

#[test]
fn envoy_config_dump_summarises_the_same_way() {
    let dump = json!({"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
         "static_clusters": [{"cluster": {"name": "xds-grpc", "type": "STRICT_DNS"}}],
         "dynamic_active_clusters": [
            {"cluster": {"name": "outbound|9080|v1|reviews.default.svc.cluster.local", "type": "EDS",
              "metadata": {"filter_metadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews"}}}}},
            {"cluster": {"name": "BlackHoleCluster"}}]},
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
         "dynamic_listeners": [{"name": "127.0.0.2_9080", "active_state": {"listener": {
            "name": "127.0.0.2_9080",
            "address": {"socket_address": {"address": "127.0.0.2", "port_value": 9080}},
            "filter_chains": [{"filter_chain_match": {"transport_protocol": "raw_buffer", "application_protocols": ["http/1.1", "h2c"]},
              "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "rds": {"route_config_name": "9080"}}}]}],
            "default_filter_chain": {"filters": [{"name": "tcp", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "cluster": "PassthroughCluster"}}]}}}}]},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
         "dynamic_route_configs": [{"route_config": {"name": "9080", "virtual_hosts": [
            {"name": "reviews.default.svc.cluster.local:9080", "domains": ["reviews", "reviews.default"],
             "routes": [{"match": {"prefix": "/"}, "metadata": {"filter_metadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"}}}}]}]}}]},
        {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
         "dynamic_endpoint_configs": [{"endpoint_config": {
            "cluster_name": "outbound|9080|v1|reviews.default.svc.cluster.local",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.11", "port_value": 9080}}},
                                             "health_status": "HEALTHY"}]}]}}]}
    ]});
    let out = ConfigDump::from_envoy("p", &dump);
    let clusters: Vec<(&str, &str, Option<&str>)> = out
        .clusters
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.kind.as_str(),
                c.destination_rule.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        clusters,
        [
            ("BlackHoleCluster", "STATIC", None),
            (
                "outbound|9080|v1|reviews.default.svc.cluster.local",
                "EDS",
                Some("reviews.default")
            ),
            ("xds-grpc", "STRICT_DNS", None),
        ]
    );
    assert_eq!(
        out.listeners[0].chains,
        [
            ChainInfo {
                matches: "Trans: raw_buffer; App: http/1.1,h2c".into(),
                destination: "Route: 9080".into()
            },
            ChainInfo {
                matches: "ALL".into(),
                destination: "Cluster: PassthroughCluster".into()
            },
        ]
    );
    assert_eq!(out.routes[0].matches, "/*");
    assert_eq!(
        out.routes[0].virtual_service.as_deref(),
        Some("reviews.default")
    );
    assert_eq!(out.endpoints[0].endpoint, "127.0.0.11:9080");
}

#[test]
fn names_come_apart_like_istioctl() {
    assert_eq!(
        object_name("/apis/networking.istio.io/v1/namespaces/shop/virtual-service/reviews"),
        "reviews.shop"
    );
    assert_eq!(
        cluster_parts("outbound|9080|v1|reviews.default.svc.cluster.local"),
        Some((
            "reviews.default.svc.cluster.local".into(),
            "9080".into(),
            "v1".into(),
            "outbound".into()
        ))
    );
    assert_eq!(cluster_parts("BlackHoleCluster"), None);
    assert_eq!(
        describe_match(&[], "", &[], &[], Some(9080)),
        "Addr: *:9080"
    );
}
