//! Forwarding: Istio route destinations → an Envoy `RouteAction`.
//!
//! One destination becomes `cluster`; several become `weighted_clusters` (destinations of
//! weight 0 left out, no `total_weight`: Envoy sums the weights, as current Istio relies
//! on). The cluster is `outbound|port|subset|host` with the destination's port, else the
//! service's only port, else the listener's port. Destination-level headers go on the
//! route (one destination) or on the weighted cluster. Consistent-hash load balancing in
//! the DestinationRule in force adds the matching hash policy.

use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::{
    ConnectionProperties, Cookie, CookieAttribute, Header, PolicySpecifier, QueryParameter,
};
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, HashPolicy, HostRewriteSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::cluster_weight::HostRewriteSpecifier as WeightHostRewrite;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteAction, WeightedCluster};
use envoy_types::pb::google::protobuf::UInt32Value;
use trellis_api::istio::networking::{
    Destination, HttpRoute, HttpRouteDestination, LoadBalancerSettingsConsistentHashLb,
    TrafficPolicyPortTrafficPolicy,
};

use super::{RouteContext, Skip, actions, headers, mirror, retries};
use crate::registry::Service;
use crate::translate::{names, pb_duration};

/// Istio's cluster name for a destination without a host.
const UNKNOWN_SERVICE: &str = "UnknownService";

/// The route action forwarding to the route's destinations, with rewrite, mirrors, retries
/// and timeout. Destination-level headers of a single destination are added to `out`.
pub(super) fn route_action(
    ctx: &RouteContext<'_>,
    route: &HttpRoute,
    out: &mut Route,
    mut authority: String,
) -> Result<RouteAction, Skip> {
    let mut action = RouteAction::default();
    retries::set_timeout(&mut action, route.timeout.as_ref());
    if let Some(rewrite) = &route.rewrite {
        actions::apply_rewrite(&mut action, rewrite, &mut authority)?;
    }
    if !authority.is_empty() {
        action.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(authority));
    }
    action.request_mirror_policies = mirror::mirror_policies(ctx, route);
    let mut consistent_hash = false;
    match route.route.as_slice() {
        [] => {
            return Err(Skip::new(
                "route has no destination, redirect or direct response",
            ));
        }
        [single] => {
            let dest = destination(single)?;
            action.cluster_specifier = Some(ClusterSpecifier::Cluster(cluster_name(ctx, dest)));
            if let Some(h) = &single.headers {
                let ops = headers::operations(h);
                out.request_headers_to_add.extend(ops.request_add);
                out.request_headers_to_remove.extend(ops.request_remove);
                out.response_headers_to_add.extend(ops.response_add);
                out.response_headers_to_remove.extend(ops.response_remove);
                if !ops.authority.is_empty() && action.host_rewrite_specifier.is_none() {
                    action.host_rewrite_specifier =
                        Some(HostRewriteSpecifier::HostRewriteLiteral(ops.authority));
                }
            }
            if let Some(hash) = destination_hash_policy(ctx, dest) {
                action.hash_policy.push(hash);
                consistent_hash = true;
            }
        }
        many => {
            let mut clusters = Vec::new();
            for d in many.iter().filter(|d| d.weight > 0) {
                let dest = destination(d)?;
                clusters.push(weighted(ctx, d, dest));
                action
                    .hash_policy
                    .extend(destination_hash_policy(ctx, dest));
            }
            if clusters.is_empty() {
                return Err(Skip::new("every destination has weight 0"));
            }
            action.cluster_specifier = Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
                clusters,
                ..Default::default()
            }));
        }
    }
    let policy = route
        .retries
        .as_ref()
        .or(ctx.mesh.mesh.default_http_retry_policy.as_ref());
    action.retry_policy = retries::retry_policy(policy, consistent_hash);
    Ok(action)
}

fn destination(d: &HttpRouteDestination) -> Result<&Destination, Skip> {
    d.destination
        .as_ref()
        .ok_or_else(|| Skip::new("route destination without destination"))
}

fn weighted(ctx: &RouteContext<'_>, d: &HttpRouteDestination, dest: &Destination) -> ClusterWeight {
    let mut out = ClusterWeight {
        name: cluster_name(ctx, dest),
        weight: Some(UInt32Value {
            value: u32::try_from(d.weight).unwrap_or(0),
        }),
        ..Default::default()
    };
    if let Some(h) = &d.headers {
        let ops = headers::operations(h);
        out.request_headers_to_add = ops.request_add;
        out.request_headers_to_remove = ops.request_remove;
        out.response_headers_to_add = ops.response_add;
        out.response_headers_to_remove = ops.response_remove;
        if !ops.authority.is_empty() {
            out.host_rewrite_specifier = Some(WeightHostRewrite::HostRewriteLiteral(ops.authority));
        }
    }
    out
}

/// Istio's cluster for a destination (host already resolved to a fully qualified name).
pub(super) fn cluster_name(ctx: &RouteContext<'_>, dest: &Destination) -> String {
    if dest.host.is_empty() {
        return UNKNOWN_SERVICE.to_string();
    }
    let service = ctx.mesh.registry.service(&dest.host);
    let port = match (&dest.port, service) {
        (Some(p), _) => p.number,
        (None, Some(s)) if s.ports.len() == 1 => s.ports[0].number,
        _ => ctx.port,
    };
    names::outbound_cluster(port, &dest.subset, &dest.host)
}

/// The hash policy for a destination: the most specific consistent hash among the subset's
/// port-level settings, the subset's, the rule's port-level settings, the rule's.
fn destination_hash_policy(ctx: &RouteContext<'_>, dest: &Destination) -> Option<HashPolicy> {
    let service_ns = ctx
        .mesh
        .registry
        .service(&dest.host)
        .map(|s| s.namespace.as_str())
        .unwrap_or(&ctx.proxy.namespace);
    let (_, rule) = ctx
        .mesh
        .destination_rule(&dest.host, &ctx.proxy.namespace, service_ns)?;
    let policy = rule.traffic_policy.as_ref();
    let port = dest.port.as_ref().map(|p| p.number);
    let port_level = |settings: &[TrafficPolicyPortTrafficPolicy]| {
        let port = port?;
        settings
            .iter()
            .find(|s| s.port.as_ref().is_some_and(|p| p.number == port))
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.consistent_hash.clone())
    };
    let subset = rule.subsets.iter().find(|s| s.name == dest.subset);
    let subset_policy = subset.and_then(|s| s.traffic_policy.as_ref());
    let hash = subset_policy
        .and_then(|p| port_level(&p.port_level_settings))
        .or_else(|| {
            subset_policy
                .and_then(|p| p.load_balancer.as_ref())
                .and_then(|lb| lb.consistent_hash.clone())
        })
        .or_else(|| policy.and_then(|p| port_level(&p.port_level_settings)))
        .or_else(|| {
            policy
                .and_then(|p| p.load_balancer.as_ref())
                .and_then(|lb| lb.consistent_hash.clone())
        })?;
    hash_policy(&hash)
}

/// The hash policy of a service's default route (the rule's, or its port-level setting).
pub(super) fn service_hash_policy(ctx: &RouteContext<'_>, service: &Service) -> Option<HashPolicy> {
    let (_, rule) =
        ctx.mesh
            .destination_rule(&service.hostname, &ctx.proxy.namespace, &service.namespace)?;
    let policy = rule.traffic_policy.as_ref()?;
    let port_level = policy
        .port_level_settings
        .iter()
        .find(|s| s.port.as_ref().is_some_and(|p| p.number == ctx.port))
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.consistent_hash.clone());
    let hash = port_level.or_else(|| {
        policy
            .load_balancer
            .as_ref()
            .and_then(|lb| lb.consistent_hash.clone())
    })?;
    hash_policy(&hash)
}

fn hash_policy(hash: &LoadBalancerSettingsConsistentHashLb) -> Option<HashPolicy> {
    let specifier = if let Some(header) = &hash.http_header_name {
        PolicySpecifier::Header(Header {
            header_name: header.clone(),
            ..Default::default()
        })
    } else if let Some(cookie) = &hash.http_cookie {
        PolicySpecifier::Cookie(Cookie {
            name: cookie.name.clone(),
            ttl: cookie.ttl.as_ref().map(|t| pb_duration(t.to_std())),
            path: cookie.path.clone(),
            attributes: cookie
                .attributes
                .iter()
                .map(|a| CookieAttribute {
                    name: a.name.clone(),
                    value: a.value.clone(),
                })
                .collect(),
        })
    } else if let Some(source_ip) = hash.use_source_ip {
        PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip })
    } else if let Some(name) = &hash.http_query_parameter_name {
        PolicySpecifier::QueryParameter(QueryParameter { name: name.clone() })
    } else {
        return None;
    };
    Some(HashPolicy {
        policy_specifier: Some(specifier),
        ..Default::default()
    })
}
