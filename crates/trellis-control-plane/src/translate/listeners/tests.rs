use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;

use super::gateway::{ServerKind, servers};
use crate::mesh::MeshSnapshot;
use crate::proxy::{ProxyKind, ProxyNode};
use crate::testing::snapshot;
use crate::translate::translate;

const MESH: &str = "
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: 240.240.1.1
  selector: {app: db}
  ports:
  - {name: tcp, port: 3306}
  - {name: plain, port: 7000}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1}
spec:
  address: 127.0.0.31
  labels: {app: db}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db}
spec:
  hosts: [db]
  tcp:
  - match: [{sourceLabels: {app: canary}}]
    route: [{destination: {host: db, port: {number: 3306}, subset: canary}}]
  - route:
    - {destination: {host: db, port: {number: 3306}, subset: a}, weight: 90}
    - {destination: {host: db, port: {number: 3306}, subset: b}, weight: 10}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*']
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ['*']
    tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ['*']
    tls: {mode: AUTO_PASSTHROUGH}
";

fn node(kind: ProxyKind, ip: &str, labels: &[(&str, &str)]) -> ProxyNode {
    let id = ProxyNode::node_id(kind, ip, "w", "default");
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ProxyNode::from_parts(&id, &BTreeMap::new(), labels).unwrap()
}

fn mesh() -> MeshSnapshot {
    MeshSnapshot::new(snapshot(MESH), &[], Arc::new(Default::default()))
}

fn find<'a>(all: &'a [Listener], name: &str) -> &'a Listener {
    all.iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name}"))
}

fn tcp_proxy(filter: &Filter) -> TcpProxy {
    match &filter.config_type {
        Some(ConfigType::TypedConfig(any)) => prost::Message::decode(any.value.as_slice()).unwrap(),
        _ => panic!("no typed config"),
    }
}

#[test]
fn tcp_routes_choose_weighted_clusters_by_source() {
    let plain = translate(&mesh(), &node(ProxyKind::Sidecar, "127.0.0.2", &[])).listeners;
    let l = find(&plain, "240.240.1.1_3306");
    let proxy = tcp_proxy(&l.filter_chains[0].filters[0]);
    match proxy.cluster_specifier {
        Some(ClusterSpecifier::WeightedClusters(w)) => {
            let got: Vec<(&str, u32)> = w
                .clusters
                .iter()
                .map(|c| (c.name.as_str(), c.weight))
                .collect();
            assert_eq!(
                got,
                [
                    ("outbound|3306|a|db.default.svc.cluster.local", 90),
                    ("outbound|3306|b|db.default.svc.cluster.local", 10)
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    let canary = translate(
        &mesh(),
        &node(ProxyKind::Sidecar, "127.0.0.2", &[("app", "canary")]),
    )
    .listeners;
    let l = find(&canary, "240.240.1.1_3306");
    assert_eq!(
        tcp_proxy(&l.filter_chains[0].filters[0]).cluster_specifier,
        Some(ClusterSpecifier::Cluster(
            "outbound|3306|canary|db.default.svc.cluster.local".into()
        ))
    );
}

#[test]
fn undeclared_protocols_are_sniffed() {
    let out = translate(&mesh(), &node(ProxyKind::Sidecar, "127.0.0.2", &[])).listeners;
    let l = find(&out, "0.0.0.0_7000");
    assert_eq!(l.listener_filters[0].name, super::HTTP_INSPECTOR);
    // VIP: HTTP and TCP chains; any address: HTTP; the rest: the default chain.
    assert_eq!(l.filter_chains.len(), 3);
    assert!(l.default_filter_chain.is_some());
}

#[test]
fn inbound_chains_per_workload_port() {
    let out = translate(&mesh(), &node(ProxyKind::Sidecar, "127.0.0.31", &[])).listeners;
    let l = find(&out, "virtualInbound");
    let ports: Vec<u32> = l
        .filter_chains
        .iter()
        .filter_map(|c| c.filter_chain_match.as_ref()?.destination_port.as_ref())
        .map(|p| p.value)
        .collect();
    // 15006 is the loop guard; 7000 is sniffed (HTTP and TCP chains).
    assert_eq!(ports, [15006, 3306, 7000, 7000]);
    let passthrough = tcp_proxy(&l.default_filter_chain.as_ref().unwrap().filters[0]);
    assert_eq!(
        passthrough.cluster_specifier,
        Some(ClusterSpecifier::Cluster(
            "InboundPassthroughCluster".into()
        ))
    );
}

#[test]
fn gateways_select_routers_by_labels() {
    let mesh = mesh();
    let router = node(
        ProxyKind::Router,
        "127.0.0.100",
        &[("istio", "ingressgateway")],
    );
    let kinds: Vec<(u32, ServerKind, Option<String>)> = servers(&mesh, &router)
        .into_iter()
        .map(|s| (s.port, s.kind, s.route_name))
        .collect();
    assert_eq!(
        kinds,
        [
            (80, ServerKind::Http, Some("http.80".into())),
            (
                443,
                ServerKind::Https,
                Some("https.443.https.gw.default".into())
            ),
            (15443, ServerKind::Unsupported, None),
        ]
    );
    let names: Vec<String> = translate(&mesh, &router)
        .listeners
        .into_iter()
        .map(|l| l.name)
        .collect();
    // AUTO_PASSTHROUGH is not served yet, and a listener without chains is left out.
    assert_eq!(names, ["0.0.0.0_443", "0.0.0.0_80"]);
    let other = node(
        ProxyKind::Router,
        "127.0.0.101",
        &[("istio", "egressgateway")],
    );
    assert!(translate(&mesh, &other).listeners.is_empty());
}

#[test]
fn registry_only_blackholes_unknown_destinations() {
    let yaml = format!(
        "{MESH}---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default}}
spec:
  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}
"
    );
    let mesh = MeshSnapshot::new(snapshot(&yaml), &[], Arc::new(Default::default()));
    let out = translate(&mesh, &node(ProxyKind::Sidecar, "127.0.0.2", &[])).listeners;
    let l = find(&out, "virtualOutbound");
    let fallback = tcp_proxy(&l.default_filter_chain.as_ref().unwrap().filters[0]);
    assert_eq!(
        fallback.cluster_specifier,
        Some(ClusterSpecifier::Cluster("BlackHoleCluster".into()))
    );
}

/// STRICT on the workload's namespace: with SDS only TLS chains (and no plain default
/// chain); without SDS the ports refuse every connection instead of serving plain text.
#[test]
fn strict_peer_authentication_on_the_inbound_side() {
    let strict = "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
                  metadata: {name: default, namespace: default}\nspec: {mtls: {mode: STRICT}}\n";
    let mesh = MeshSnapshot::new(
        snapshot(&format!("{MESH}{strict}")),
        &[],
        Arc::new(Default::default()),
    );
    let id = ProxyNode::node_id(ProxyKind::Sidecar, "127.0.0.31", "db-1", "default");
    let sds: BTreeMap<String, String> = [("SDS".to_string(), "true".to_string())].into();
    let with_sds = ProxyNode::from_parts(&id, &sds, BTreeMap::new()).unwrap();
    let out = translate(&mesh, &with_sds).listeners;
    let l = find(&out, "virtualInbound");
    assert!(l.default_filter_chain.is_none());
    for chain in &l.filter_chains[1..] {
        let m = chain.filter_chain_match.as_ref().unwrap();
        assert_eq!(m.transport_protocol, "tls", "{m:?}");
        assert!(chain.transport_socket.is_some(), "{m:?}");
    }

    let without = ProxyNode::from_parts(&id, &BTreeMap::new(), BTreeMap::new()).unwrap();
    let out = translate(&mesh, &without).listeners;
    let l = find(&out, "virtualInbound");
    for chain in &l.filter_chains {
        let cluster = tcp_proxy(&chain.filters[0]).cluster_specifier;
        assert_eq!(
            cluster,
            Some(ClusterSpecifier::Cluster("BlackHoleCluster".into()))
        );
        assert!(chain.transport_socket.is_none());
    }
}

/// Istio's egress gateway: servers with `bind` get listeners on that address (route names
/// with `.<bind>`), and an ISTIO_MUTUAL server terminates mesh TLS with the router's own
/// workload certificate, requiring a client certificate — only when the router has SDS.
#[test]
fn gateway_servers_bind_their_address_and_istio_mutual_uses_the_workload_certificate() {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as SocketConfig;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;

    let yaml = "
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: test-egress, namespace: ns1}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    bind: 127.0.0.9
    hosts: [www.company.com]
  - port: {number: 443, name: https, protocol: HTTPS}
    bind: 127.0.0.9
    hosts: ['*']
    tls: {mode: ISTIO_MUTUAL}
";
    let mesh = MeshSnapshot::new(snapshot(yaml), &[], Arc::new(Default::default()));
    let id = ProxyNode::node_id(ProxyKind::Router, "127.0.0.9", "egress", "istio-system");
    let labels: BTreeMap<String, String> = [("istio".into(), "egressgateway".into())].into();
    let sds: BTreeMap<String, String> = [("SDS".to_string(), "true".to_string())].into();
    let router = ProxyNode::from_parts(&id, &sds, labels.clone()).unwrap();

    let routes: Vec<(&str, u32, ServerKind, Option<String>)> = servers(&mesh, &router)
        .into_iter()
        .map(|s| (s.address, s.port, s.kind, s.route_name))
        .collect();
    assert_eq!(
        routes,
        [
            (
                "127.0.0.9",
                80,
                ServerKind::Http,
                Some("http.80.127.0.0.9".into())
            ),
            (
                "127.0.0.9",
                443,
                ServerKind::Https,
                Some("https.443.https.test-egress.ns1.127.0.0.9".into())
            ),
        ]
    );
    let out = translate(&mesh, &router).listeners;
    let names: Vec<&str> = out.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["127.0.0.9_443", "127.0.0.9_80"]);
    let chain = &find(&out, "127.0.0.9_443").filter_chains[0];
    let Some(SocketConfig::TypedConfig(any)) = chain
        .transport_socket
        .as_ref()
        .and_then(|t| t.config_type.clone())
    else {
        panic!("no TLS on the ISTIO_MUTUAL chain");
    };
    let tls: DownstreamTlsContext = prost::Message::decode(any.value.as_slice()).unwrap();
    assert_eq!(tls.require_client_certificate.map(|b| b.value), Some(true));
    let common = tls.common_tls_context.unwrap();
    assert_eq!(common.tls_certificate_sds_secret_configs[0].name, "default");
    assert_eq!(common.alpn_protocols, ["h2", "http/1.1"]);
    let Some(ValidationContextType::CombinedValidationContext(combined)) =
        common.validation_context_type
    else {
        panic!("no combined validation context");
    };
    let roots = combined.validation_context_sds_secret_config.unwrap();
    assert_eq!(roots.name, "ROOTCA");
    // No `subjectAltNames`: any client certificate from the mesh roots.
    let sans = combined.default_validation_context.unwrap();
    assert!(sans.match_typed_subject_alt_names.is_empty());

    let without = ProxyNode::from_parts(&id, &BTreeMap::new(), labels).unwrap();
    let names: Vec<String> = translate(&mesh, &without)
        .listeners
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["127.0.0.9_80"]);
}
