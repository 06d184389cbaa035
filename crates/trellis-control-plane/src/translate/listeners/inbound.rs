//! A sidecar's inbound side: `virtualInbound` (15006) restores each captured connection's
//! original destination and picks a filter chain by destination port — an HCM (HTTP) or
//! `tcp_proxy` (TCP) to the port's `inbound|port||` cluster, both for an undeclared
//! protocol (sniffed by `http_inspector`) — and sends ports the workload does not declare
//! to `InboundPassthroughCluster`. Sidecar ingress listeners with `captureMode: NONE` get
//! their own listener bound to a real address. Each port's chains come in the mTLS
//! variants its PeerAuthentication mode asks for ([`crate::translate::mtls::downstream`]),
//! and every chain carries the security filters of [`authz`]: HTTP chains in their
//! connection manager, TCP and passthrough chains before `tcp_proxy`.

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use envoy_types::pb::google::protobuf::UInt32Value;

use super::http;
use super::{HTTP_INSPECTOR, ORIGINAL_DST, TLS_INSPECTOR, listener, listener_filter, tcp};
use crate::mesh::MeshSnapshot;
use crate::protocol::Protocol;
use crate::proxy::ProxyNode;
use crate::translate::authz;
use crate::translate::clusters::inbound::{InboundPort, inbound_ports};
use crate::translate::mtls::downstream::{Carries, Inbound, Variant};
use crate::translate::mtls::policy::Effective;
use crate::translate::names;
use crate::translate::scope::Scope;

/// `virtualInbound` and any explicitly bound ingress listeners.
pub fn listeners(mesh: &MeshSnapshot, proxy: &ProxyNode, scope: &Scope<'_>) -> Vec<Listener> {
    let ports = inbound_ports(mesh, proxy, scope);
    let peer = mesh
        .peer_authentications
        .for_workload(&proxy.namespace, &proxy.labels);
    let inbound = Inbound {
        sds: proxy.sds,
        mesh: &mesh.mesh,
    };
    let security = Security {
        http: authz::http_filters(mesh, proxy),
        tcp: authz::network_filters(mesh, proxy),
    };
    let mut chains = vec![tcp::chain_to(
        names::BLACKHOLE_CLUSTER,
        Some(on_port(names::INBOUND_CAPTURE_PORT, &[])),
    )];
    let mut out = Vec::new();
    for port in &ports {
        let variants = inbound.variants(peer.for_port(port.port), port.protocol);
        match &port.bind {
            None => chains.extend(port_chains(port, &variants, true, &security)),
            Some(bind) => {
                let mut l = listener(
                    bind,
                    port.port,
                    true,
                    TrafficDirection::Inbound,
                    port_chains(port, &variants, false, &security),
                );
                if variants.iter().any(Variant::needs_tls_inspector) {
                    l.listener_filters.push(listener_filter(TLS_INSPECTOR));
                }
                if port.protocol == Protocol::Unknown {
                    l.listener_filters.push(listener_filter(HTTP_INSPECTOR));
                }
                out.push(l);
            }
        }
    }
    let (passthrough, default_chain) = passthrough_chains(&inbound, &peer, &ports, &security);
    chains.extend(passthrough);
    let mut virtual_inbound = listener(
        "0.0.0.0",
        names::INBOUND_CAPTURE_PORT,
        true,
        TrafficDirection::Inbound,
        chains,
    );
    virtual_inbound.name = names::VIRTUAL_INBOUND.to_string();
    virtual_inbound.listener_filters = vec![
        listener_filter(ORIGINAL_DST),
        listener_filter(TLS_INSPECTOR),
        listener_filter(HTTP_INSPECTOR),
    ];
    virtual_inbound.default_filter_chain = default_chain;
    out.push(virtual_inbound);
    out
}

/// Chains for ports the workload does not declare, to `InboundPassthroughCluster`: the
/// workload-wide mode on any port, port-level modes on their ports; and the default chain
/// (plain text to the passthrough cluster) when plain text is not matched explicitly.
/// Ports the workload does not declare are authorized too (at L4), as in Istio: a policy
/// cannot be bypassed by dialing an undeclared port.
fn passthrough_chains(
    inbound: &Inbound<'_>,
    peer: &Effective,
    ports: &[InboundPort],
    security: &Security,
) -> (Vec<FilterChain>, Option<FilterChain>) {
    let to = |port: Option<u32>, variants: Vec<Variant>| {
        variants.into_iter().map(move |v| {
            let mut chain = match v.carries {
                Carries::Refused => tcp::chain_to(names::BLACKHOLE_CLUSTER, None),
                _ => security.tcp_chain_to(names::INBOUND_PASSTHROUGH_CLUSTER, None),
            };
            chain.filter_chain_match = port.map(|p| on_port(p, &[]));
            v.apply(&mut chain);
            chain
        })
    };
    let mut chains = Vec::new();
    for (port, mode) in &peer.ports {
        if ports.iter().all(|p| p.port != *port)
            && let Some(variants) = inbound.passthrough(*mode)
        {
            chains.extend(to(Some(*port), variants));
        }
    }
    match inbound.passthrough(peer.mode) {
        Some(variants) => {
            chains.extend(to(None, variants));
            (chains, None)
        }
        None => (
            chains,
            Some(security.tcp_chain_to(names::INBOUND_PASSTHROUGH_CLUSTER, None)),
        ),
    }
}

fn on_port(port: u32, alpns: &[&str]) -> FilterChainMatch {
    FilterChainMatch {
        destination_port: Some(UInt32Value { value: port }),
        application_protocols: alpns.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// What authorization and authentication put on the workload's chains
/// ([`authz::http_filters`], [`authz::network_filters`]).
struct Security {
    http: Vec<HttpFilter>,
    tcp: Vec<Filter>,
}

impl Security {
    /// A TCP proxy chain to `cluster` behind the network security filters.
    fn tcp_chain_to(&self, cluster: &str, matching: Option<FilterChainMatch>) -> FilterChain {
        let mut chain = tcp::chain_to(cluster, matching);
        chain.filters.splice(0..0, self.tcp.iter().cloned());
        chain
    }
}

/// The chains serving one workload port, one per mTLS variant; `by_port` adds the
/// destination-port match that `virtualInbound` needs.
fn port_chains(
    port: &InboundPort,
    variants: &[Variant],
    by_port: bool,
    security: &Security,
) -> Vec<FilterChain> {
    let cluster = names::inbound_cluster(port.port);
    variants
        .iter()
        .map(|v| {
            let matching = by_port.then(|| on_port(port.port, &[]));
            let mut chain = match v.carries {
                Carries::Http => {
                    tcp::chain(http::inbound(port.port, &cluster, &security.http), matching)
                }
                Carries::Tcp => security.tcp_chain_to(&cluster, matching),
                Carries::Refused => tcp::chain_to(names::BLACKHOLE_CLUSTER, matching),
            };
            v.apply(&mut chain);
            chain
        })
        .collect()
}
