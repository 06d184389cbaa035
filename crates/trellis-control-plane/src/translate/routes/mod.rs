//! RDS: one route configuration per HTTP port (`9080`), with a virtual host per visible
//! service on that port carrying Istio's domain list, and the routes its VirtualServices
//! declare (a default route to the service otherwise).

use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};

use super::names;
use super::scope::Scope;
use crate::mesh::MeshSnapshot;
use crate::proxy::ProxyNode;
use crate::registry::Service;

/// The route configurations the proxy's listeners refer to, sorted by name.
pub fn route_configurations(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    scope: &Scope<'_>,
    listeners: &[Listener],
) -> Vec<RouteConfiguration> {
    super::listeners::route_names(listeners)
        .into_iter()
        .filter_map(|name| {
            let port: u32 = name.parse().ok()?;
            Some(route_configuration(mesh, proxy, scope, port))
        })
        .collect()
}

fn route_configuration(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    scope: &Scope<'_>,
    port: u32,
) -> RouteConfiguration {
    let mut virtual_hosts: Vec<VirtualHost> = scope
        .services
        .iter()
        .filter(|s| s.port(port).is_some())
        .map(|s| service_virtual_host(mesh, proxy, s, port))
        .collect();
    virtual_hosts.push(fallback_virtual_host(scope.allow_any));
    RouteConfiguration {
        name: names::outbound_route(port),
        virtual_hosts,
        validate_clusters: Some(envoy_types::pb::google::protobuf::BoolValue { value: false }),
        ..Default::default()
    }
}

fn service_virtual_host(
    _mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    service: &Service,
    port: u32,
) -> VirtualHost {
    VirtualHost {
        name: format!("{}:{port}", service.hostname),
        domains: domains(service, port, &proxy.namespace),
        routes: vec![route_to(&names::outbound_cluster(
            port,
            "",
            &service.hostname,
        ))],
        ..Default::default()
    }
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

fn route_to(cluster: &str) -> Route {
    Route {
        name: "default".to_string(),
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
            ..Default::default()
        }),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.to_string())),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn fallback_virtual_host(allow_any: bool) -> VirtualHost {
    let cluster = if allow_any {
        names::PASSTHROUGH_CLUSTER
    } else {
        names::BLACKHOLE_CLUSTER
    };
    VirtualHost {
        name: if allow_any { "allow_any" } else { "block_all" }.to_string(),
        domains: vec!["*".to_string()],
        routes: vec![route_to(cluster)],
        ..Default::default()
    }
}
