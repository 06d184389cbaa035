//! RDS: HTTP route configurations.
//!
//! Sidecars get one route configuration per outbound HTTP port (named by the port,
//! `9080`): a virtual host per visible service on that port with Istio's domain list, whose
//! routes come from the VirtualService that owns the host ([`precedence`]) or, without one,
//! a default route to `outbound|port||host`; then a catch-all virtual host
//! (`allow_any` → PassthroughCluster, or `block_all` → 502). Routers (gateways) get one
//! route configuration per gateway RDS name (`http.8080`, `https.443.https.gw.ns`), built
//! in [`gateway`].
//!
//! One Istio HTTP route becomes one Envoy route per match ([`http`]); each concept of the
//! route lives in its own module. Invariants: output is deterministic; a route whose input
//! cannot be translated faithfully (a regex RE2 rejects, an unsupported fault) is skipped
//! with a warning naming the VirtualService, and never affects any other route.

mod actions;
mod cors;
mod delegate;
mod destinations;
mod fault;
pub mod gateway;
mod headers;
mod http;
mod matches;
mod mirror;
mod precedence;
mod retries;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};

use super::names;
use super::scope::Scope;
use crate::mesh::MeshSnapshot;
use crate::proxy::{ProxyKind, ProxyNode};
use crate::registry::Service;

pub use http::VirtualServiceRoutes;

/// Istio's name for the default route of a service without a VirtualService.
pub const DEFAULT_ROUTE: &str = "default";
/// Name of the catch-all virtual host and route under ALLOW_ANY.
pub const ALLOW_ANY: &str = "allow_any";
/// Name of the catch-all virtual host and route under REGISTRY_ONLY.
pub const BLOCK_ALL: &str = "block_all";
/// Envoy's fault filter; per-route fault configuration is keyed by this name.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// Envoy's CORS filter; per-route CORS policies are keyed by this name.
pub const CORS_FILTER: &str = "envoy.filters.http.cors";
/// Istio caps direct response bodies at 1 MiB.
const MAX_DIRECT_RESPONSE_BODY: u32 = 1024 * 1024;

/// Why one route (or one part of it) was left out of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

impl Skip {
    fn new(reason: impl Into<String>) -> Self {
        Skip(reason.into())
    }
}

/// What every route translation needs to know about where the routes will live.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteContext<'a> {
    pub mesh: &'a MeshSnapshot,
    pub proxy: &'a ProxyNode,
    /// The listener port (sidecars) or the gateway server's port (routers).
    pub port: u32,
    /// `mesh` for sidecars; the gateway's `namespace/name` for routers.
    pub gateway: &'a str,
    /// True when the gateway server terminates TLS (redirect scheme defaults to https).
    pub is_tls: bool,
}

/// The route configurations the proxy's listeners refer to, sorted by name.
pub fn route_configurations(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    scope: &Scope<'_>,
    listeners: &[Listener],
) -> Vec<RouteConfiguration> {
    super::listeners::route_names(listeners)
        .into_iter()
        .filter_map(|name| match proxy.kind {
            ProxyKind::Router => gateway::route_configuration(mesh, proxy, &name),
            ProxyKind::Sidecar => {
                let port: u32 = name.parse().ok()?;
                Some(sidecar_route_configuration(mesh, proxy, scope, port))
            }
        })
        .collect()
}

/// The sidecar's outbound route configuration for one port.
pub fn sidecar_route_configuration(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    scope: &Scope<'_>,
    port: u32,
) -> RouteConfiguration {
    let ctx = RouteContext {
        mesh,
        proxy,
        port,
        gateway: "mesh",
        is_tls: false,
    };
    let services: Vec<&Service> = services_on_port(scope, port);
    let virtual_services =
        VirtualServiceRoutes::for_proxy(&ctx, scope.virtual_services(mesh, proxy));
    let plan = precedence::sidecar_hosts(&ctx, &services, &virtual_services);

    let mut seen = BTreeSet::new();
    let mut virtual_hosts = Vec::new();
    for host in plan {
        let (name, domains, routes) = match host {
            precedence::PlannedHost::Service { service, routes } => {
                let routes = match routes {
                    Some(routes) => routes.to_vec(),
                    None => vec![default_route(&ctx, service)],
                };
                (
                    format!("{}:{port}", service.hostname),
                    domains(service, port, &proxy.namespace),
                    routes,
                )
            }
            precedence::PlannedHost::External { host, routes } => (
                format!("{host}:{port}"),
                vec![host.to_string()],
                routes.to_vec(),
            ),
        };
        let domains = dedupe_domains(domains, &mut seen);
        if domains.is_empty() {
            continue;
        }
        virtual_hosts.push(VirtualHost {
            name,
            domains,
            routes,
            ..Default::default()
        });
    }
    virtual_hosts.sort_by(|a, b| a.name.cmp(&b.name));
    virtual_hosts.push(catch_all_virtual_host(scope.allow_any));
    RouteConfiguration {
        name: names::outbound_route(port),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        max_direct_response_body_size_bytes: Some(UInt32Value {
            value: MAX_DIRECT_RESPONSE_BODY,
        }),
        ignore_port_in_host_matching: true,
        ..Default::default()
    }
}

/// The services on `port` that the proxy may route to: the explicit egress listener's
/// hosts when the Sidecar declares one for this port, else every visible service.
fn services_on_port<'a>(scope: &Scope<'a>, port: u32) -> Vec<&'a Service> {
    let sidecar_ns = scope
        .sidecar
        .map(|r| r.meta.namespace.as_str())
        .unwrap_or("");
    let candidates = match scope.egress_listeners.iter().find(|e| e.port == port) {
        Some(egress) => scope.services_for(&egress.hosts, sidecar_ns),
        None => scope.services.clone(),
    };
    candidates
        .into_iter()
        .filter(|s| s.port(port).is_some())
        .map(|s| s.as_ref())
        .collect()
}

/// Istio's domain list: the FQDN, the short names that resolve from the proxy's namespace,
/// the VIP, each with and without the port.
pub fn domains(service: &Service, port: u32, proxy_namespace: &str) -> Vec<String> {
    let mut names = vec![service.hostname.clone()];
    let k8s_suffix = format!(".{}.svc.", service.namespace);
    if let Some(idx) = service.hostname.find(&k8s_suffix) {
        let short = &service.hostname[..idx];
        names.push(format!("{short}.{}.svc", service.namespace));
        names.push(format!("{short}.{}", service.namespace));
        if service.namespace == proxy_namespace {
            names.push(short.to_string());
        }
    }
    if let Some(vip) = service.address {
        names.push(vip.to_string());
    }
    let mut out = Vec::new();
    for name in names {
        out.push(format!("{name}:{port}"));
        out.push(name);
    }
    out
}

/// Envoy rejects a route configuration in which two virtual hosts share a domain: the
/// first virtual host (in precedence order) keeps it, as in Istio.
fn dedupe_domains(domains: Vec<String>, seen: &mut BTreeSet<String>) -> Vec<String> {
    domains
        .into_iter()
        .filter(|d| seen.insert(d.to_ascii_lowercase()))
        .collect()
}

/// The route of a service no VirtualService routes: everything to `outbound|port||host`,
/// with the mesh's default retry policy and no timeout.
fn default_route(ctx: &RouteContext<'_>, service: &Service) -> Route {
    let cluster = names::outbound_cluster(ctx.port, "", &service.hostname);
    let hash = destinations::service_hash_policy(ctx, service);
    let mut action = RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster)),
        retry_policy: retries::retry_policy(
            ctx.mesh.mesh.default_http_retry_policy.as_ref(),
            hash.is_some(),
        ),
        hash_policy: hash.into_iter().collect(),
        ..Default::default()
    };
    retries::set_timeout(&mut action, None);
    Route {
        name: DEFAULT_ROUTE.to_string(),
        r#match: Some(prefix_match("/")),
        decorator: Some(http::decorator(format!(
            "{}:{}/*",
            service.hostname, ctx.port
        ))),
        action: Some(Action::Route(action)),
        ..Default::default()
    }
}

fn prefix_match(prefix: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(prefix.to_string())),
        ..Default::default()
    }
}

/// Istio's catch-all virtual host: unknown destinations pass through (ALLOW_ANY) or get a
/// 502 (REGISTRY_ONLY).
fn catch_all_virtual_host(allow_any: bool) -> VirtualHost {
    let (name, action) = if allow_any {
        let mut action = RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(
                names::PASSTHROUGH_CLUSTER.to_string(),
            )),
            ..Default::default()
        };
        retries::set_timeout(&mut action, None);
        (ALLOW_ANY, Action::Route(action))
    } else {
        (
            BLOCK_ALL,
            Action::DirectResponse(DirectResponseAction {
                status: 502,
                ..Default::default()
            }),
        )
    };
    VirtualHost {
        name: name.to_string(),
        domains: vec!["*".to_string()],
        routes: vec![Route {
            name: name.to_string(),
            r#match: Some(prefix_match("/")),
            action: Some(action),
            ..Default::default()
        }],
        ..Default::default()
    }
}
