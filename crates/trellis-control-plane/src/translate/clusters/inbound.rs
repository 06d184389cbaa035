//! The proxy's own workload: which ports it serves (its service instances, the ports it
//! declared, or the Sidecar resource's `ingress` listeners, which replace both) and the
//! `inbound|port||` cluster that delivers each to the application.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use trellis_api::Spec;
use trellis_api::istio::networking::{CaptureMode, IstioIngressListener};

use super::{Building, connection_pool};
use crate::mesh::MeshSnapshot;
use crate::protocol::Protocol;
use crate::proxy::ProxyNode;
use crate::translate::endpoints::socket_address;
use crate::translate::names;
use crate::translate::scope::Scope;

/// Where the application listens when nothing says otherwise.
const APP_ADDRESS: &str = "127.0.0.1";

/// One port the workload serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundPort {
    /// The port clients dial (the endpoint port, after any targetPort mapping).
    pub port: u32,
    pub protocol: Protocol,
    /// Where the application listens for it.
    pub app_address: String,
    pub app_port: u32,
    /// For a Sidecar ingress listener with `captureMode: NONE`: the address its own
    /// listener binds (traffic is not captured into `virtualInbound`).
    pub bind: Option<String>,
}

/// The ports of the proxy's workload, sorted by port, one entry per port.
pub fn inbound_ports(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    scope: &Scope<'_>,
) -> Vec<InboundPort> {
    let ingress = scope.sidecar.and_then(|r| match &r.spec {
        Spec::Sidecar(s) if !s.ingress.is_empty() => Some(&s.ingress),
        _ => None,
    });
    let mut out: Vec<InboundPort> = match ingress {
        Some(listeners) => listeners
            .iter()
            .filter_map(|l| ingress_port(l, proxy))
            .collect(),
        None => instance_ports(mesh, proxy),
    };
    out.sort_by_key(|p| p.port);
    out.dedup_by_key(|p| p.port);
    out
}

/// Ports from the services whose endpoints are this proxy, then the ports it declared.
fn instance_ports(mesh: &MeshSnapshot, proxy: &ProxyNode) -> Vec<InboundPort> {
    let mine = |address: &str| {
        address
            .parse::<IpAddr>()
            .is_ok_and(|ip| proxy.ips.contains(&ip))
    };
    let mut out = Vec::new();
    for ((host, port), endpoints) in &mesh.registry.endpoints {
        let Some(protocol) = mesh
            .registry
            .service(host)
            .and_then(|s| s.port(*port))
            .map(|p| p.protocol)
        else {
            continue;
        };
        for e in endpoints.iter().filter(|e| mine(&e.address)) {
            out.push(app_port(e.port, protocol));
        }
    }
    // Service ports come first so a declared port never hides a service's protocol.
    out.sort_by_key(|p| (p.port, p.protocol == Protocol::Unknown));
    out.extend(proxy.ports.iter().map(|p| app_port(*p, Protocol::Unknown)));
    out
}

fn app_port(port: u32, protocol: Protocol) -> InboundPort {
    InboundPort {
        port,
        protocol,
        app_address: APP_ADDRESS.to_string(),
        app_port: port,
        bind: None,
    }
}

/// A Sidecar ingress listener: `defaultEndpoint` is `127.0.0.1:PORT` or `0.0.0.0:PORT`
/// (the workload's own address); unix sockets are not supported yet.
fn ingress_port(l: &IstioIngressListener, proxy: &ProxyNode) -> Option<InboundPort> {
    let port = l.port.as_ref()?;
    let (address, app_port) = if l.default_endpoint.is_empty() {
        (APP_ADDRESS.to_string(), port.number)
    } else {
        let (host, p) = l.default_endpoint.rsplit_once(':')?;
        if host.starts_with("unix") {
            tracing::warn!(endpoint = %l.default_endpoint, "Sidecar ingress: unix socket endpoints are not supported yet");
            return None;
        }
        let host = if host == "0.0.0.0" {
            proxy
                .ips
                .first()
                .map_or(APP_ADDRESS.to_string(), IpAddr::to_string)
        } else {
            host.to_string()
        };
        (host, p.parse().ok()?)
    };
    Some(InboundPort {
        port: port.number,
        protocol: Protocol::parse(&port.protocol),
        app_address: address,
        app_port,
        bind: (l.capture_mode == CaptureMode::None).then(|| {
            if l.bind.is_empty() {
                "0.0.0.0".to_string()
            } else {
                l.bind.clone()
            }
        }),
    })
}

/// `inbound|port||`: a static cluster to the application.
pub fn cluster(mesh: &MeshSnapshot, port: &InboundPort) -> Cluster {
    let name = names::inbound_cluster(port.port);
    let mut b = Building::new(name.clone());
    b.cluster.cluster_discovery_type =
        Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32));
    b.cluster.lb_policy = LbPolicy::RoundRobin as i32;
    b.cluster.connect_timeout = Some(crate::translate::pb_duration(super::connect_timeout(mesh)));
    b.cluster.load_assignment = Some(ClusterLoadAssignment {
        cluster_name: name,
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                    address: Some(socket_address(&port.app_address, port.app_port)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    });
    connection_pool::apply(&mut b, None, None);
    if port.protocol.is_http2() {
        b.set_http2();
    }
    b.finish()
}
