//! LDS: the sidecar's capture listeners (`virtualOutbound` on 15001 handing connections to
//! per-port listeners by original destination), one listener per outbound service port
//! (`0.0.0.0_9080`, HTTP through RDS route `9080`, or TCP to the service's cluster), and
//! the explicit listeners a Sidecar resource declares with `captureMode: NONE`.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpFilterConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use super::clusters::ads_config_source;
use super::endpoints::socket_address;
use super::names;
use super::scope::Scope;
use crate::mesh::MeshSnapshot;
use crate::protocol::Protocol;
use crate::proxy::ProxyNode;

/// All listeners of a proxy, sorted by name.
pub fn listeners(_mesh: &MeshSnapshot, _proxy: &ProxyNode, scope: &Scope<'_>) -> Vec<Listener> {
    let mut out = vec![virtual_outbound(scope)];
    let mut http_ports: BTreeMap<u32, ()> = BTreeMap::new();
    for service in &scope.services {
        for port in &service.ports {
            if port.protocol.is_http() || port.protocol == Protocol::Unknown {
                http_ports.insert(port.number, ());
            } else if let Some(vip) = service.address {
                let cluster = names::outbound_cluster(port.number, "", &service.hostname);
                out.push(captured(&vip.to_string(), port.number, tcp_chain(&cluster)));
            }
        }
    }
    for port in http_ports.keys() {
        out.push(captured(
            "0.0.0.0",
            *port,
            http_chain(&names::outbound_route(*port)),
        ));
    }
    for egress in scope.egress_listeners.iter().filter(|e| e.explicit) {
        let bind = if egress.bind.is_empty() {
            "127.0.0.1"
        } else {
            egress.bind.as_str()
        };
        let chain = http_chain(&names::outbound_route(egress.port));
        out.push(Listener {
            name: names::listener(bind, egress.port),
            address: Some(socket_address(bind, egress.port)),
            filter_chains: vec![chain],
            traffic_direction: TrafficDirection::Outbound as i32,
            ..Default::default()
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// The names of the RDS route configurations the listeners refer to.
pub fn route_names(listeners: &[Listener]) -> Vec<String> {
    let mut names: Vec<String> = listeners
        .iter()
        .flat_map(|l| &l.filter_chains)
        .flat_map(|c| &c.filters)
        .filter_map(|f| match &f.config_type {
            Some(ConfigType::TypedConfig(any)) => prost::Message::decode(any.value.as_slice())
                .ok()
                .and_then(|hcm: HttpConnectionManager| match hcm.route_specifier {
                    Some(RouteSpecifier::Rds(rds)) => Some(rds.route_config_name),
                    _ => None,
                }),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn virtual_outbound(scope: &Scope<'_>) -> Listener {
    let fallback = if scope.allow_any {
        names::PASSTHROUGH_CLUSTER
    } else {
        names::BLACKHOLE_CLUSTER
    };
    Listener {
        name: names::VIRTUAL_OUTBOUND.to_string(),
        address: Some(socket_address("0.0.0.0", names::OUTBOUND_CAPTURE_PORT)),
        use_original_dst: Some(BoolValue { value: true }),
        default_filter_chain: Some(tcp_chain(fallback)),
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    }
}

/// A listener that receives connections handed over from `virtualOutbound` (it binds no
/// socket of its own).
fn captured(address: &str, port: u32, chain: FilterChain) -> Listener {
    Listener {
        name: names::listener(address, port),
        address: Some(socket_address(address, port)),
        filter_chains: vec![chain],
        bind_to_port: Some(BoolValue { value: false }),
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    }
}

fn http_chain(route_name: &str) -> FilterChain {
    let hcm = HttpConnectionManager {
        stat_prefix: format!("outbound_{route_name}"),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_name.to_string(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".to_string(),
            config_type: Some(HttpFilterConfig::TypedConfig(pack_any(Router::default()))),
            ..Default::default()
        }],
        ..Default::default()
    };
    FilterChain {
        filters: vec![Filter {
            name: "envoy.filters.network.http_connection_manager".to_string(),
            config_type: Some(ConfigType::TypedConfig(pack_any(hcm))),
        }],
        ..Default::default()
    }
}

fn tcp_chain(cluster: &str) -> FilterChain {
    let proxy = TcpProxy {
        stat_prefix: cluster.to_string(),
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.to_string())),
        ..Default::default()
    };
    FilterChain {
        filters: vec![Filter {
            name: "envoy.filters.network.tcp_proxy".to_string(),
            config_type: Some(ConfigType::TypedConfig(pack_any(proxy))),
        }],
        ..Default::default()
    }
}
