//! A sidecar's inbound side: `virtualInbound` (15006) restores each captured connection's
//! original destination and picks a filter chain by destination port — an HCM (HTTP) or
//! `tcp_proxy` (TCP) to the port's `inbound|port||` cluster, both for an undeclared
//! protocol (sniffed by `http_inspector`) — and sends ports the workload does not declare
//! to `InboundPassthroughCluster`. Sidecar ingress listeners with `captureMode: NONE` get
//! their own listener bound to a real address. Every chain carries the security filters of
//! [`authz`]: HTTP chains in their connection manager, TCP and passthrough chains before
//! `tcp_proxy`.

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use envoy_types::pb::google::protobuf::UInt32Value;

use super::http::{self, HTTP_ALPNS};
use super::{HTTP_INSPECTOR, ORIGINAL_DST, TLS_INSPECTOR, listener, listener_filter, tcp};
use crate::mesh::MeshSnapshot;
use crate::protocol::Protocol;
use crate::proxy::ProxyNode;
use crate::translate::authz;
use crate::translate::clusters::inbound::{InboundPort, inbound_ports};
use crate::translate::names;
use crate::translate::scope::Scope;

/// `virtualInbound` and any explicitly bound ingress listeners.
pub fn listeners(mesh: &MeshSnapshot, proxy: &ProxyNode, scope: &Scope<'_>) -> Vec<Listener> {
    let ports = inbound_ports(mesh, proxy, scope);
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
        match &port.bind {
            None => chains.extend(port_chains(port, true, &security)),
            Some(bind) => {
                let mut l = listener(
                    bind,
                    port.port,
                    true,
                    TrafficDirection::Inbound,
                    port_chains(port, false, &security),
                );
                if port.protocol == Protocol::Unknown {
                    l.listener_filters = vec![listener_filter(HTTP_INSPECTOR)];
                }
                out.push(l);
            }
        }
    }
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
    // Ports the workload does not declare are authorized too (at L4), as in Istio: a
    // policy cannot be bypassed by dialing an undeclared port.
    let mut passthrough = tcp::chain_to(names::INBOUND_PASSTHROUGH_CLUSTER, None);
    passthrough
        .filters
        .splice(0..0, security.tcp.iter().cloned());
    virtual_inbound.default_filter_chain = Some(passthrough);
    out.push(virtual_inbound);
    out
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

/// The chains serving one workload port; `by_port` adds the destination-port match that
/// `virtualInbound` needs.
fn port_chains(port: &InboundPort, by_port: bool, security: &Security) -> Vec<FilterChain> {
    let cluster = names::inbound_cluster(port.port);
    let matching = |alpns: &[&str]| {
        if by_port {
            Some(on_port(port.port, alpns))
        } else {
            (!alpns.is_empty()).then(|| FilterChainMatch {
                application_protocols: alpns.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
        }
    };
    let http_chain = |m| tcp::chain(http::inbound(port.port, &cluster, &security.http), m);
    let tcp_chain = |m| {
        let mut chain = tcp::chain_to(&cluster, m);
        chain.filters.splice(0..0, security.tcp.iter().cloned());
        chain
    };
    match port.protocol {
        p if p.is_http() => vec![http_chain(matching(&[]))],
        Protocol::Unknown => vec![http_chain(matching(&HTTP_ALPNS)), tcp_chain(matching(&[]))],
        _ => vec![tcp_chain(matching(&[]))],
    }
}
