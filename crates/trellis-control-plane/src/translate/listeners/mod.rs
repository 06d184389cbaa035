//! LDS: what a proxy listens on and what it does with each connection.
//!
//! - [`outbound`]: a sidecar's `virtualOutbound` (15001) handing captured connections by
//!   original destination to per-port listeners (`0.0.0.0_9080` HTTP via RDS `9080`,
//!   `<vip>_<port>` TCP/TLS, sniffing listeners for undeclared protocols) and the explicit
//!   `captureMode: NONE` egress listeners of a Sidecar resource;
//! - [`inbound`]: `virtualInbound` (15006), a filter chain per workload port;
//! - [`gateway`]: a router's listeners from the Gateways that select it;
//! - [`http`] and [`tcp`]: the network filters they share.
//!
//! Listeners are merged by name (the first filter chain for a match wins) and sorted, then
//! get their access logs ([`access_log`]).

pub mod gateway;
pub mod http;
pub mod inbound;
pub mod outbound;
pub mod tcp;

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::listener_filter::ConfigType as ListenerFilterConfig;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener, ListenerFilter};
use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use super::access_log;
use super::endpoints::socket_address;
use super::names;
use super::scope::Scope;
use crate::mesh::MeshSnapshot;
use crate::proxy::{ProxyKind, ProxyNode};

pub const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
pub const HTTP_INSPECTOR: &str = "envoy.filters.listener.http_inspector";
pub const ORIGINAL_DST: &str = "envoy.filters.listener.original_dst";

/// All listeners of a proxy, sorted by name.
pub fn listeners(mesh: &MeshSnapshot, proxy: &ProxyNode, scope: &Scope<'_>) -> Vec<Listener> {
    let all = match proxy.kind {
        ProxyKind::Sidecar => {
            let mut all = outbound::listeners(mesh, proxy, scope);
            all.extend(inbound::listeners(mesh, proxy, scope));
            all
        }
        ProxyKind::Router => gateway::listeners(mesh, proxy),
    };
    let mut all = merge(all);
    access_log::apply(mesh, proxy, &mut all);
    all
}

/// Merges listeners of the same name: filter chains are appended unless one with the
/// same match is already there; listener filters are unioned.
pub fn merge(all: Vec<Listener>) -> Vec<Listener> {
    let mut by_name: BTreeMap<String, Listener> = BTreeMap::new();
    for l in all {
        match by_name.get_mut(&l.name) {
            None => {
                by_name.insert(l.name.clone(), l);
            }
            Some(existing) => {
                for chain in l.filter_chains {
                    if !existing
                        .filter_chains
                        .iter()
                        .any(|c| c.filter_chain_match == chain.filter_chain_match)
                    {
                        existing.filter_chains.push(chain);
                    }
                }
                for f in l.listener_filters {
                    if !existing.listener_filters.iter().any(|e| e.name == f.name) {
                        existing.listener_filters.push(f);
                    }
                }
                if existing.default_filter_chain.is_none() {
                    existing.default_filter_chain = l.default_filter_chain;
                }
            }
        }
    }
    let mut out: Vec<Listener> = by_name.into_values().collect();
    for l in &mut out {
        sort_listener_filters(l);
    }
    out
}

/// Listener filters in Istio's order: original_dst, tls_inspector, http_inspector.
fn sort_listener_filters(l: &mut Listener) {
    let rank = |name: &str| match name {
        ORIGINAL_DST => 0,
        TLS_INSPECTOR => 1,
        HTTP_INSPECTOR => 2,
        _ => 3,
    };
    l.listener_filters.sort_by_key(|f| rank(&f.name));
}

/// A listener filter by name.
pub fn listener_filter(name: &str) -> ListenerFilter {
    let any = match name {
        TLS_INSPECTOR => pack_any(TlsInspector::default()),
        HTTP_INSPECTOR => pack_any(HttpInspector::default()),
        _ => pack_any(OriginalDst::default()),
    };
    ListenerFilter {
        name: name.to_string(),
        config_type: Some(ListenerFilterConfig::TypedConfig(any)),
        ..Default::default()
    }
}

/// A listener on `address:port`. Captured listeners (`bind: false`) receive connections
/// handed over by `virtualOutbound` and bind no socket of their own.
pub fn listener(
    address: &str,
    port: u32,
    bind: bool,
    direction: TrafficDirection,
    filter_chains: Vec<FilterChain>,
) -> Listener {
    Listener {
        name: names::listener(address, port),
        address: Some(socket_address(address, port)),
        filter_chains,
        bind_to_port: (!bind).then_some(BoolValue { value: false }),
        traffic_direction: direction as i32,
        ..Default::default()
    }
}

/// The names of the RDS route configurations the listeners refer to.
pub fn route_names(listeners: &[Listener]) -> Vec<String> {
    let mut names: Vec<String> = listeners
        .iter()
        .flat_map(|l| l.filter_chains.iter().chain(&l.default_filter_chain))
        .flat_map(|c| &c.filters)
        .filter_map(|f| match &f.config_type {
            Some(ConfigType::TypedConfig(any)) if f.name == http::HCM => {
                prost::Message::decode(any.value.as_slice()).ok().and_then(
                    |hcm: HttpConnectionManager| match hcm.route_specifier {
                        Some(RouteSpecifier::Rds(rds)) => Some(rds.route_config_name),
                        _ => None,
                    },
                )
            }
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod tests;
