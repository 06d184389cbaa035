//! A router's listeners, from the Gateways whose `selector` matches its labels (an empty
//! selector matches every router). Servers are grouped by address and port into
//! `<address>_<port>`: the server's `bind`, else `0.0.0.0`:
//!
//! - plain HTTP servers share an HCM with RDS `http.<port>`;
//! - HTTPS servers that terminate TLS (SIMPLE / MUTUAL / OPTIONAL_MUTUAL / ISTIO_MUTUAL) get
//!   a filter chain each, matched by SNI = the server's hosts, with a `DownstreamTlsContext`
//!   (certificates from `credentialName` over SDS, or files; ISTIO_MUTUAL: the gateway's
//!   workload certificate and the mesh roots, from its agent) and RDS under Istio's
//!   per-server name `https.<port>.<portName>.<gateway>.<namespace>`;
//! - route names gain `.<bind>` when the server binds an address
//!   ([`server_route_name`]);
//! - TLS PASSTHROUGH servers get SNI chains from the `tls` routes of the VirtualServices
//!   bound to the gateway, `tcp_proxy` to their destinations;
//! - TCP servers forward to their first bound `tcp` route.
//!
//! Every HTTP connection manager carries the authentication and authorization filters of
//! the policies that select the router ([`authz::http_filters`]); TCP servers carry the
//! RBAC network filters ([`authz::network_filters`]).
//!
//! `httpsRedirect` lives in RDS (`require_tls` on the server's virtual hosts).
//! AUTO_PASSTHROUGH is skipped with a log line, and so is ISTIO_MUTUAL on a router without
//! a workload certificate (no `SDS` node metadata).

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::{
    CombinedCertificateValidationContext, ValidationContextType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, TlsCertificate,
};
use envoy_types::pb::google::protobuf::BoolValue;
use trellis_api::istio::networking::{
    Gateway, Server, ServerTlsSettings, ServerTlsSettingsTlsMode as Mode,
};
use trellis_api::{Kind, Resource, Spec};

use super::http::{self, Side};
use super::{TLS_INSPECTOR, listener, listener_filter, tcp};
use trellis_api::host::overlaps;

use crate::mesh::MeshSnapshot;
use crate::protocol::Protocol;
use crate::proxy::ProxyNode;
use crate::registry::build::selects;
use crate::translate::authz;
use crate::translate::clusters::tls::{
    credential_ca_sds_name, credential_sds_name, file, san_matchers, sds, transport_socket,
};
use crate::translate::mtls::downstream::gateway_context;
use crate::translate::routes::gateway::server_route_name;

/// How a server handles its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Plain HTTP, routed by RDS `http.<port>`.
    Http,
    /// TLS terminated here, then HTTP routed by the server's own RDS name.
    Https,
    /// TLS forwarded untouched by SNI (`tls` routes).
    Passthrough,
    /// Opaque TCP (`tcp` routes).
    Tcp,
    /// Something Trellis cannot serve yet (AUTO_PASSTHROUGH, TLS-terminated TCP).
    Unsupported,
}

/// One server of one Gateway that applies to a router.
#[derive(Debug, Clone)]
pub struct GatewayServer<'a> {
    /// `namespace/name`, as VirtualServices' `gateways` name it.
    pub gateway: String,
    pub namespace: &'a str,
    pub server: &'a Server,
    /// The address the listener binds: the server's `bind`, else `0.0.0.0`.
    pub address: &'a str,
    pub port: u32,
    pub kind: ServerKind,
    /// The RDS route configuration serving it (HTTP and HTTPS servers).
    pub route_name: Option<String>,
}

/// The Gateways whose selector matches the router, by namespace/name.
pub fn gateways_for<'a>(
    mesh: &'a MeshSnapshot,
    proxy: &ProxyNode,
) -> Vec<(&'a Resource, &'a Gateway)> {
    mesh.config
        .of_kind(Kind::Gateway)
        .filter_map(|r| match &r.spec {
            Spec::Gateway(g) if selects(&g.selector, &proxy.labels) => Some((r.as_ref(), g)),
            _ => None,
        })
        .collect()
}

fn kind_of(server: &Server) -> ServerKind {
    let protocol = server
        .port
        .as_ref()
        .map_or(Protocol::Unknown, |p| Protocol::parse(&p.protocol));
    let mode = server.tls.as_ref().map(|t| t.mode);
    match (protocol, mode) {
        (p, _) if p.is_http() => ServerKind::Http,
        (Protocol::Https | Protocol::Tls, Some(Mode::Passthrough)) => ServerKind::Passthrough,
        (
            Protocol::Https,
            Some(Mode::Simple | Mode::Mutual | Mode::OptionalMutual | Mode::IstioMutual),
        ) => ServerKind::Https,
        (Protocol::Https | Protocol::Tls, _) => ServerKind::Unsupported,
        _ => ServerKind::Tcp,
    }
}

/// Every server that applies to the router, in gateway then declaration order.
pub fn servers<'a>(mesh: &'a MeshSnapshot, proxy: &ProxyNode) -> Vec<GatewayServer<'a>> {
    let mut out = Vec::new();
    for (resource, gateway) in gateways_for(mesh, proxy) {
        let ns = resource.meta.namespace.as_str();
        for server in &gateway.servers {
            let Some(port) = server.port.as_ref() else {
                continue;
            };
            let kind = kind_of(server);
            out.push(GatewayServer {
                gateway: format!("{ns}/{}", resource.meta.name),
                namespace: ns,
                server,
                address: if server.bind.is_empty() {
                    "0.0.0.0"
                } else {
                    &server.bind
                },
                port: port.number,
                kind,
                route_name: server_route_name(server, resource)
                    .filter(|_| matches!(kind, ServerKind::Http | ServerKind::Https)),
            });
        }
    }
    out
}

/// The router's listeners (unmerged).
pub fn listeners(mesh: &MeshSnapshot, proxy: &ProxyNode) -> Vec<Listener> {
    let mut by_port: BTreeMap<(&str, u32), Vec<GatewayServer<'_>>> = BTreeMap::new();
    for s in servers(mesh, proxy) {
        by_port.entry((s.address, s.port)).or_default().push(s);
    }
    let security = Security {
        http: authz::http_filters(mesh, proxy),
        tcp: authz::network_filters(mesh, proxy),
    };
    by_port
        .into_iter()
        .map(|((address, port), servers)| {
            port_listener(mesh, proxy, (address, port), &servers, &security)
        })
        // Envoy rejects a listener without filter chains (nothing bound to the port yet).
        .filter(|l| !l.filter_chains.is_empty())
        .collect()
}

/// What authentication and authorization put on the router's HTTP and TCP chains.
struct Security {
    http: Vec<HttpFilter>,
    tcp: Vec<Filter>,
}

fn port_listener(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    (address, port): (&str, u32),
    servers: &[GatewayServer<'_>],
    security: &Security,
) -> Listener {
    let stat_prefix = format!("outbound_{address}_{port}");
    let mut chains: Vec<FilterChain> = Vec::new();
    let mut tls = false;
    let side = Side::gateway(&mesh.mesh);
    for s in servers {
        match s.kind {
            ServerKind::Http => {
                if let Some(route) = &s.route_name {
                    chains.push(tcp::chain(
                        http::rds(side, stat_prefix.clone(), route, &security.http),
                        None,
                    ));
                }
            }
            ServerKind::Https => {
                tls = true;
                chains.extend(https_chain(proxy, s, &stat_prefix, side, &security.http));
            }
            ServerKind::Passthrough => {
                tls = true;
                let hosts = server_hosts(s.server);
                let bound = |r: &Resource, vs: &trellis_api::istio::networking::VirtualService| {
                    vs.hosts
                        .iter()
                        .map(|h| mesh.resolve(h, &r.meta.namespace))
                        .any(|h| host_served(&hosts, &h))
                };
                let routes = tcp::tls_routes(
                    mesh,
                    proxy,
                    &s.gateway,
                    mesh.virtual_services_for(&proxy.namespace, &s.gateway),
                    port,
                    &bound,
                );
                chains.extend(tcp::sni_chains(&routes, &stat_prefix));
            }
            ServerKind::Tcp => {
                if let Some(targets) = tcp::tcp_route(
                    mesh,
                    proxy,
                    &s.gateway,
                    mesh.virtual_services_for(&proxy.namespace, &s.gateway),
                    None,
                    port,
                ) {
                    let mut chain = tcp::chain(tcp::tcp_proxy(&stat_prefix, &targets), None);
                    chain.filters.splice(0..0, security.tcp.iter().cloned());
                    chains.push(chain);
                }
            }
            ServerKind::Unsupported => {
                tracing::warn!(gateway = %s.gateway, port, "Gateway server TLS mode is not supported yet (AUTO_PASSTHROUGH, TLS-terminated TCP); skipped");
            }
        }
    }
    let mut l = listener(address, port, true, TrafficDirection::Outbound, chains);
    if tls {
        l.listener_filters = vec![listener_filter(TLS_INSPECTOR)];
    }
    l
}

/// A server's hosts without their namespace part (`ns/host` → `host`).
fn server_hosts(server: &Server) -> Vec<String> {
    server
        .hosts
        .iter()
        .map(|h| h.split_once('/').map_or(h.as_str(), |(_, h)| h).to_string())
        .collect()
}

fn host_served(hosts: &[String], host: &str) -> bool {
    hosts.iter().any(|h| overlaps(h, host))
}

/// SNI names for a server's hosts (none when it serves any host).
fn sni_names(server: &Server) -> Vec<String> {
    let hosts = server_hosts(server);
    if hosts.iter().any(|h| h == "*") {
        Vec::new()
    } else {
        hosts
    }
}

fn https_chain(
    proxy: &ProxyNode,
    s: &GatewayServer<'_>,
    stat_prefix: &str,
    side: Side,
    security: &[HttpFilter],
) -> Option<FilterChain> {
    let tls = s.server.tls.as_ref()?;
    let route = s.route_name.as_ref()?;
    let context = if tls.mode == Mode::IstioMutual {
        if !proxy.sds {
            tracing::warn!(gateway = %s.gateway, port = s.port, "ISTIO_MUTUAL server on a router without a workload certificate (no SDS); skipped");
            return None;
        }
        gateway_context(&tls.subject_alt_names, &tls.cipher_suites)
    } else {
        terminated_context(tls)
    };
    let mut chain = tcp::chain(
        http::rds(side, stat_prefix.to_string(), route, security),
        Some(FilterChainMatch {
            server_names: sni_names(s.server),
            ..Default::default()
        }),
    );
    chain.transport_socket = Some(transport_socket(context));
    Some(chain)
}

/// The context of a server that terminates TLS with its own certificates (SIMPLE, MUTUAL,
/// OPTIONAL_MUTUAL): from `credentialName` over SDS, or from files.
fn terminated_context(tls: &ServerTlsSettings) -> DownstreamTlsContext {
    let mut common = CommonTlsContext {
        alpn_protocols: vec!["h2".to_string(), "http/1.1".to_string()],
        ..Default::default()
    };
    let credential = if tls.credential_name.is_empty() {
        tls.credential_names.first().cloned().unwrap_or_default()
    } else {
        tls.credential_name.clone()
    };
    let mutual = matches!(tls.mode, Mode::Mutual | Mode::OptionalMutual);
    if !credential.is_empty() {
        common
            .tls_certificate_sds_secret_configs
            .push(sds(credential_sds_name(&credential)));
        if mutual {
            let ca = if tls.ca_cert_credential_name.is_empty() {
                credential_ca_sds_name(&credential)
            } else {
                credential_sds_name(&tls.ca_cert_credential_name)
            };
            common.validation_context_type =
                Some(ValidationContextType::CombinedValidationContext(
                    CombinedCertificateValidationContext {
                        default_validation_context: Some(CertificateValidationContext {
                            match_typed_subject_alt_names: san_matchers(&tls.subject_alt_names),
                            ..Default::default()
                        }),
                        validation_context_sds_secret_config: Some(sds(ca)),
                        ..Default::default()
                    },
                ));
        }
    } else {
        common.tls_certificates.push(TlsCertificate {
            certificate_chain: file(&tls.server_certificate),
            private_key: file(&tls.private_key),
            ..Default::default()
        });
        if mutual {
            common.validation_context_type = Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: file(&tls.ca_certificates),
                    crl: file(&tls.ca_crl),
                    match_typed_subject_alt_names: san_matchers(&tls.subject_alt_names),
                    ..Default::default()
                },
            ));
        }
    }
    DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: Some(BoolValue {
            value: tls.mode == Mode::Mutual,
        }),
        ..Default::default()
    }
}
