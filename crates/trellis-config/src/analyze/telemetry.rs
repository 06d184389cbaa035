//! Telemetry analyzers: selectors that match no pod (IST0101) or overlap (IST0159),
//! several Telemetries without selector in a namespace (IST0160), access logging without
//! a provider when the mesh has no default (IST0157), and the deprecated Lightstep
//! provider (IST0002).

use std::collections::BTreeMap;

use trellis_api::Resource;

use super::context::full_name;
use super::messages as m;
use super::{Context, Message, selector};

fn names(list: &[&Resource]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|r| full_name(r)).collect();
    v.sort();
    v
}

pub fn selectors(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let mut by_pod: BTreeMap<(String, String), Vec<&Resource>> = BTreeMap::new();
    for (r, t) in ctx.telemetries() {
        let Some(sel) = t
            .selector
            .as_ref()
            .map(|s| &s.match_labels)
            .filter(|l| !l.is_empty())
        else {
            continue;
        };
        let mut found = false;
        for (pod, _) in ctx.pods_in(Some(&r.meta.namespace)) {
            if selector::matches(sel, &pod.meta.labels) {
                found = true;
                by_pod
                    .entry((pod.meta.namespace.clone(), pod.meta.name.clone()))
                    .or_default()
                    .push(r);
            }
        }
        if !found {
            out.push(m::referenced_resource_not_found(
                r,
                "selector",
                &selector::to_string(sel),
            ));
        }
    }
    for ((ns, pod), list) in &by_pod {
        if list.len() > 1 {
            let n = names(list);
            for r in list {
                out.push(m::conflicting_telemetry_selectors(r, &n, ns, pod));
            }
        }
    }
}

pub fn default_selectors(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let mut by_ns: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
    for (r, t) in ctx.telemetries() {
        if t.selector.is_none() {
            by_ns.entry(r.meta.namespace.as_str()).or_default().push(r);
        }
    }
    for (ns, list) in by_ns {
        if list.len() > 1 {
            let n = names(&list);
            for r in &list {
                out.push(m::multiple_telemetries_without_selector(r, &n, ns));
            }
        }
    }
}

pub fn providers(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let has_default = ctx
        .mesh
        .default_providers
        .as_ref()
        .is_some_and(|d| !d.access_logging.is_empty());
    if has_default {
        return;
    }
    for (r, t) in ctx.telemetries() {
        for l in &t.access_logging {
            if l.disabled == Some(true) {
                continue;
            }
            if l.providers.is_empty() {
                out.push(m::invalid_telemetry_provider(r));
            }
        }
    }
}

pub fn lightstep(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let lightstep: Vec<&str> = ctx
        .mesh
        .extension_providers
        .iter()
        .filter(|p| p.lightstep.is_some())
        .map(|p| p.name.as_str())
        .collect();
    if lightstep.is_empty() {
        return;
    }
    for (r, t) in ctx.telemetries() {
        for p in t.tracing.iter().flat_map(|tr| &tr.providers) {
            if lightstep.contains(&p.name.as_str()) {
                out.push(m::deprecated(
                    r,
                    &format!(
                        "The Lightstep provider {} is deprecated, please migrate to OpenTelemetry provider.",
                        p.name
                    ),
                ));
            }
        }
    }
}
