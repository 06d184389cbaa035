//! TCP and TLS (SNI) forwarding: `tcp_proxy` filters, and the VirtualService `tcp` and
//! `tls` routes that choose their (weighted) destination clusters.

use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, FilterChainMatch};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::{
    ClusterSpecifier, WeightedCluster,
};
use envoy_types::util::pack_any;
use trellis_api::Resource;
use trellis_api::istio::networking::{RouteDestination, VirtualService};

use trellis_api::host::covers;

use crate::mesh::MeshSnapshot;
use crate::proxy::ProxyNode;
use crate::registry::build::selects;
use crate::translate::names;

pub const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";

/// Weighted destination clusters (weights as written; a lone destination weighs 100).
pub type Targets = Vec<(String, u32)>;

/// A `tcp_proxy` filter to one cluster or several weighted ones.
pub fn tcp_proxy(stat_prefix: &str, targets: &Targets) -> Filter {
    let cluster_specifier = match targets.as_slice() {
        [(one, _)] => ClusterSpecifier::Cluster(one.clone()),
        many => ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: many
                .iter()
                .map(|(name, weight)| ClusterWeight {
                    name: name.clone(),
                    weight: *weight,
                    ..Default::default()
                })
                .collect(),
        }),
    };
    let proxy = TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(cluster_specifier),
        ..Default::default()
    };
    Filter {
        name: TCP_PROXY.to_string(),
        config_type: Some(ConfigType::TypedConfig(pack_any(proxy))),
    }
}

/// A filter chain forwarding to one cluster.
pub fn chain_to(cluster: &str, filter_chain_match: Option<FilterChainMatch>) -> FilterChain {
    chain(
        tcp_proxy(cluster, &vec![(cluster.to_string(), 100)]),
        filter_chain_match,
    )
}

/// A filter chain of one network filter.
pub fn chain(filter: Filter, filter_chain_match: Option<FilterChainMatch>) -> FilterChain {
    FilterChain {
        filter_chain_match,
        filters: vec![filter],
        ..Default::default()
    }
}

/// True when one of the VirtualService's hosts names `hostname` (short names resolve in
/// the VirtualService's namespace; wildcards cover).
pub fn names_host(
    mesh: &MeshSnapshot,
    resource: &Resource,
    vs: &VirtualService,
    hostname: &str,
) -> bool {
    vs.hosts.iter().any(|h| {
        let h = mesh.resolve(h, &resource.meta.namespace);
        covers(&h, hostname)
    })
}

/// The clusters a route's destinations name. `port` is the port used when a destination
/// names none and its service has several.
pub fn targets(
    mesh: &MeshSnapshot,
    namespace: &str,
    routes: &[RouteDestination],
    port: u32,
) -> Targets {
    routes
        .iter()
        .filter_map(|r| {
            let d = r.destination.as_ref()?;
            let host = mesh.resolve(&d.host, namespace);
            let number = match d.port.as_ref().map(|p| p.number).filter(|n| *n != 0) {
                Some(n) => n,
                None => match mesh.registry.service(&host).map(|s| s.ports.as_slice()) {
                    Some([only]) => only.number,
                    _ => port,
                },
            };
            let weight = if routes.len() == 1 {
                100
            } else {
                u32::try_from(r.weight).unwrap_or(0)
            };
            Some((names::outbound_cluster(number, &d.subset, &host), weight))
        })
        .filter(|(_, w)| *w > 0)
        .collect()
}

/// The L4 match conditions of a `tcp` or `tls` route.
struct L4Match<'a> {
    port: u32,
    source_labels: &'a std::collections::BTreeMap<String, String>,
    source_namespace: &'a str,
    gateways: &'a [String],
}

impl L4Match<'_> {
    /// Whether the conditions admit this proxy on `port` through `gateway` (`mesh` or
    /// `namespace/name`); short gateway names resolve in the VirtualService's namespace.
    fn admits(&self, proxy: &ProxyNode, gateway: &str, port: u32, vs_namespace: &str) -> bool {
        let names_gateway = |g: &String| {
            g == gateway || (!g.contains('/') && format!("{vs_namespace}/{g}") == gateway)
        };
        (self.port == 0 || self.port == port)
            && selects(self.source_labels, &proxy.labels)
            && (self.source_namespace.is_empty() || self.source_namespace == proxy.namespace)
            && (self.gateways.is_empty() || self.gateways.iter().any(names_gateway))
    }
}

/// The destinations of the first VirtualService `tcp` route for `hostname:port`, among the
/// VirtualServices `bound` to `gateway` (`mesh` for sidecars) that the proxy sees. `destinationSubnets` and
/// `sourceSubnet` are not matched yet.
pub fn tcp_route<'a>(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    gateway: &str,
    bound: impl Iterator<Item = (&'a Resource, &'a VirtualService)>,
    hostname: Option<&str>,
    port: u32,
) -> Option<Targets> {
    for (resource, vs) in bound {
        if hostname.is_some_and(|h| !names_host(mesh, resource, vs, h)) {
            continue;
        }
        for route in &vs.tcp {
            let ok = route.r#match.is_empty()
                || route.r#match.iter().any(|m| {
                    L4Match {
                        port: m.port,
                        source_labels: &m.source_labels,
                        source_namespace: &m.source_namespace,
                        gateways: &m.gateways,
                    }
                    .admits(proxy, gateway, port, &resource.meta.namespace)
                });
            if ok {
                let t = targets(mesh, &resource.meta.namespace, &route.route, port);
                if !t.is_empty() {
                    return Some(t);
                }
            }
        }
    }
    None
}

/// One SNI-matched destination of a `tls` route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniRoute {
    pub sni_hosts: Vec<String>,
    pub targets: Targets,
}

/// The `tls` routes for `port` as seen by `proxy` through `gateway`, for VirtualServices
/// whose hosts satisfy `host_filter`, in precedence order.
pub fn tls_routes<'a>(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    gateway: &str,
    bound: impl Iterator<Item = (&'a Resource, &'a VirtualService)>,
    port: u32,
    host_filter: &dyn Fn(&Resource, &VirtualService) -> bool,
) -> Vec<SniRoute> {
    let mut out = Vec::new();
    for (resource, vs) in bound {
        if !host_filter(resource, vs) {
            continue;
        }
        for route in &vs.tls {
            for m in &route.r#match {
                let conditions = L4Match {
                    port: m.port,
                    source_labels: &m.source_labels,
                    source_namespace: &m.source_namespace,
                    gateways: &m.gateways,
                };
                if !conditions.admits(proxy, gateway, port, &resource.meta.namespace) {
                    continue;
                }
                let t = targets(mesh, &resource.meta.namespace, &route.route, port);
                if !t.is_empty() && !m.sni_hosts.is_empty() {
                    out.push(SniRoute {
                        sni_hosts: m.sni_hosts.clone(),
                        targets: t,
                    });
                }
            }
        }
    }
    out
}

/// Filter chains for SNI routes (the first route claiming an SNI name wins it).
pub fn sni_chains(routes: &[SniRoute], stat_prefix: &str) -> Vec<FilterChain> {
    let mut claimed: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for r in routes {
        let names: Vec<String> = r
            .sni_hosts
            .iter()
            .filter(|h| !claimed.contains(h))
            .cloned()
            .collect();
        if names.is_empty() {
            continue;
        }
        claimed.extend(names.iter().cloned());
        out.push(chain(
            tcp_proxy(stat_prefix, &r.targets),
            Some(FilterChainMatch {
                server_names: names,
                ..Default::default()
            }),
        ));
    }
    out
}
