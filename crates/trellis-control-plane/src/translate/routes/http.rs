//! One Istio HTTP route → Envoy routes: one per match (or one without matches), named
//! Istio's way (`route-name` or `route-name.match-name`), with the action the route asks
//! for (redirect, direct response, or forwarding to destinations) and its per-route filter
//! configuration (fault, CORS).
//!
//! Routes are matched in order, so translation of a VirtualService stops after the first
//! catch-all route: nothing after it could ever match.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{Decorator, Route};
use envoy_types::pb::google::protobuf::{Struct, Value, value};
use envoy_types::util::pack_any;
use trellis_api::Resource;
use trellis_api::istio::networking::{HttpMatchRequest, HttpRoute, VirtualService};

use super::{
    CORS_FILTER, FAULT_FILTER, RouteContext, Skip, actions, cors, delegate, destinations, fault,
    headers, matches,
};
use crate::translate::names;

/// A VirtualService as one proxy sees it: its hosts as fully qualified names and its HTTP
/// routes (delegates merged in) translated for one listener or gateway server port.
#[derive(Debug, Clone)]
pub struct VirtualServiceRoutes<'a> {
    pub resource: &'a Resource,
    /// Hosts, resolved in the VirtualService's namespace and lower-cased.
    pub hosts: Vec<String>,
    /// The Envoy routes, in order; empty when nothing in the VirtualService applies here.
    pub routes: Vec<Route>,
}

impl<'a> VirtualServiceRoutes<'a> {
    /// Translates each VirtualService (given in precedence order) for the context.
    pub(crate) fn for_proxy(
        ctx: &RouteContext<'_>,
        virtual_services: impl Iterator<Item = (&'a Resource, &'a VirtualService)>,
    ) -> Vec<Self> {
        virtual_services
            .filter(|(_, vs)| !vs.hosts.is_empty())
            .map(|(resource, vs)| VirtualServiceRoutes {
                resource,
                hosts: vs
                    .hosts
                    .iter()
                    .map(|h| {
                        ctx.mesh
                            .resolve(h, &resource.meta.namespace)
                            .to_ascii_lowercase()
                    })
                    .collect(),
                routes: virtual_service_routes(ctx, resource, vs),
            })
            .collect()
    }
}

/// The Envoy routes of one VirtualService, in order; routes that cannot be translated are
/// skipped with a warning.
pub(crate) fn virtual_service_routes(
    ctx: &RouteContext<'_>,
    resource: &Resource,
    vs: &VirtualService,
) -> Vec<Route> {
    let http = delegate::expand(ctx.mesh, resource, vs);
    let mut out = Vec::new();
    for route in &http {
        let mut catch_all = route.r#match.is_empty();
        let matches: Vec<Option<&HttpMatchRequest>> = if route.r#match.is_empty() {
            vec![None]
        } else {
            route.r#match.iter().map(Some).collect()
        };
        for m in matches {
            match translate_route(ctx, resource, route, m) {
                Ok(Some(r)) => {
                    let stop = is_catch_all(&r);
                    out.push(r);
                    if stop {
                        catch_all = true;
                        break;
                    }
                }
                Ok(None) => {}
                Err(Skip(reason)) => tracing::warn!(
                    virtual_service = %format!("{}/{}", resource.meta.namespace, resource.meta.name),
                    route = %route.name,
                    proxy = %ctx.proxy.id,
                    "skipping HTTP route: {reason}"
                ),
            }
        }
        if catch_all {
            break;
        }
    }
    out
}

/// One Envoy route for one match of an Istio route; `None` when the match does not apply
/// to this proxy or port (Istio evaluates `port`, `sourceLabels`, `sourceNamespace` and
/// `gateways` at translation time).
pub(crate) fn translate_route(
    ctx: &RouteContext<'_>,
    resource: &Resource,
    route: &HttpRoute,
    m: Option<&HttpMatchRequest>,
) -> Result<Option<Route>, Skip> {
    if let Some(m) = m {
        if m.port != 0 && m.port != ctx.port {
            return Ok(None);
        }
        if !source_matches(ctx, m) {
            return Ok(None);
        }
    }
    let name = match m {
        Some(m) if !m.name.is_empty() => format!("{}.{}", route.name, m.name),
        _ => route.name.clone(),
    };
    let mut out = Route {
        name,
        r#match: Some(matches::route_match(m)?),
        metadata: Some(config_metadata(resource)),
        stat_prefix: m.map(|m| m.stat_prefix.clone()).unwrap_or_default(),
        ..Default::default()
    };
    let mut authority = String::new();
    if let Some(h) = &route.headers {
        let ops = headers::operations(h);
        out.request_headers_to_add = ops.request_add;
        out.response_headers_to_add = ops.response_add;
        out.request_headers_to_remove = ops.request_remove;
        out.response_headers_to_remove = ops.response_remove;
        authority = ops.authority;
    }
    if let Some(redirect) = &route.redirect {
        out.action = Some(actions::redirect(redirect, ctx.port, ctx.is_tls)?);
    } else if let Some(direct) = &route.direct_response {
        out.action = Some(actions::direct_response(direct)?);
    } else {
        out.action = Some(Action::Route(destinations::route_action(
            ctx, route, &mut out, authority,
        )?));
    }
    out.decorator = Some(decorator(operation(&out, &resource.meta.name, ctx.port)));
    let mut per_filter = HashMap::new();
    if let Some(f) = &route.fault
        && let Some(config) = fault::http_fault(f)?
    {
        per_filter.insert(FAULT_FILTER.to_string(), pack_any(config));
    }
    if let Some(c) = &route.cors_policy {
        per_filter.insert(CORS_FILTER.to_string(), pack_any(cors::cors_policy(c)?));
    }
    out.typed_per_filter_config = per_filter;
    Ok(Some(out))
}

/// Istio's source match: gateways named in the match (else the VirtualService's binding
/// decided already), or labels that are a subset of the proxy's and its namespace.
fn source_matches(ctx: &RouteContext<'_>, m: &HttpMatchRequest) -> bool {
    if !m.gateways.is_empty() {
        return m.gateways.iter().any(|g| g == ctx.gateway);
    }
    let labels_ok = m
        .source_labels
        .iter()
        .all(|(k, v)| ctx.proxy.labels.get(k) == Some(v));
    labels_ok && (m.source_namespace.is_empty() || m.source_namespace == ctx.proxy.namespace)
}

/// True for a route that matches every request, so no later route can match.
pub(crate) fn is_catch_all(route: &Route) -> bool {
    let Some(m) = &route.r#match else {
        return false;
    };
    let path = match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) => p == "/",
        Some(PathSpecifier::PathSeparatedPrefix(p)) => p == "/",
        Some(PathSpecifier::SafeRegex(r)) => r.regex == ".*",
        _ => false,
    };
    path && m.headers.is_empty() && m.query_parameters.is_empty() && m.dynamic_metadata.is_empty()
}

pub(crate) fn decorator(operation: String) -> Decorator {
    Decorator {
        operation,
        ..Default::default()
    }
}

/// The tracing operation Istio names a route by: `host:port/path*` for a single cluster,
/// else `virtual-service:port/path*`.
fn operation(route: &Route, vs_name: &str, port: u32) -> String {
    let path = match route
        .r#match
        .as_ref()
        .and_then(|m| m.path_specifier.as_ref())
    {
        Some(PathSpecifier::Prefix(p)) => format!("{p}*"),
        Some(PathSpecifier::Path(p)) => p.clone(),
        Some(PathSpecifier::SafeRegex(r)) => r.regex.clone(),
        _ => "/*".to_string(),
    };
    if let Some(Action::Route(action)) = &route.action
        && let Some(ClusterSpecifier::Cluster(cluster)) = &action.cluster_specifier
        && let Some((port, _, host)) = names::parse_outbound_cluster(cluster)
    {
        return format!("{host}:{port}{path}");
    }
    format!("{vs_name}:{port}{path}")
}

/// `istio.config`: which object a route came from, as Istio records it for debugging.
fn config_metadata(resource: &Resource) -> Metadata {
    let path = format!(
        "/apis/{}/namespaces/{}/virtual-service/{}",
        resource.api_version, resource.meta.namespace, resource.meta.name
    );
    let mut fields = HashMap::new();
    fields.insert(
        "config".to_string(),
        Value {
            kind: Some(value::Kind::StringValue(path)),
        },
    );
    let mut filter_metadata = HashMap::new();
    filter_metadata.insert("istio".to_string(), Struct { fields });
    Metadata {
        filter_metadata,
        ..Default::default()
    }
}
