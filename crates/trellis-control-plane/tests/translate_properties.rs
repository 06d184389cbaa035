//! Property tests for translation: random *valid* meshes (Services with ports and
//! protocols, WorkloadEntries, DestinationRules with subsets and policies, VirtualServices
//! with matches, weights, retries, faults and mirrors, TCP routes, Sidecars, ServiceEntries,
//! Gateways), written as Istio YAML and loaded through the store as `trellis control-plane`
//! loads them, then translated for random proxies. No sockets.
//!
//! Invariants (what Envoy needs to accept the resources, and what the push path relies on):
//! 1. translation does not panic;
//! 2. names are unique per xDS type;
//! 3. every cluster a route or listener names exists (or is Passthrough/BlackHole/
//!    InboundPassthrough);
//! 4. every EDS cluster has a ClusterLoadAssignment;
//! 5. every RDS name a listener uses has a RouteConfiguration;
//! 6. weighted clusters have only weights > 0;
//! 7. virtual host domains are unique within a RouteConfiguration (Envoy rejects
//!    duplicates), and filter chain matches are unique within a listener;
//! 8. translation is deterministic: twice gives equal resources.
//!
//! Case count: `PROPTEST_CASES` (default 128 here).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier as TcpSpecifier;
use prost::{Message, Name};
use proptest::prelude::*;
use trellis_config::store::{SourceFile, StoreState};
use trellis_control_plane::mesh::MeshSnapshot;
use trellis_control_plane::proxy::{ProxyKind, ProxyNode};
use trellis_control_plane::registry::Workload;
use trellis_control_plane::translate::{Resources, translate};

const NAMESPACES: [&str; 2] = ["default", "shop"];
const SERVICES: [&str; 6] = ["reviews", "ratings", "details", "web", "db", "cache"];
const PORTS: [u32; 6] = [80, 8080, 9080, 3306, 443, 9000];
/// Port names choose the protocol, as Istio's naming convention does.
const PORT_NAMES: [&str; 6] = ["http", "grpc", "tcp", "tls", "http2", "mongo"];
const VERSIONS: [&str; 3] = ["v1", "v2", "v3"];
const SPECIAL_CLUSTERS: [&str; 3] = [
    "PassthroughCluster",
    "BlackHoleCluster",
    "InboundPassthroughCluster",
];

// ------------------------------------------------------------------------------------
// The plan of a mesh: small numbers that index the tables above. Shrinking removes
// objects and lowers choices, so a failing case shrinks to a small mesh.

#[derive(Debug, Clone)]
struct ServicePlan {
    ns: usize,
    name: usize,
    /// (port index, port-name index), deduplicated by port.
    ports: Vec<(usize, usize)>,
}

#[derive(Debug, Clone)]
struct DrPlan {
    service: usize,
    fqdn: bool,
    subsets: usize,
    lb: usize,
    pool: bool,
    outlier: bool,
    tls: usize,
    port_level: bool,
}

#[derive(Debug, Clone)]
struct RoutePlan {
    matcher: usize,
    /// (service index, subset choice, weight choice)
    destinations: Vec<(usize, usize, usize)>,
    retries: Option<usize>,
    fault: usize,
    mirror: Option<(usize, bool)>,
    timeout: bool,
}

#[derive(Debug, Clone)]
struct VsPlan {
    service: usize,
    routes: Vec<RoutePlan>,
    gateway: bool,
}

#[derive(Debug, Clone)]
struct SePlan {
    resolution: usize,
    port: usize,
    internal: bool,
}

#[derive(Debug, Clone)]
struct MeshPlan {
    services: Vec<ServicePlan>,
    entries: Vec<(usize, usize, u8)>,
    rules: Vec<DrPlan>,
    virtual_services: Vec<VsPlan>,
    sidecars: Vec<(usize, usize)>,
    service_entries: Vec<SePlan>,
    gateway: bool,
    workloads: Vec<(usize, usize, u8)>,
}

fn service_plan() -> impl Strategy<Value = ServicePlan> {
    (
        0..NAMESPACES.len(),
        0..SERVICES.len(),
        prop::collection::vec((0..PORTS.len(), 0..PORT_NAMES.len()), 1..4),
    )
        .prop_map(|(ns, name, ports)| ServicePlan { ns, name, ports })
}

fn dr_plan() -> impl Strategy<Value = DrPlan> {
    (
        0..16usize,
        any::<bool>(),
        0..4usize,
        0..7usize,
        any::<bool>(),
        any::<bool>(),
        0..3usize,
        any::<bool>(),
    )
        .prop_map(
            |(service, fqdn, subsets, lb, pool, outlier, tls, port_level)| DrPlan {
                service,
                fqdn,
                subsets,
                lb,
                pool,
                outlier,
                tls,
                port_level,
            },
        )
}

fn route_plan() -> impl Strategy<Value = RoutePlan> {
    (
        0..7usize,
        prop::collection::vec((0..16usize, 0..4usize, 0..4usize), 1..4),
        prop::option::of(0..6usize),
        0..3usize,
        prop::option::of((0..16usize, any::<bool>())),
        any::<bool>(),
    )
        .prop_map(
            |(matcher, destinations, retries, fault, mirror, timeout)| RoutePlan {
                matcher,
                destinations,
                retries,
                fault,
                mirror,
                timeout,
            },
        )
}

fn vs_plan() -> impl Strategy<Value = VsPlan> {
    (
        0..16usize,
        prop::collection::vec(route_plan(), 1..4),
        any::<bool>(),
    )
        .prop_map(|(service, routes, gateway)| VsPlan {
            service,
            routes,
            gateway,
        })
}

fn mesh_plan() -> impl Strategy<Value = MeshPlan> {
    (
        prop::collection::vec(service_plan(), 1..7),
        prop::collection::vec((0..16usize, 0..VERSIONS.len(), any::<u8>()), 0..7),
        prop::collection::vec(dr_plan(), 0..5),
        prop::collection::vec(vs_plan(), 0..5),
        prop::collection::vec((0..NAMESPACES.len(), 0..4usize), 0..3),
        prop::collection::vec(
            (0..4usize, 0..2usize, any::<bool>()).prop_map(|(resolution, port, internal)| SePlan {
                resolution,
                port,
                internal,
            }),
            0..4,
        ),
        any::<bool>(),
        prop::collection::vec((0..16usize, 0..VERSIONS.len(), any::<u8>()), 0..4),
    )
        .prop_map(
            |(
                services,
                entries,
                rules,
                virtual_services,
                sidecars,
                service_entries,
                gateway,
                workloads,
            )| MeshPlan {
                services,
                entries,
                rules,
                virtual_services,
                sidecars,
                service_entries,
                gateway,
                workloads,
            },
        )
}

// ------------------------------------------------------------------------------------
// Rendering a plan as Istio YAML.

/// A service as rendered: namespace, name, ports (number, name).
#[derive(Debug, Clone)]
struct Svc {
    ns: &'static str,
    name: &'static str,
    ports: Vec<(u32, &'static str)>,
}

impl Svc {
    fn fqdn(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.name, self.ns)
    }
    fn is_http(&self, port: u32) -> bool {
        self.ports
            .iter()
            .any(|(p, n)| *p == port && matches!(*n, "http" | "grpc" | "http2"))
    }
}

fn services(plan: &MeshPlan) -> Vec<Svc> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for s in &plan.services {
        let (ns, name) = (NAMESPACES[s.ns], SERVICES[s.name]);
        if !seen.insert((ns, name)) {
            continue;
        }
        let mut ports: Vec<(u32, &'static str)> = Vec::new();
        for (p, n) in &s.ports {
            if !ports.iter().any(|(q, _)| *q == PORTS[*p]) {
                ports.push((PORTS[*p], PORT_NAMES[*n]));
            }
        }
        out.push(Svc { ns, name, ports });
    }
    out
}

/// Subsets each service's DestinationRule defines (the rule in its own namespace).
type Subsets = BTreeMap<String, Vec<&'static str>>;

fn render(plan: &MeshPlan) -> (String, Vec<Svc>) {
    let svcs = services(plan);
    let pick = |i: usize| &svcs[i % svcs.len()];
    let mut docs: Vec<String> = Vec::new();

    for s in &svcs {
        let ports: String = s
            .ports
            .iter()
            .map(|(p, n)| format!("  - {{name: {n}-{p}, port: {p}, targetPort: {}}}\n", p + 1))
            .collect();
        docs.push(format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {}, namespace: {}}}\nspec:\n  selector: {{app: {}}}\n  ports:\n{ports}",
            s.name, s.ns, s.name
        ));
    }

    for (i, (svc, version, octet)) in plan.entries.iter().enumerate() {
        let s = pick(*svc);
        let ports: Vec<String> = s
            .ports
            .iter()
            .map(|(p, n)| format!("{n}-{p}: {}", p + 100))
            .collect();
        docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: we-{i}, namespace: {}}}\nspec:\n  address: 10.1.{i}.{octet}\n  ports: {{{}}}\n  labels: {{app: {}, version: {}}}\n",
            s.ns,
            ports.join(", "),
            s.name,
            VERSIONS[*version]
        ));
    }

    let mut subsets: Subsets = BTreeMap::new();
    let mut ruled = BTreeSet::new();
    for (i, dr) in plan.rules.iter().enumerate() {
        let s = pick(dr.service);
        if !ruled.insert(s.fqdn()) {
            continue; // one rule per host: two would be a conflict, not a valid mesh
        }
        let host = if dr.fqdn {
            s.fqdn()
        } else {
            s.name.to_string()
        };
        let names: Vec<&'static str> = VERSIONS[..dr.subsets.min(VERSIONS.len())].to_vec();
        let mut policy = String::new();
        policy.push_str(match dr.lb {
            0 => "    loadBalancer: {simple: ROUND_ROBIN}\n",
            1 => "    loadBalancer: {simple: LEAST_REQUEST}\n",
            2 => "    loadBalancer: {simple: RANDOM}\n",
            3 => "    loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n",
            4 => "    loadBalancer: {consistentHash: {useSourceIp: true}}\n",
            5 => "    loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 10s}}}\n",
            _ => "    loadBalancer: {consistentHash: {httpQueryParameterName: u, maglev: {tableSize: 65537}}}\n",
        });
        if dr.pool {
            policy.push_str("    connectionPool:\n      tcp: {maxConnections: 10, connectTimeout: 2s}\n      http: {http1MaxPendingRequests: 5, maxRequestsPerConnection: 3, maxRetries: 2}\n");
        }
        if dr.outlier {
            policy.push_str("    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 30s, maxEjectionPercent: 50}\n");
        }
        policy.push_str(match dr.tls {
            0 => "",
            1 => "    tls: {mode: ISTIO_MUTUAL}\n",
            _ => "    tls: {mode: DISABLE}\n",
        });
        if dr.port_level {
            let port = s.ports[0].0;
            policy.push_str(&format!(
                "    portLevelSettings:\n    - port: {{number: {port}}}\n      loadBalancer: {{simple: LEAST_REQUEST}}\n"
            ));
        }
        let subset_yaml: String = names
            .iter()
            .map(|v| format!("  - name: {v}\n    labels: {{version: {v}}}\n"))
            .collect();
        let subsets_block = if names.is_empty() {
            String::new()
        } else {
            format!("  subsets:\n{subset_yaml}")
        };
        docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: dr-{i}, namespace: {}}}\nspec:\n  host: {host}\n  trafficPolicy:\n{policy}{subsets_block}",
            s.ns
        ));
        subsets.insert(s.fqdn(), names);
    }

    let mut routed = BTreeSet::new();
    for (i, vs) in plan.virtual_services.iter().enumerate() {
        let s = pick(vs.service);
        if !routed.insert(s.fqdn()) {
            continue; // one VirtualService per host keeps precedence out of it
        }
        let http_port = s.ports.iter().find(|(p, _)| s.is_http(*p)).map(|(p, _)| *p);
        let tcp_port = s
            .ports
            .iter()
            .find(|(p, _)| !s.is_http(*p))
            .map(|(p, _)| *p);
        let mut spec = format!("  hosts: [{}]\n", s.fqdn());
        if vs.gateway && plan.gateway {
            spec.push_str("  gateways: [mesh, istio-system/ingress]\n");
        }
        if http_port.is_some() {
            spec.push_str("  http:\n");
            let last = vs.routes.len() - 1;
            for (r, route) in vs.routes.iter().enumerate() {
                spec.push_str(&http_route(route, r == last, &svcs, &subsets));
            }
        }
        if let Some(port) = tcp_port {
            let d = &vs.routes[0].destinations[0];
            let target = &svcs[d.0 % svcs.len()];
            let target_port = target.ports[0].0;
            spec.push_str(&format!(
                "  tcp:\n  - match: [{{port: {port}}}]\n    route:\n    - destination: {{host: {}, port: {{number: {target_port}}}}}\n",
                target.fqdn()
            ));
        }
        docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs-{i}, namespace: {}}}\nspec:\n{spec}",
            s.ns
        ));
    }

    let mut sidecar_ns = BTreeSet::new();
    for (ns, mode) in &plan.sidecars {
        let ns = NAMESPACES[*ns];
        if !sidecar_ns.insert(ns) {
            continue;
        }
        let (hosts, policy) = match mode {
            0 => ("[\"./*\"]", "ALLOW_ANY"),
            1 => ("[\"./*\", \"istio-system/*\"]", "REGISTRY_ONLY"),
            2 => ("[\"*/*\"]", "REGISTRY_ONLY"),
            _ => ("[\"default/*\"]", "ALLOW_ANY"),
        };
        docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: {ns}}}\nspec:\n  egress:\n  - hosts: {hosts}\n  outboundTrafficPolicy: {{mode: {policy}}}\n"
        ));
    }

    for (i, se) in plan.service_entries.iter().enumerate() {
        let (port, proto) = if se.port == 0 {
            (80, "HTTP")
        } else {
            (443, "TLS")
        };
        let resolution = ["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"][se.resolution];
        let location = if se.internal {
            "MESH_INTERNAL"
        } else {
            "MESH_EXTERNAL"
        };
        let endpoints = match resolution {
            "STATIC" => format!("  endpoints:\n  - address: 192.0.2.{}\n", i + 1),
            "DNS" => format!("  endpoints:\n  - address: backend{i}.example.net\n"),
            _ => String::new(),
        };
        docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: se-{i}, namespace: default}}\nspec:\n  hosts: [api{i}.example.com]\n  ports:\n  - {{number: {port}, name: p-{port}, protocol: {proto}}}\n  resolution: {resolution}\n  location: {location}\n{endpoints}"
        ));
    }

    if plan.gateway {
        docs.push(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: ingress, namespace: istio-system}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 8080, name: http, protocol: HTTP}\n    hosts: [\"*/*\"]\n".to_string(),
        );
    }
    (docs.join("---\n"), svcs)
}

fn http_route(route: &RoutePlan, last: bool, svcs: &[Svc], subsets: &Subsets) -> String {
    let mut out = String::from("  - ");
    // The last route matches everything, as most VirtualServices end.
    if !last {
        out.push_str(match route.matcher {
            0 => "match: [{uri: {prefix: /api}}]\n    ",
            1 => "match: [{uri: {exact: /login}}]\n    ",
            2 => "match: [{uri: {regex: \"/v[0-9]+/.*\"}}]\n    ",
            3 => "match: [{headers: {end-user: {exact: jason}}}]\n    ",
            4 => "match: [{method: {exact: POST}}, {queryParams: {debug: {exact: \"1\"}}}]\n    ",
            5 => "match: [{uri: {prefix: /Admin}, ignoreUriCase: true}]\n    ",
            _ => "match: [{withoutHeaders: {x-skip: {}}}]\n    ",
        });
    }
    out.push_str("route:\n");
    // Weights: choices over a budget of 100, the last takes the rest; a zero weight is
    // allowed (Istio drops it), but never all of them.
    let n = route.destinations.len();
    let mut remaining = 100u32;
    for (k, (svc, subset, weight)) in route.destinations.iter().enumerate() {
        let s = &svcs[svc % svcs.len()];
        let weight = if k + 1 == n {
            remaining
        } else {
            let w = [0, 10, 25, 50][*weight].min(remaining);
            remaining -= w;
            w
        };
        let port = s
            .ports
            .iter()
            .find(|(p, _)| s.is_http(*p))
            .or(s.ports.first())
            .map(|(p, _)| *p);
        let mut destination = format!("{{host: {}", s.fqdn());
        if let Some(port) = port.filter(|_| s.ports.len() > 1 || svc % 2 == 0) {
            destination.push_str(&format!(", port: {{number: {port}}}"));
        }
        let available = subsets.get(&s.fqdn()).map(Vec::as_slice).unwrap_or(&[]);
        if !available.is_empty() && *subset > 0 {
            destination.push_str(&format!(
                ", subset: {}",
                available[subset % available.len()]
            ));
        }
        destination.push('}');
        if n == 1 {
            out.push_str(&format!("    - destination: {destination}\n"));
        } else {
            out.push_str(&format!(
                "    - destination: {destination}\n      weight: {weight}\n"
            ));
        }
    }
    if let Some(0) = route.retries {
        out.push_str("    retries: {attempts: 0}\n");
    } else if let Some(attempts) = route.retries {
        out.push_str(&format!(
            "    retries: {{attempts: {attempts}, perTryTimeout: 1s, retryOn: \"5xx,connect-failure,reset\"}}\n"
        ));
    }
    match route.fault {
        1 => out.push_str("    fault: {delay: {fixedDelay: 1s, percentage: {value: 50}}}\n"),
        2 => out.push_str("    fault: {abort: {httpStatus: 503, percentage: {value: 10}}}\n"),
        _ => {}
    }
    if let Some((svc, with_percentage)) = route.mirror {
        let s = &svcs[svc % svcs.len()];
        // Istio needs the port when the service has several (analyzer IST0112).
        let port = match s.ports.as_slice() {
            [_] => String::new(),
            ports => format!(", port: {{number: {}}}", ports[0].0),
        };
        out.push_str(&format!("    mirror: {{host: {}{port}}}\n", s.fqdn()));
        if with_percentage {
            out.push_str("    mirrorPercentage: {value: 25}\n");
        }
    }
    if route.timeout {
        out.push_str("    timeout: 3s\n");
    }
    out
}

/// The config snapshot, as the store builds it from files; every object must be valid.
fn snapshot(yaml: &str) -> Result<Arc<trellis_config::store::Snapshot>, String> {
    let source = SourceFile {
        path: PathBuf::from("mesh.yaml"),
        decoded: trellis_api::decode_bytes("mesh.yaml", yaml.as_bytes(), "default"),
    };
    let applied = StoreState::default().apply(&[source], vec![]);
    if applied.problems.is_empty() {
        Ok(applied.state.snapshot)
    } else {
        let problems: Vec<String> = applied.problems.iter().map(|p| p.to_string()).collect();
        Err(format!(
            "generated mesh is not valid: {problems:#?}\n{yaml}"
        ))
    }
}

fn workloads(plan: &MeshPlan, svcs: &[Svc]) -> Vec<Workload> {
    plan.workloads
        .iter()
        .enumerate()
        .map(|(i, (svc, version, octet))| {
            let s = &svcs[svc % svcs.len()];
            Workload {
                name: format!("{}-{i}", s.name),
                namespace: s.ns.to_string(),
                ip: IpAddr::from([10, 2, i as u8, *octet]),
                labels: BTreeMap::from([
                    ("app".to_string(), s.name.to_string()),
                    ("version".to_string(), VERSIONS[*version].to_string()),
                ]),
                service_account: "default".to_string(),
                ports: BTreeMap::new(),
                istio_mtls: i % 2 == 0,
            }
        })
        .collect()
}

/// A proxy: a sidecar of one of the services (or of nothing), or the ingress router; odd
/// choices have SDS (Istio mTLS).
fn proxy(choice: usize, svcs: &[Svc]) -> ProxyNode {
    let (kind, ns, name, labels) = if choice == 0 {
        (
            ProxyKind::Router,
            "istio-system",
            "istio-ingressgateway".to_string(),
            BTreeMap::from([("istio".to_string(), "ingressgateway".to_string())]),
        )
    } else if choice == 1 {
        (
            ProxyKind::Sidecar,
            "default",
            "client".to_string(),
            BTreeMap::new(),
        )
    } else {
        let s = &svcs[choice % svcs.len()];
        (
            ProxyKind::Sidecar,
            s.ns,
            format!("{}-v1", s.name),
            BTreeMap::from([
                ("app".to_string(), s.name.to_string()),
                ("version".to_string(), "v1".to_string()),
            ]),
        )
    };
    ProxyNode {
        id: ProxyNode::node_id(kind, "10.9.0.1", &name, ns),
        kind,
        ips: vec![IpAddr::from([10, 9, 0, 1])],
        namespace: ns.to_string(),
        service_account: "default".to_string(),
        labels,
        workload_name: name,
        ports: vec![],
        sds: choice % 2 == 1,
        dns_capture: false,
    }
}

// ------------------------------------------------------------------------------------
// Invariants.

fn decode<M: Message + Name + Default>(config: &Option<ConfigType>) -> Option<M> {
    match config {
        Some(ConfigType::TypedConfig(any)) if any.type_url == M::type_url() => {
            M::decode(any.value.as_slice()).ok()
        }
        _ => None,
    }
}

/// What a listener refers to: clusters (with weights when weighted) and RDS names, and
/// inline route configurations.
#[derive(Default)]
struct Refs {
    clusters: Vec<(String, String)>,
    weights: Vec<(String, u32)>,
    rds: Vec<(String, String)>,
    inline_routes: Vec<RouteConfiguration>,
}

fn filter_refs(owner: &str, filter: &Filter, refs: &mut Refs) {
    if let Some(tcp) = decode::<TcpProxy>(&filter.config_type) {
        match tcp.cluster_specifier {
            Some(TcpSpecifier::Cluster(c)) => refs.clusters.push((owner.to_string(), c)),
            Some(TcpSpecifier::WeightedClusters(w)) => {
                for c in w.clusters {
                    refs.weights
                        .push((format!("{owner} tcp {}", c.name), c.weight));
                    refs.clusters.push((owner.to_string(), c.name));
                }
            }
            None => refs
                .clusters
                .push((owner.to_string(), "<no cluster>".into())),
        }
    }
    if let Some(hcm) = decode::<HttpConnectionManager>(&filter.config_type) {
        match hcm.route_specifier {
            Some(RouteSpecifier::Rds(rds)) => {
                refs.rds.push((owner.to_string(), rds.route_config_name));
            }
            Some(RouteSpecifier::RouteConfig(rc)) => refs.inline_routes.push(rc),
            _ => {}
        }
    }
}

fn listener_refs(listeners: &[Listener]) -> Refs {
    let mut refs = Refs::default();
    for l in listeners {
        for chain in l.filter_chains.iter().chain(&l.default_filter_chain) {
            for filter in &chain.filters {
                filter_refs(&l.name, filter, &mut refs);
            }
        }
    }
    refs
}

fn route_refs(rc: &RouteConfiguration, refs: &mut Refs) {
    for vh in &rc.virtual_hosts {
        for route in &vh.routes {
            let owner = format!("route {}/{}/{}", rc.name, vh.name, route.name);
            let Some(Action::Route(action)) = &route.action else {
                continue;
            };
            match &action.cluster_specifier {
                Some(ClusterSpecifier::Cluster(c)) => {
                    refs.clusters.push((owner.clone(), c.clone()))
                }
                Some(ClusterSpecifier::WeightedClusters(w)) => {
                    for c in &w.clusters {
                        let weight = c.weight.as_ref().map_or(0, |w| w.value);
                        refs.weights.push((format!("{owner} {}", c.name), weight));
                        refs.clusters.push((owner.clone(), c.name.clone()));
                    }
                }
                _ => {}
            }
            for mirror in &action.request_mirror_policies {
                refs.clusters
                    .push((format!("{owner} mirror"), mirror.cluster.clone()));
            }
        }
    }
}

fn duplicates<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = BTreeSet::new();
    names.filter(|n| !seen.insert(*n)).collect()
}

fn check(resources: &Resources) -> Result<(), String> {
    let mut errors = Vec::new();
    for (t, dups) in [
        (
            "listener",
            duplicates(resources.listeners.iter().map(|l| l.name.as_str())),
        ),
        (
            "route",
            duplicates(resources.routes.iter().map(|r| r.name.as_str())),
        ),
        (
            "cluster",
            duplicates(resources.clusters.iter().map(|c| c.name.as_str())),
        ),
        (
            "endpoint",
            duplicates(resources.endpoints.iter().map(|e| e.cluster_name.as_str())),
        ),
    ] {
        if !dups.is_empty() {
            errors.push(format!("duplicate {t} names: {dups:?}"));
        }
    }

    let clusters: BTreeSet<&str> = resources.clusters.iter().map(|c| c.name.as_str()).collect();
    let endpoints: BTreeSet<&str> = resources
        .endpoints
        .iter()
        .map(|e| e.cluster_name.as_str())
        .collect();
    let routes: BTreeSet<&str> = resources.routes.iter().map(|r| r.name.as_str()).collect();

    let mut refs = listener_refs(&resources.listeners);
    let inline = std::mem::take(&mut refs.inline_routes);
    for rc in resources.routes.iter().chain(&inline) {
        route_refs(rc, &mut refs);
        let mut domains = BTreeSet::new();
        for vh in &rc.virtual_hosts {
            for d in &vh.domains {
                if !domains.insert(d.as_str()) {
                    errors.push(format!(
                        "route {}: domain {d:?} in two virtual hosts",
                        rc.name
                    ));
                }
            }
        }
        if let Some(d) = duplicates(rc.virtual_hosts.iter().map(|v| v.name.as_str())).first() {
            errors.push(format!("route {}: virtual host {d:?} twice", rc.name));
        }
    }
    for (owner, cluster) in &refs.clusters {
        if !clusters.contains(cluster.as_str()) && !SPECIAL_CLUSTERS.contains(&cluster.as_str()) {
            errors.push(format!("{owner} names missing cluster {cluster:?}"));
        }
    }
    for (owner, name) in &refs.rds {
        if !routes.contains(name.as_str()) {
            errors.push(format!("listener {owner} uses missing RDS {name:?}"));
        }
    }
    for (what, weight) in &refs.weights {
        if *weight == 0 {
            errors.push(format!("{what}: weight 0"));
        }
    }
    for c in &resources.clusters {
        if is_eds(c) && !endpoints.contains(c.name.as_str()) {
            errors.push(format!(
                "EDS cluster {} has no ClusterLoadAssignment",
                c.name
            ));
        }
    }
    for l in &resources.listeners {
        let mut matches = BTreeSet::new();
        for chain in &l.filter_chains {
            let key = chain
                .filter_chain_match
                .as_ref()
                .map(Message::encode_to_vec)
                .unwrap_or_default();
            if !matches.insert(key) {
                errors.push(format!(
                    "listener {}: two filter chains with the same match {:?}",
                    l.name, chain.filter_chain_match
                ));
            }
        }
    }
    let mut addresses = BTreeMap::new();
    for l in &resources.listeners {
        let bound = l.bind_to_port.as_ref().is_none_or(|b| b.value);
        if bound && let Some(address) = &l.address {
            let key = address.encode_to_vec();
            if let Some(other) = addresses.insert(key, l.name.as_str()) {
                errors.push(format!(
                    "listeners {other} and {} bind the same address",
                    l.name
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

fn is_eds(c: &Cluster) -> bool {
    matches!(
        c.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_valid_mesh_translates_into_resources_envoy_accepts(
        plan in mesh_plan(),
        proxies in prop::collection::vec(0..16usize, 1..4),
    ) {
        let (yaml, svcs) = render(&plan);
        let config = snapshot(&yaml).map_err(TestCaseError::fail)?;
        let mesh = MeshSnapshot::new(config, &workloads(&plan, &svcs), Default::default());
        for choice in proxies {
            let proxy = proxy(choice, &svcs);
            let first = translate(&mesh, &proxy);
            check(&first).map_err(|e| {
                TestCaseError::fail(format!("proxy {}:\n{e}\n--- mesh ---\n{yaml}", proxy.id))
            })?;
            let second = translate(&mesh, &proxy);
            prop_assert!(first == second, "translation is not deterministic for {}", proxy.id);
        }
    }
}
