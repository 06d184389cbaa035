//! Short-name resolution and delegation.
//!
//! Before translation a VirtualService's HTTP routes are copied with destination and mirror
//! hosts resolved in the VirtualService's namespace and match `gateways` written as
//! `namespace/name`. A route with `delegate` is replaced by the delegate VirtualService's
//! routes (a VirtualService without hosts, exported to the root's namespace; its names
//! resolve in its own namespace), each merged with the root route by Istio's rules: the
//! delegate's matches must refine the root's (else the delegate route is dropped), and
//! whatever the delegate route leaves unset it inherits from the root.

use std::collections::BTreeMap;

use trellis_api::istio::networking::{HttpMatchRequest, HttpRoute, StringMatch, VirtualService};
use trellis_api::{Resource, Spec};

use crate::mesh::MeshSnapshot;

/// The VirtualService's HTTP routes, resolved and with delegates expanded.
pub(super) fn expand(
    mesh: &MeshSnapshot,
    resource: &Resource,
    vs: &VirtualService,
) -> Vec<HttpRoute> {
    let ns = resource.meta.namespace.as_str();
    let mut out = Vec::new();
    for route in &vs.http {
        let mut root = route.clone();
        resolve(mesh, &mut root, ns);
        let Some(delegate) = root.delegate.take() else {
            out.push(root);
            continue;
        };
        let delegate_ns = if delegate.namespace.is_empty() {
            ns
        } else {
            delegate.namespace.as_str()
        };
        let Some(delegate_vs) = find_delegate(mesh, &delegate.name, delegate_ns, ns) else {
            tracing::warn!(
                virtual_service = %format!("{ns}/{}", resource.meta.name),
                "delegate VirtualService {delegate_ns}/{} not found or not exported to {ns}",
                delegate.name
            );
            continue;
        };
        for sub in &delegate_vs.http {
            if sub.delegate.is_some() {
                // Istio does not chain delegation; validation rejects it.
                continue;
            }
            let mut sub = sub.clone();
            resolve(mesh, &mut sub, delegate_ns);
            match merge_route(&root, sub) {
                Some(merged) => out.push(merged),
                None => tracing::warn!(
                    virtual_service = %format!("{ns}/{}", resource.meta.name),
                    "delegate {delegate_ns}/{} route conflicts with the root's matches; dropped",
                    delegate.name
                ),
            }
        }
    }
    out
}

/// A delegate VirtualService: no hosts of its own, visible to the root's namespace.
fn find_delegate<'a>(
    mesh: &'a MeshSnapshot,
    name: &str,
    namespace: &str,
    root_namespace: &str,
) -> Option<&'a VirtualService> {
    mesh.virtual_services.iter().find_map(|r| match &r.spec {
        Spec::VirtualService(vs)
            if r.meta.name == name
                && r.meta.namespace == namespace
                && vs.hosts.is_empty()
                && (vs.export_to.is_empty()
                    || vs.export_to.iter().any(|e| {
                        e == "*" || e == root_namespace || (e == "." && namespace == root_namespace)
                    })) =>
        {
            Some(vs)
        }
        _ => None,
    })
}

fn resolve(mesh: &MeshSnapshot, route: &mut HttpRoute, ns: &str) {
    for m in &mut route.r#match {
        for g in &mut m.gateways {
            *g = resolve_gateway(g, ns);
        }
    }
    for d in route
        .route
        .iter_mut()
        .filter_map(|d| d.destination.as_mut())
    {
        d.host = mesh.resolve(&d.host, ns);
    }
    if let Some(m) = &mut route.mirror {
        m.host = mesh.resolve(&m.host, ns);
    }
    for m in route
        .mirrors
        .iter_mut()
        .filter_map(|m| m.destination.as_mut())
    {
        m.host = mesh.resolve(&m.host, ns);
    }
}

/// `name` → `ns/name`, `./name` → `ns/name`, the legacy `name.ns.svc.cluster.local` →
/// `ns/name`; `mesh` stays `mesh`.
pub(super) fn resolve_gateway(gateway: &str, ns: &str) -> String {
    if gateway == "mesh" {
        return gateway.to_string();
    }
    if let Some((gw_ns, name)) = gateway.split_once('/') {
        return if gw_ns == "." {
            format!("{ns}/{name}")
        } else {
            gateway.to_string()
        };
    }
    match gateway.split_once('.') {
        None => format!("{ns}/{gateway}"),
        Some((name, rest)) => match rest.split_once('.') {
            Some((gw_ns, _)) => format!("{gw_ns}/{name}"),
            None => format!("{rest}/{name}"),
        },
    }
}

/// Merges a delegate route into its root; `None` when their matches conflict.
fn merge_route(root: &HttpRoute, mut sub: HttpRoute) -> Option<HttpRoute> {
    sub.r#match = merge_matches(&root.r#match, &sub.r#match)?;
    sub.name = match (root.name.is_empty(), sub.name.is_empty()) {
        (_, true) => root.name.clone(),
        (true, false) => sub.name,
        (false, false) => format!("{}-{}", root.name, sub.name),
    };
    macro_rules! inherit {
        ($($field:ident),*) => { $( if sub.$field.is_none() { sub.$field = root.$field.clone(); } )* };
    }
    inherit!(
        rewrite,
        direct_response,
        timeout,
        retries,
        fault,
        mirror,
        mirror_percent,
        mirror_percentage,
        cors_policy,
        headers
    );
    if sub.mirrors.is_empty() {
        sub.mirrors = root.mirrors.clone();
    }
    Some(sub)
}

fn merge_matches(
    root: &[HttpMatchRequest],
    sub: &[HttpMatchRequest],
) -> Option<Vec<HttpMatchRequest>> {
    if root.is_empty() {
        return Some(sub.to_vec());
    }
    if sub.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for leaf in sub {
        let before = out.len();
        for r in root.iter().filter(|r| !has_conflict(r, leaf)) {
            out.push(merge_match(r, leaf));
        }
        if out.len() == before {
            return None;
        }
    }
    Some(out)
}

fn merge_match(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> HttpMatchRequest {
    let mut out = leaf.clone();
    out.name = match (root.name.is_empty(), leaf.name.is_empty()) {
        (_, true) => root.name.clone(),
        (true, false) => leaf.name.clone(),
        (false, false) => format!("{}-{}", root.name, leaf.name),
    };
    out.uri = leaf.uri.clone().or_else(|| root.uri.clone());
    out.scheme = leaf.scheme.clone().or_else(|| root.scheme.clone());
    out.method = leaf.method.clone().or_else(|| root.method.clone());
    out.authority = leaf.authority.clone().or_else(|| root.authority.clone());
    out.headers = merged(&root.headers, &leaf.headers);
    out.without_headers = merged(&root.without_headers, &leaf.without_headers);
    out.query_params = merged(&root.query_params, &leaf.query_params);
    out.source_labels = merged(&root.source_labels, &leaf.source_labels);
    if out.port == 0 {
        out.port = root.port;
    }
    if out.source_namespace.is_empty() {
        out.source_namespace = root.source_namespace.clone();
    }
    if out.gateways.is_empty() {
        out.gateways = root.gateways.clone();
    }
    if out.stat_prefix.is_empty() {
        out.stat_prefix = root.stat_prefix.clone();
    }
    out
}

/// Root entries, overridden by the leaf's.
fn merged<V: Clone>(root: &BTreeMap<String, V>, leaf: &BTreeMap<String, V>) -> BTreeMap<String, V> {
    let mut out = root.clone();
    out.extend(leaf.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// True when a delegate match cannot be a refinement of the root match.
fn has_conflict(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> bool {
    let pairs = [
        (&root.uri, &leaf.uri),
        (&root.scheme, &leaf.scheme),
        (&root.method, &leaf.method),
        (&root.authority, &leaf.authority),
    ];
    if pairs
        .iter()
        .any(|(r, l)| string_match_conflict(r.as_ref(), l.as_ref()))
    {
        return true;
    }
    let map_conflict = |r: &BTreeMap<String, StringMatch>, l: &BTreeMap<String, StringMatch>| {
        l.iter()
            .any(|(k, lv)| string_match_conflict(r.get(k), Some(lv)))
    };
    if map_conflict(&root.headers, &leaf.headers)
        || map_conflict(&root.without_headers, &leaf.without_headers)
        || map_conflict(&root.query_params, &leaf.query_params)
    {
        return true;
    }
    if root.ignore_uri_case != leaf.ignore_uri_case {
        return true;
    }
    if root.port > 0 && leaf.port > 0 && root.port != leaf.port {
        return true;
    }
    if !root.source_namespace.is_empty() && leaf.source_namespace != root.source_namespace {
        return true;
    }
    if leaf
        .source_labels
        .iter()
        .any(|(k, v)| root.source_labels.get(k).is_some_and(|rv| rv != v))
    {
        return true;
    }
    if !root.gateways.is_empty() && !leaf.gateways.is_empty() {
        if root.gateways.len() < leaf.gateways.len() {
            return true;
        }
        if leaf.gateways.iter().any(|g| !root.gateways.contains(g)) {
            return true;
        }
    }
    false
}

/// Istio's rule: a regex on either side conflicts with anything on the other; an exact
/// root needs the same exact leaf; a prefix root needs a leaf inside the prefix.
fn string_match_conflict(root: Option<&StringMatch>, leaf: Option<&StringMatch>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    fn set(s: &Option<String>) -> Option<&str> {
        s.as_deref().filter(|v| !v.is_empty())
    }
    let (r_exact, r_prefix, r_regex) = (set(&root.exact), set(&root.prefix), set(&root.regex));
    let (l_exact, l_prefix, l_regex) = (set(&leaf.exact), set(&leaf.prefix), set(&leaf.regex));
    if r_regex.is_some() && (l_regex.is_some() || l_prefix.is_some() || l_exact.is_some()) {
        return true;
    }
    if l_regex.is_some() && (r_regex.is_some() || r_prefix.is_some() || r_exact.is_some()) {
        return true;
    }
    if let Some(exact) = r_exact {
        return l_prefix.is_some() || l_exact != Some(exact);
    }
    if let Some(prefix) = r_prefix {
        if let Some(lp) = l_prefix {
            return !lp.starts_with(prefix);
        }
        if let Some(le) = l_exact {
            return !le.starts_with(prefix);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(p: &str) -> Option<StringMatch> {
        Some(StringMatch {
            prefix: Some(p.into()),
            ..Default::default()
        })
    }

    #[test]
    fn gateway_names() {
        assert_eq!(
            resolve_gateway("bookinfo-gateway", "default"),
            "default/bookinfo-gateway"
        );
        assert_eq!(resolve_gateway("./gw", "shop"), "shop/gw");
        assert_eq!(
            resolve_gateway("istio-system/gw", "shop"),
            "istio-system/gw"
        );
        assert_eq!(
            resolve_gateway("gw.istio-system.svc.cluster.local", "shop"),
            "istio-system/gw"
        );
        assert_eq!(resolve_gateway("mesh", "shop"), "mesh");
    }

    #[test]
    fn delegate_matches_must_refine_the_root() {
        let root = HttpRoute {
            name: "root".into(),
            r#match: vec![HttpMatchRequest {
                uri: prefix("/productpage"),
                ..Default::default()
            }],
            timeout: Some(trellis_api::Duration::from_secs(3)),
            ..Default::default()
        };
        let inside = HttpRoute {
            name: "v2".into(),
            r#match: vec![HttpMatchRequest {
                uri: prefix("/productpage/v2"),
                ..Default::default()
            }],
            ..Default::default()
        };
        let merged = merge_route(&root, inside).unwrap();
        assert_eq!(merged.name, "root-v2");
        assert_eq!(merged.r#match[0].uri, prefix("/productpage/v2"));
        assert_eq!(merged.timeout, root.timeout);
        let outside = HttpRoute {
            r#match: vec![HttpMatchRequest {
                uri: prefix("/reviews"),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(merge_route(&root, outside), None);
        // A delegate route without matches takes the root's.
        let any = HttpRoute::default();
        let merged = merge_route(&root, any).unwrap();
        assert_eq!(merged.name, "root");
        assert_eq!(merged.r#match, root.r#match);
    }
}
