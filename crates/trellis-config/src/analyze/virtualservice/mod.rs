//! Analyzers of VirtualServices: their destinations, gateways, hosts and rules.

pub mod routes;

use std::collections::{BTreeMap, BTreeSet};

use trellis_api::istio::networking::{Destination, VirtualService};
use trellis_api::{Kind, Resource};

use super::context::full_name;
use super::hosts::{self, Registry};
use super::messages as m;
use super::{Context, Message, selector};

/// The name of the implicit gateway of every sidecar.
const MESH_GATEWAY: &str = "mesh";

/// What a route entry without a destination stands for: a destination to the empty host,
/// which resolves to nothing (Istio reports it as a missing host).
static NO_DESTINATION: Destination = Destination {
    host: String::new(),
    subset: String::new(),
    port: None,
};

/// Every destination of a VirtualService's routes (tcp, then tls, then http, as Istio).
fn route_destinations(vs: &VirtualService) -> Vec<&Destination> {
    let tcp = vs
        .tcp
        .iter()
        .flat_map(|r| r.route.iter())
        .map(|d| d.destination.as_ref());
    let tls = vs
        .tls
        .iter()
        .flat_map(|r| r.route.iter())
        .map(|d| d.destination.as_ref());
    let http = vs
        .http
        .iter()
        .flat_map(|r| r.route.iter())
        .map(|d| d.destination.as_ref());
    tcp.chain(tls)
        .chain(http)
        .map(|d| d.unwrap_or(&NO_DESTINATION))
        .collect()
}

/// Every mirror destination of the http routes (`mirror` and `mirrors`).
fn mirror_destinations(vs: &VirtualService) -> Vec<&Destination> {
    let mut out = Vec::new();
    for r in &vs.http {
        out.extend(r.mirror.as_ref());
        out.extend(r.mirrors.iter().filter_map(|m| m.destination.as_ref()));
    }
    out
}

/// `gw` as `(namespace, name)`: `ns/name` or a short name in the VirtualService's namespace.
fn gateway_ref<'g>(vs_ns: &'g str, gw: &'g str) -> (&'g str, &'g str) {
    gw.split_once('/').unwrap_or((vs_ns, gw))
}

/// IST0101 (host, mirror host, host:port) and IST0112; IST0140 for subsets on ingress.
pub fn destination_hosts(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let registry = Registry::new(ctx);
    for (r, vs) in ctx.virtual_services() {
        let ns = r.meta.namespace.as_str();
        let groups = [
            ("host", route_destinations(vs)),
            ("mirror host", mirror_destinations(vs)),
        ];
        for (reftype, dests) in groups {
            for d in dests {
                match registry.lookup(ns, &vs.export_to, &d.host) {
                    None => out.push(m::referenced_resource_not_found(r, reftype, &d.host)),
                    Some(target) => check_port(r, d, &target.ports, out),
                }
            }
        }
    }
    subsets_on_ingress(ctx, out);
}

fn check_port(r: &Resource, d: &Destination, ports: &[hosts::ServicePort], out: &mut Vec<Message>) {
    match &d.port {
        None if ports.len() > 1 => {
            let numbers: Vec<u32> = ports.iter().map(|p| p.number).collect();
            out.push(m::port_selector_required(r, &d.host, &numbers));
        }
        None => {}
        Some(p) if !ports.iter().any(|sp| sp.number == p.number) => {
            out.push(m::referenced_resource_not_found(
                r,
                "host:port",
                &format!("{}:{}", d.host, p.number),
            ));
        }
        Some(_) => {}
    }
}

/// IST0140: a VirtualService bound to gateways routes without a subset to a host for which
/// another VirtualService defines subset routes; the subset routing has no effect there.
fn subsets_on_ingress(ctx: &Context<'_>, out: &mut Vec<Message>) {
    // VirtualService full name -> destinations with a subset to one of its own hosts.
    let mut with_subsets: BTreeMap<String, Vec<&Destination>> = BTreeMap::new();
    for (r, vs) in ctx.virtual_services() {
        for d in vs
            .http
            .iter()
            .flat_map(|h| &h.route)
            .filter_map(|d| d.destination.as_ref())
        {
            if !d.subset.is_empty() && vs.hosts.contains(&d.host) {
                with_subsets.entry(full_name(r)).or_default().push(d);
            }
        }
    }
    for (r, vs) in ctx.virtual_services() {
        if vs.gateways.is_empty() {
            continue;
        }
        for d in vs
            .http
            .iter()
            .flat_map(|h| &h.route)
            .filter_map(|d| d.destination.as_ref())
        {
            if !d.subset.is_empty() {
                continue;
            }
            for (other, dests) in &with_subsets {
                for sd in dests {
                    if sd.host == d.host {
                        out.push(m::ingress_route_rules_not_affected(r, other, &full_name(r)));
                    }
                }
            }
        }
    }
}

/// IST0101 for `host+subset` routed to without a DestinationRule defining that subset.
pub fn destination_rules(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let mut subsets: BTreeSet<((String, String), &str)> = BTreeSet::new();
    for (r, dr) in ctx.destination_rules() {
        let key = hosts::resource_name_of_host(&r.meta.namespace, &dr.host);
        for s in &dr.subsets {
            subsets.insert((key.clone(), s.name.as_str()));
        }
    }
    for (r, vs) in ctx.virtual_services() {
        let ns = r.meta.namespace.as_str();
        let groups = [
            ("host+subset in destinationrule", route_destinations(vs)),
            ("mirror+subset in destinationrule", mirror_destinations(vs)),
        ];
        for (reftype, dests) in groups {
            for d in dests {
                if d.subset.is_empty() {
                    continue;
                }
                let key = hosts::resource_name_of_host(ns, &d.host);
                if !subsets.contains(&(key, d.subset.as_str())) {
                    let val = format!("{}+{}", d.host, d.subset);
                    out.push(m::referenced_resource_not_found(r, reftype, &val));
                }
            }
        }
    }
}

/// IST0101 for missing gateways, IST0165 for internal gateways, IST0132 for hosts the
/// gateway does not serve.
pub fn gateways(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, vs) in ctx.virtual_services() {
        let ns = r.meta.namespace.as_str();
        for gw in &vs.gateways {
            if gw == MESH_GATEWAY {
                continue;
            }
            let (gw_ns, gw_name) = gateway_ref(ns, gw);
            if gw_name.contains("~istio-autogenerated-k8s-gateway~") {
                out.push(m::referenced_internal_gateway(r, &full_name(r), gw));
                continue;
            }
            let gateway = match ctx.find(Kind::Gateway, gw_ns, gw_name).map(|g| &g.spec) {
                Some(trellis_api::Spec::Gateway(g)) => Some(g),
                _ => None,
            };
            if gateway.is_none() {
                out.push(m::referenced_resource_not_found(r, "gateway", gw));
            }
            // A missing gateway serves no host either: Istio reports both.
            let served = gateway.is_some_and(|g| vs_host_in_gateway(g, gw_ns, &vs.hosts, ns));
            if !served {
                out.push(m::host_not_in_gateway(
                    r,
                    &vs.hosts,
                    &full_name(r),
                    &super::context::full_name_of(gw_ns, gw_name),
                ));
            }
        }
    }
}

/// Whether any VirtualService host is served by a server of the gateway, counting only the
/// server hosts visible from the VirtualService's namespace.
fn vs_host_in_gateway(
    gw: &trellis_api::istio::networking::Gateway,
    gw_ns: &str,
    vs_hosts: &[String],
    vs_ns: &str,
) -> bool {
    let mut gw_hosts: Vec<String> = Vec::new();
    for server in &gw.servers {
        for h in &server.hosts {
            match h.split_once('/') {
                Some((".", host)) => gw_hosts.push(format!("{gw_ns}/{host}")),
                Some(("*", "*")) => gw_hosts.push("*".to_string()),
                Some(("*", host)) => gw_hosts.push(host.to_string()),
                _ => gw_hosts.push(h.clone()),
            }
        }
    }
    let visible = hosts::names_for_namespace(&gw_hosts, vs_ns);
    visible
        .iter()
        .any(|gh| vs_hosts.iter().any(|vh| hosts::matches(gh, vh)))
}

/// IST0109: VirtualServices bound to the mesh gateway that define the same host in
/// overlapping exportTo scopes.
pub fn conflicting_mesh_hosts(ctx: &Context<'_>, out: &mut Vec<Message>) {
    // (scope, fqdn) -> VirtualServices, in input order.
    let mut by_host: BTreeMap<(String, String), Vec<&Resource>> = BTreeMap::new();
    for (r, vs) in ctx.virtual_services() {
        let on_mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == MESH_GATEWAY);
        if !on_mesh {
            continue;
        }
        let ns = r.meta.namespace.as_str();
        for scope in hosts::export_scopes(&vs.export_to, ns) {
            for h in &vs.hosts {
                by_host
                    .entry((scope.clone(), hosts::to_fqdn(ns, h)))
                    .or_default()
                    .push(r);
            }
        }
    }
    let mut reported: BTreeSet<String> = BTreeSet::new();
    for ((scope, fqdn), vss) in &by_host {
        let mut vss = vss.clone();
        if scope != hosts::ALL_NAMESPACES {
            for ((s2, h2), more) in &by_host {
                if s2 == hosts::ALL_NAMESPACES && hosts::matches(fqdn, h2) {
                    vss.extend(more.iter().copied());
                }
            }
        }
        if vss.len() < 2 {
            continue;
        }
        let mut names: Vec<String> = vss.iter().map(|r| full_name(r)).collect();
        names.sort();
        let names = names.join(",");
        for r in vss {
            if reported.insert(full_name(r)) {
                out.push(m::conflicting_mesh_gateway_hosts(
                    r,
                    &names,
                    &format!("{scope}/{fqdn}"),
                ));
            }
        }
    }
}

/// The first header key of a match that routes on a JWT claim (`@request.auth.claims.x`
/// or `@request.auth.claims[x]`).
fn jwt_claim_key(vs: &VirtualService) -> Option<&str> {
    const PREFIX: &str = "@request.auth.claims";
    let is_claim = |key: &str| {
        if key.len() < PREFIX.len() || !key[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
            return false;
        }
        let rest = &key[PREFIX.len()..];
        (rest.starts_with('.') && rest.len() > 1)
            || (rest.starts_with('[') && rest.ends_with(']') && rest.len() > 2)
    };
    vs.http.iter().flat_map(|h| &h.r#match).find_map(|m| {
        m.headers
            .keys()
            .chain(m.without_headers.keys())
            .find(|k| is_claim(k))
            .map(String::as_str)
    })
}

/// IST0149: JWT claim routing on a gateway whose pods no RequestAuthentication selects.
pub fn jwt_claim_route(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, vs) in ctx.virtual_services() {
        let Some(key) = jwt_claim_key(vs) else {
            continue;
        };
        for gw in &vs.gateways {
            if gw == MESH_GATEWAY {
                continue;
            }
            let (gw_ns, gw_name) = gateway_ref(&r.meta.namespace, gw);
            let Some(gw_res) = ctx.find(Kind::Gateway, gw_ns, gw_name) else {
                continue;
            };
            let trellis_api::Spec::Gateway(gateway) = &gw_res.spec else {
                continue;
            };
            for (pod, _) in ctx.pods() {
                if !selector::matches(&gateway.selector, &pod.meta.labels) {
                    continue;
                }
                let covered = ctx.request_authentications().any(|(ra, spec)| {
                    let ns_ok = ra.meta.namespace == "istio-system"
                        || ra.meta.namespace == pod.meta.namespace;
                    let empty = Default::default();
                    let sel = spec.selector.as_ref().map_or(&empty, |s| &s.match_labels);
                    ns_ok && selector::matches(sel, &pod.meta.labels)
                });
                if !covered {
                    out.push(m::jwt_claim_routing_without_request_authn(
                        r,
                        key,
                        &super::context::full_name_of(gw_ns, gw_name),
                        &pod.meta.name,
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_refs_default_to_the_virtual_service_namespace() {
        assert_eq!(gateway_ref("ns", "gw"), ("ns", "gw"));
        assert_eq!(gateway_ref("ns", "other/gw"), ("other", "gw"));
    }
}
