//! A sidecar's outbound side. `virtualOutbound` (15001) receives every captured connection
//! and hands it, by original destination, to the listener for that address and port:
//!
//! - HTTP ports (http, http2, grpc): `0.0.0.0_<port>`, an HCM with RDS route `<port>`;
//! - undeclared protocols: `0.0.0.0_<port>` with `http_inspector`: HTTP goes to RDS
//!   `<port>`, anything else to the service the VIP names (or passthrough/black hole);
//! - TCP-like ports: `<vip>_<port>`, `tcp_proxy` to the service, or where its first
//!   matching VirtualService `tcp` route sends it (weighted);
//! - TLS / HTTPS ports: `tls_inspector`, one chain per VirtualService `tls` route SNI
//!   match; without a VIP `0.0.0.0_<port>` with the service's host name as SNI;
//!
//! plus the Sidecar resource's explicit `captureMode: NONE` egress listeners, bound to a
//! real address the application dials.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{CidrRange, TrafficDirection};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};

use super::http::{self, HTTP_ALPNS, Side};
use super::tcp::{self, SniRoute};
use super::{HTTP_INSPECTOR, TLS_INSPECTOR, listener, listener_filter};
use crate::mesh::MeshSnapshot;
use crate::protocol::Protocol;
use crate::proxy::ProxyNode;
use crate::registry::{Service, ServicePort};
use crate::translate::endpoints::socket_address;
use crate::translate::names;
use crate::translate::scope::Scope;

const MESH: &str = "mesh";

/// The outbound listeners of a sidecar (unmerged, unsorted).
pub fn listeners(mesh: &MeshSnapshot, proxy: &ProxyNode, scope: &Scope<'_>) -> Vec<Listener> {
    let fallback = fallback_cluster(scope);
    let mut out = vec![virtual_outbound(fallback)];
    let mut http_ports: BTreeMap<u32, ()> = BTreeMap::new();
    // Port → VIPs (and their clusters) of services with an undeclared protocol.
    let mut sniffed: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
    for service in &scope.services {
        for port in &service.ports {
            let cluster = names::outbound_cluster(port.number, "", &service.hostname);
            match port.protocol {
                p if p.is_http() => {
                    http_ports.insert(port.number, ());
                }
                Protocol::Unknown => {
                    let entry = sniffed.entry(port.number).or_default();
                    if let Some(vip) = service.address {
                        entry.push((vip.to_string(), cluster));
                    }
                }
                Protocol::Tls | Protocol::Https => {
                    out.push(tls_listener(mesh, proxy, scope, service, port))
                }
                _ => out.push(tcp_listener(mesh, proxy, scope, service, port)),
            }
        }
    }
    for port in http_ports.keys().filter(|p| !sniffed.contains_key(p)) {
        out.push(http_listener(*port));
    }
    for (port, vips) in &sniffed {
        out.push(sniffing_listener(*port, vips, fallback));
    }
    out.extend(explicit_egress(scope, fallback));
    out
}

fn fallback_cluster(scope: &Scope<'_>) -> &'static str {
    if scope.allow_any {
        names::PASSTHROUGH_CLUSTER
    } else {
        names::BLACKHOLE_CLUSTER
    }
}

/// `virtualOutbound`: hands connections over by original destination; connections to 15001
/// itself (a loop) are dropped; the rest go to the fallback cluster.
fn virtual_outbound(fallback: &str) -> Listener {
    let loop_guard = tcp::chain_to(
        names::BLACKHOLE_CLUSTER,
        Some(FilterChainMatch {
            destination_port: Some(UInt32Value {
                value: names::OUTBOUND_CAPTURE_PORT,
            }),
            ..Default::default()
        }),
    );
    let mut catch_all = tcp::chain_to(fallback, None);
    catch_all.name = "virtualOutbound-catchall-tcp".to_string();
    Listener {
        name: names::VIRTUAL_OUTBOUND.to_string(),
        address: Some(socket_address("0.0.0.0", names::OUTBOUND_CAPTURE_PORT)),
        use_original_dst: Some(BoolValue { value: true }),
        filter_chains: vec![loop_guard],
        default_filter_chain: Some(catch_all),
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    }
}

fn http_chain(port: u32, filter_chain_match: Option<FilterChainMatch>) -> FilterChain {
    tcp::chain(
        http::rds(
            Side::SidecarOutbound,
            format!("outbound_0.0.0.0_{port}"),
            &names::outbound_route(port),
            &[],
        ),
        filter_chain_match,
    )
}

fn http_listener(port: u32) -> Listener {
    listener(
        "0.0.0.0",
        port,
        false,
        TrafficDirection::Outbound,
        vec![http_chain(port, None)],
    )
}

fn vip_range(vip: &str) -> Vec<CidrRange> {
    vec![CidrRange {
        address_prefix: vip.to_string(),
        prefix_len: Some(UInt32Value { value: 32 }),
    }]
}

fn http_alpns() -> Vec<String> {
    HTTP_ALPNS.iter().map(|s| s.to_string()).collect()
}

/// Protocol sniffing: HTTP (by `http_inspector`'s ALPN) goes to RDS, other bytes to the
/// service the VIP names, or to the fallback for unknown destinations.
fn sniffing_listener(port: u32, vips: &[(String, String)], fallback: &str) -> Listener {
    let mut chains = Vec::new();
    for (vip, cluster) in vips {
        chains.push(http_chain(
            port,
            Some(FilterChainMatch {
                prefix_ranges: vip_range(vip),
                application_protocols: http_alpns(),
                ..Default::default()
            }),
        ));
        chains.push(tcp::chain_to(
            cluster,
            Some(FilterChainMatch {
                prefix_ranges: vip_range(vip),
                ..Default::default()
            }),
        ));
    }
    chains.push(http_chain(
        port,
        Some(FilterChainMatch {
            application_protocols: http_alpns(),
            ..Default::default()
        }),
    ));
    let mut l = listener("0.0.0.0", port, false, TrafficDirection::Outbound, chains);
    l.listener_filters = vec![listener_filter(HTTP_INSPECTOR)];
    l.default_filter_chain = Some(tcp::chain_to(fallback, None));
    l
}

/// TCP-like services: `<vip>_<port>` (or `0.0.0.0_<port>` without a VIP).
fn tcp_listener(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    scope: &Scope<'_>,
    service: &Service,
    port: &ServicePort,
) -> Listener {
    let targets = tcp::tcp_route(
        mesh,
        proxy,
        MESH,
        scope.virtual_services(mesh, proxy),
        Some(&service.hostname),
        port.number,
    )
    .unwrap_or_else(|| {
        vec![(
            names::outbound_cluster(port.number, "", &service.hostname),
            100,
        )]
    });
    let address = service
        .address
        .map_or("0.0.0.0".to_string(), |a| a.to_string());
    let stat = names::outbound_cluster(port.number, "", &service.hostname);
    let chain = tcp::chain(tcp::tcp_proxy(&stat, &targets), None);
    listener(
        &address,
        port.number,
        false,
        TrafficDirection::Outbound,
        vec![chain],
    )
}

/// TLS services: SNI chains from `tls` routes; otherwise (or for other SNI names) the
/// service itself — by VIP, or by its host name as SNI when it has no VIP.
fn tls_listener(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    scope: &Scope<'_>,
    service: &Service,
    port: &ServicePort,
) -> Listener {
    let names_service =
        |r: &trellis_api::Resource, vs: &trellis_api::istio::networking::VirtualService| {
            tcp::names_host(mesh, r, vs, &service.hostname)
        };
    let routes = tcp::tls_routes(
        mesh,
        proxy,
        MESH,
        scope.virtual_services(mesh, proxy),
        port.number,
        &names_service,
    );
    let own = names::outbound_cluster(port.number, "", &service.hostname);
    let mut chains = tcp::sni_chains(&routes, &own);
    let address = match service.address {
        Some(vip) => {
            let targets = tcp::tcp_route(
                mesh,
                proxy,
                MESH,
                scope.virtual_services(mesh, proxy),
                Some(&service.hostname),
                port.number,
            )
            .unwrap_or_else(|| vec![(own.clone(), 100)]);
            chains.push(tcp::chain(tcp::tcp_proxy(&own, &targets), None));
            vip.to_string()
        }
        None => {
            chains.extend(tcp::sni_chains(
                &[SniRoute {
                    sni_hosts: vec![service.hostname.clone()],
                    targets: vec![(own.clone(), 100)],
                }],
                &own,
            ));
            "0.0.0.0".to_string()
        }
    };
    let mut l = listener(
        &address,
        port.number,
        false,
        TrafficDirection::Outbound,
        chains,
    );
    l.listener_filters = vec![listener_filter(TLS_INSPECTOR)];
    l
}

/// Egress listeners with `captureMode: NONE`: real sockets on `bind` (127.0.0.1 when
/// unset). HTTP (and undeclared) ports serve RDS `<port>`; others forward to the first
/// service of the listener's hosts on that port.
fn explicit_egress(scope: &Scope<'_>, fallback: &str) -> Vec<Listener> {
    let sidecar_ns = scope
        .sidecar
        .map(|r| r.meta.namespace.as_str())
        .unwrap_or_default();
    scope
        .egress_listeners
        .iter()
        .filter(|e| e.explicit)
        .map(|egress| {
            let bind = if egress.bind.is_empty() {
                "127.0.0.1"
            } else {
                egress.bind.as_str()
            };
            let chain = if egress.protocol.is_http() || egress.protocol == Protocol::Unknown {
                http_chain(egress.port, None)
            } else {
                let cluster = scope
                    .services_for(&egress.hosts, sidecar_ns)
                    .into_iter()
                    .find(|s| s.port(egress.port).is_some())
                    .map_or(fallback.to_string(), |s| {
                        names::outbound_cluster(egress.port, "", &s.hostname)
                    });
                tcp::chain_to(&cluster, None)
            };
            listener(
                bind,
                egress.port,
                true,
                TrafficDirection::Outbound,
                vec![chain],
            )
        })
        .collect()
}
