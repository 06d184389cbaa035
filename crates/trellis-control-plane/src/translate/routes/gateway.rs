//! Route configurations of routers (ingress/egress gateways).
//!
//! A Gateway selects router proxies by labels; each of its HTTP servers (and HTTPS servers
//! that terminate TLS) is served by an RDS route configuration named Istio's way
//! ([`server_route_name`]): `http.<port>` (all plain-HTTP servers on a port share it) or
//! `https.<port>.<port name>.<gateway>.<namespace>`, with `.<bind>` appended when the
//! server binds an address. A virtual host per host shared by a server and a
//! VirtualService bound to that gateway, named `host:port`; when several VirtualServices
//! share a host their routes are concatenated in precedence order with catch-all routes
//! last. With no virtual host at all Istio serves a `blackhole:<port>` host without routes
//! (404 for everything).

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::route::v3::virtual_host::TlsRequirementType;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use trellis_api::istio::networking::{Gateway, Server, ServerTlsSettingsTlsMode};
use trellis_api::{Kind, Resource, Spec};

use super::{MAX_DIRECT_RESPONSE_BODY, RouteContext, VirtualServiceRoutes, precedence};
use crate::mesh::{MeshSnapshot, wildcard_matches};
use crate::protocol::Protocol;
use crate::proxy::ProxyNode;
use crate::registry::build::selects;

/// Istio's RDS name for a gateway server, or `None` when the server is not routed by HTTP
/// route configuration (TCP, TLS passthrough).
pub fn server_route_name(server: &Server, gateway: &Resource) -> Option<String> {
    let port = server.port.as_ref()?;
    let bind = if server.bind.is_empty() {
        String::new()
    } else {
        format!(".{}", server.bind)
    };
    let protocol = Protocol::parse(&port.protocol);
    if protocol.is_http() {
        return Some(format!("http.{}{bind}", port.number));
    }
    let passthrough = server.tls.as_ref().is_some_and(|t| {
        matches!(
            t.mode,
            ServerTlsSettingsTlsMode::Passthrough | ServerTlsSettingsTlsMode::AutoPassthrough
        )
    });
    if protocol == Protocol::Https && !passthrough {
        return Some(format!(
            "https.{}.{}.{}.{}{bind}",
            port.number, port.name, gateway.meta.name, gateway.meta.namespace
        ));
    }
    None
}

/// The Gateways that select a router proxy, in key order.
pub fn gateways_for<'a>(
    mesh: &'a MeshSnapshot,
    proxy: &ProxyNode,
) -> impl Iterator<Item = (&'a Resource, &'a Gateway)> {
    let labels = proxy.labels.clone();
    mesh.config
        .of_kind(Kind::Gateway)
        .filter_map(move |r| match &r.spec {
            Spec::Gateway(g) if selects(&g.selector, &labels) => Some((r.as_ref(), g)),
            _ => None,
        })
}

/// The route configuration `name` for a router; an empty one when no server uses the name
/// (the Gateway was just deleted), as Istio does. `None` never happens today; the option
/// leaves room for names that are not gateway routes.
pub fn route_configuration(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    name: &str,
) -> Option<RouteConfiguration> {
    let servers: Vec<(&Resource, &Server)> = gateways_for(mesh, proxy)
        .flat_map(|(r, g)| g.servers.iter().map(move |s| (r, s)))
        .filter(|(r, s)| server_route_name(s, r).as_deref() == Some(name))
        .collect();
    let mut hosts: BTreeMap<String, VirtualHost> = BTreeMap::new();
    for (gateway, server) in &servers {
        let Some(port) = server.port.as_ref().map(|p| p.number) else {
            continue;
        };
        let gateway_name = format!("{}/{}", gateway.meta.namespace, gateway.meta.name);
        let ctx = RouteContext {
            mesh,
            proxy,
            port,
            gateway: &gateway_name,
            is_tls: server.tls.is_some(),
        };
        let https_redirect = server.tls.as_ref().is_some_and(|t| t.https_redirect);
        let bound = mesh.virtual_services_for(&proxy.namespace, &gateway_name);
        for vs in VirtualServiceRoutes::for_proxy(&ctx, bound) {
            if vs.routes.is_empty() {
                continue;
            }
            let server_hosts = server_hosts_for(server, gateway, &vs.resource.meta.namespace);
            for host in intersection(&server_hosts, &vs.hosts) {
                let vhost = hosts.entry(host.clone()).or_insert_with(|| VirtualHost {
                    name: format!("{host}:{port}"),
                    domains: vec![host.clone()],
                    ..Default::default()
                });
                vhost.routes.extend(vs.routes.iter().cloned());
                if https_redirect {
                    vhost.require_tls = TlsRequirementType::All as i32;
                }
            }
        }
        if https_redirect {
            for host in &server.hosts {
                let host = host.rsplit('/').next().unwrap_or(host).to_ascii_lowercase();
                let vhost = hosts.entry(host.clone()).or_insert_with(|| VirtualHost {
                    name: format!("{host}:{port}"),
                    domains: vec![host.clone()],
                    ..Default::default()
                });
                vhost.require_tls = TlsRequirementType::All as i32;
            }
        }
    }
    let mut virtual_hosts: Vec<VirtualHost> = hosts
        .into_values()
        .map(|mut v| {
            v.routes = precedence::catch_alls_last(std::mem::take(&mut v.routes));
            v
        })
        .collect();
    if virtual_hosts.is_empty()
        && let Some(port) = servers.first().and_then(|(_, s)| s.port.as_ref())
    {
        virtual_hosts.push(VirtualHost {
            name: format!("blackhole:{}", port.number),
            domains: vec!["*".to_string()],
            ..Default::default()
        });
    }
    virtual_hosts.sort_by(|a, b| a.name.cmp(&b.name));
    Some(RouteConfiguration {
        name: name.to_string(),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        ignore_port_in_host_matching: true,
        max_direct_response_body_size_bytes: (!servers.is_empty()).then_some(UInt32Value {
            value: MAX_DIRECT_RESPONSE_BODY,
        }),
        ..Default::default()
    })
}

/// The server's hosts that a VirtualService in `vs_namespace` may use: `ns/host` entries
/// name the namespace (`*` any, `.` the Gateway's own); plain hosts admit any namespace.
fn server_hosts_for(server: &Server, gateway: &Resource, vs_namespace: &str) -> Vec<String> {
    server
        .hosts
        .iter()
        .filter_map(|h| match h.split_once('/') {
            Some(("*", host)) => Some(host),
            Some((".", host)) if gateway.meta.namespace == vs_namespace => Some(host),
            Some((ns, host)) if ns == vs_namespace => Some(host),
            Some(_) => None,
            None => Some(h.as_str()),
        })
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Istio's host intersection: for each pair, the more specific of the two when one
/// covers the other.
fn intersection(server_hosts: &[String], vs_hosts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in server_hosts {
        for v in vs_hosts {
            let pick = if s == v || wildcard_matches(v, s) {
                Some(s)
            } else if wildcard_matches(s, v) {
                Some(v)
            } else {
                None
            };
            if let Some(p) = pick
                && !out.contains(p)
            {
                out.push(p.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(h: &[&str]) -> Vec<String> {
        h.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn host_intersection() {
        assert_eq!(intersection(&hosts(&["*"]), &hosts(&["*"])), ["*"]);
        assert_eq!(
            intersection(
                &hosts(&["*.example.com"]),
                &hosts(&["a.example.com", "b.other"])
            ),
            ["a.example.com"]
        );
        assert_eq!(
            intersection(&hosts(&["a.example.com"]), &hosts(&["*"])),
            ["a.example.com"]
        );
    }
}
