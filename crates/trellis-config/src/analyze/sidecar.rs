//! Sidecar selectors: a selector that matches no pod (IST0101), several Sidecars selecting
//! one pod (IST0110), several Sidecars without selector in a namespace (IST0111), and
//! Sidecars over ambient workloads, which have no sidecar to configure (IST0167).

use std::collections::BTreeMap;

use trellis_api::Resource;

use super::context::full_name;
use super::messages as m;
use super::workload::{namespace_in_ambient, pod_in_ambient};
use super::{Context, Message, selector};

pub fn selectors(ctx: &Context<'_>, out: &mut Vec<Message>) {
    // (pod namespace, pod name) -> (pod, sidecars selecting it)
    let mut by_pod: BTreeMap<(String, String), (&Resource, Vec<&Resource>)> = BTreeMap::new();
    let mut unscoped: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
    for (r, sc) in ctx.sidecars() {
        let labels = sc.workload_selector.as_ref().map(|w| &w.labels);
        let Some(labels) = labels.filter(|l| !l.is_empty()) else {
            unscoped
                .entry(r.meta.namespace.as_str())
                .or_default()
                .push(r);
            continue;
        };
        let mut found = false;
        for (pod, _) in ctx.pods_in(Some(&r.meta.namespace)) {
            if selector::matches(labels, &pod.meta.labels) {
                found = true;
                by_pod
                    .entry((pod.meta.namespace.clone(), pod.meta.name.clone()))
                    .or_insert((pod, Vec::new()))
                    .1
                    .push(r);
            }
        }
        if !found {
            out.push(m::referenced_resource_not_found(
                r,
                "selector",
                &selector::to_string(labels),
            ));
        }
    }
    let mut reported: Vec<String> = Vec::new();
    for ((ns, name), (pod, sidecars)) in &by_pod {
        let ambient = pod_in_ambient(pod);
        if sidecars.len() == 1 && !ambient {
            continue;
        }
        let names: Vec<String> = sidecars.iter().map(|r| full_name(r)).collect();
        for sc in sidecars {
            if ambient {
                if !reported.contains(&full_name(sc)) {
                    reported.push(full_name(sc));
                    out.push(m::ineffective_policy(
                        sc,
                        "selected workload is in ambient mode, the policy has no impact",
                    ));
                }
                continue;
            }
            out.push(m::conflicting_sidecar_selectors(sc, &names, ns, name));
        }
    }
    for (ns, sidecars) in unscoped {
        if namespace_in_ambient(ctx.find(trellis_api::Kind::Namespace, "", ns)) {
            for sc in &sidecars {
                if !reported.contains(&full_name(sc)) {
                    reported.push(full_name(sc));
                    out.push(m::ineffective_policy(
                        sc,
                        "namespace is in ambient mode, the policy has no impact",
                    ));
                }
            }
            continue;
        }
        if sidecars.len() > 1 {
            let names: Vec<String> = sidecars.iter().map(|r| full_name(r)).collect();
            for sc in &sidecars {
                out.push(m::multiple_sidecars_without_selector(sc, &names, ns));
            }
        }
    }
}
