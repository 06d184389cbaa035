//! A router's listeners, from the Gateways whose `selector` matches its labels (an empty
//! selector matches every router). Servers are grouped by port into `0.0.0.0_<port>`:
//!
//! - plain HTTP servers share an HCM with RDS `http.<port>`;
//! - HTTPS servers that terminate TLS (SIMPLE / MUTUAL / OPTIONAL_MUTUAL) get a filter chain
//!   each, matched by SNI = the server's hosts, with a `DownstreamTlsContext` (certificates
//!   from `credentialName` over SDS, or files) and RDS under Istio's per-server name
//!   `https.<port>.<portName>.<gateway>.<namespace>` (see [`route_name`]);
//! - TLS PASSTHROUGH servers get SNI chains from the `tls` routes of the VirtualServices
//!   bound to the gateway, `tcp_proxy` to their destinations;
//! - TCP servers forward to their first bound `tcp` route.
//!
//! Every HTTP connection manager carries the authentication and authorization filters of
//! the policies that select the router ([`authz::http_filters`]); TCP servers carry the
//! RBAC network filters ([`authz::network_filters`]).
//!
//! `httpsRedirect` lives in RDS (`require_tls` on the server's virtual hosts). ISTIO_MUTUAL
//! and AUTO_PASSTHROUGH wait for the mTLS work and are skipped with a log line.

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
use trellis_api::istio::networking::{Gateway, Server, ServerTlsSettingsTlsMode as Mode};
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
    /// Something Trellis cannot serve yet (ISTIO_MUTUAL, AUTO_PASSTHROUGH).
    Unsupported,
}

/// One server of one Gateway that applies to a router.
#[derive(Debug, Clone)]
pub struct GatewayServer<'a> {
    /// `namespace/name`, as VirtualServices' `gateways` name it.
    pub gateway: String,
    pub namespace: &'a str,
    pub server: &'a Server,
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

/// Istio's RDS name for a server: `http.<port>` for plain HTTP, and
/// `https.<port>.<portName>.<gateway>.<namespace>` for a server that terminates TLS.
pub fn route_name(
    kind: ServerKind,
    server: &Server,
    gateway_name: &str,
    namespace: &str,
) -> Option<String> {
    let port = server.port.as_ref()?;
    match kind {
        ServerKind::Http => Some(format!("http.{}", port.number)),
        ServerKind::Https => Some(format!(
            "https.{}.{}.{gateway_name}.{namespace}",
            port.number, port.name
        )),
        _ => None,
    }
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
        (Protocol::Https, Some(Mode::Simple | Mode::Mutual | Mode::OptionalMutual)) => {
            ServerKind::Https
        }
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
                port: port.number,
                kind,
                route_name: route_name(kind, server, &resource.meta.name, ns),
            });
        }
    }
    out
}

/// The router's listeners (unmerged).
pub fn listeners(mesh: &MeshSnapshot, proxy: &ProxyNode) -> Vec<Listener> {
    let mut by_port: BTreeMap<u32, Vec<GatewayServer<'_>>> = BTreeMap::new();
    for s in servers(mesh, proxy) {
        by_port.entry(s.port).or_default().push(s);
    }
    let security = Security {
        http: authz::http_filters(mesh, proxy),
        tcp: authz::network_filters(mesh, proxy),
    };
    by_port
        .into_iter()
        .map(|(port, servers)| port_listener(mesh, proxy, port, &servers, &security))
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
    port: u32,
    servers: &[GatewayServer<'_>],
    security: &Security,
) -> Listener {
    let mut chains: Vec<FilterChain> = Vec::new();
    let mut tls = false;
    let side = Side::gateway(&mesh.mesh);
    for s in servers {
        match s.kind {
            ServerKind::Http => {
                if let Some(route) = &s.route_name {
                    chains.push(tcp::chain(
                        http::rds(
                            side,
                            format!("outbound_0.0.0.0_{port}"),
                            route,
                            &security.http,
                        ),
                        None,
                    ));
                }
            }
            ServerKind::Https => {
                tls = true;
                chains.extend(https_chain(s, port, side, &security.http));
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
                chains.extend(tcp::sni_chains(
                    &routes,
                    &format!("outbound_0.0.0.0_{port}"),
                ));
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
                    let mut chain = tcp::chain(
                        tcp::tcp_proxy(&format!("outbound_0.0.0.0_{port}"), &targets),
                        None,
                    );
                    chain.filters.splice(0..0, security.tcp.iter().cloned());
                    chains.push(chain);
                }
            }
            ServerKind::Unsupported => {
                tracing::warn!(gateway = %s.gateway, port, "Gateway server TLS mode is not supported yet (ISTIO_MUTUAL, AUTO_PASSTHROUGH); skipped");
            }
        }
    }
    let mut l = listener("0.0.0.0", port, true, TrafficDirection::Outbound, chains);
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
    s: &GatewayServer<'_>,
    port: u32,
    side: Side,
    security: &[HttpFilter],
) -> Option<FilterChain> {
    let tls = s.server.tls.as_ref()?;
    let route = s.route_name.as_ref()?;
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
    let context = DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: Some(BoolValue {
            value: tls.mode == Mode::Mutual,
        }),
        ..Default::default()
    };
    let mut chain = tcp::chain(
        http::rds(side, format!("outbound_0.0.0.0_{port}"), route, security),
        Some(FilterChainMatch {
            server_names: sni_names(s.server),
            ..Default::default()
        }),
    );
    chain.transport_socket = Some(transport_socket(context));
    Some(chain)
}
