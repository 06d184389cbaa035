//! EnvoyFilter: patches to the generated Envoy configuration.
//!
//! Only the structure is checked (apply-to, match and patch line up, regexes compile,
//! ports in range); the patch values are Envoy's own and are checked by Envoy. Every
//! EnvoyFilter gets a warning: it reaches into implementation details.

use trellis_api::istio::networking::{
    EnvoyFilter, EnvoyFilterApplyTo as Apply, EnvoyFilterPatchContext as Ctx,
    EnvoyFilterPatchOperation as Op,
};

use super::Report;
use super::common;
use super::report::{at, idx};

const HCM: &str = "envoy.filters.network.http_connection_manager";

pub(crate) fn validate_envoy_filter(r: &mut Report, ef: &EnvoyFilter) {
    r.warn(
        "spec",
        "EnvoyFilter exposes internal implementation details that may change at any time. Prefer other APIs if possible, and exercise extreme caution, especially around upgrades.",
    );
    if let Some(sel) = &ef.workload_selector
        && !common::check_selector_labels(r, &sel.labels, "Envoy filter")
    {
        return;
    }
    if ef.workload_selector.is_some() && !ef.target_refs.is_empty() {
        r.error(
            "spec",
            "only one of targetRefs or workloadSelector can be set",
        );
    }
    common::check_target_refs(r, "spec.targetRefs", &ef.target_refs);
    for (i, cp) in ef.config_patches.iter().enumerate() {
        let p = idx("spec", "configPatches", i);
        let m = cp.r#match.as_ref();
        if let Some(m) = m {
            common::check_oneofs(r, &at(&p, "match"), m);
            let is_waypoint = m.context == Ctx::Waypoint;
            let has_other =
                m.listener.is_some() || m.route_configuration.is_some() || m.cluster.is_some();
            if (m.waypoint.is_some() && !is_waypoint) || (is_waypoint && has_other) {
                r.error(
                    &at(&p, "match"),
                    "only support waypointMatch when context is WAYPOINT",
                );
            }
            for (port, what) in [
                (
                    m.waypoint.as_ref().map(|w| w.port_number),
                    "waypoint.portNumber",
                ),
                (
                    m.listener.as_ref().map(|l| l.port_number),
                    "listener.portNumber",
                ),
                (
                    m.cluster.as_ref().map(|c| c.port_number),
                    "cluster.portNumber",
                ),
                (
                    m.route_configuration.as_ref().map(|rc| rc.port_number),
                    "routeConfiguration.portNumber",
                ),
            ] {
                if let Some(n) = port
                    && n > 65535
                {
                    r.error(&at(&at(&p, "match"), what), "port must be between 1-65535");
                }
            }
            if is_waypoint {
                continue;
            }
        }
        if cp.apply_to == Apply::Invalid {
            r.error(&p, "Envoy filter: missing applyTo");
            continue;
        }
        let Some(patch) = &cp.patch else {
            r.error(&p, "Envoy filter: missing patch");
            continue;
        };
        if patch.operation == Op::Invalid {
            r.error(&p, "Envoy filter: missing patch operation");
            continue;
        }
        if patch.operation != Op::Remove && patch.value.is_none() {
            r.error(
                &p,
                "Envoy filter: missing patch value for non-remove operation",
            );
            continue;
        }
        if let Some(v) = m
            .and_then(|m| m.proxy.as_ref())
            .map(|p| p.proxy_version.as_str())
            && !v.is_empty()
            && regex::Regex::new(v).is_err()
        {
            r.error(&p, "Envoy filter: invalid regex for proxy version");
            continue;
        }
        let Some(m) = m else {
            continue;
        };
        let has_object =
            m.listener.is_some() || m.route_configuration.is_some() || m.cluster.is_some();
        match cp.apply_to {
            Apply::Listener | Apply::FilterChain | Apply::NetworkFilter | Apply::HttpFilter
                if has_object =>
            {
                let Some(l) = &m.listener else {
                    r.error(
                        &p,
                        "Envoy filter: applyTo for listener class objects cannot have non listener match",
                    );
                    continue;
                };
                if let Some(f) = l.filter_chain.as_ref().and_then(|fc| fc.filter.as_ref()) {
                    if matches!(cp.apply_to, Apply::Listener | Apply::FilterChain) {
                        r.warn(
                            &p,
                            format!(
                                "Envoy filter: filter match has no effect when used with {}",
                                cp.apply_to.as_str()
                            ),
                        );
                    }
                    if f.name.is_empty() {
                        r.error(&p, "Envoy filter: filter match has no name to match on");
                        continue;
                    }
                    if let Some(sub) = &f.sub_filter {
                        if cp.apply_to != Apply::HttpFilter {
                            r.error(
                                &p,
                                "Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only",
                            );
                            continue;
                        }
                        if f.name != HCM && f.name != "envoy.http_connection_manager" {
                            r.error(
                                &p,
                                format!(
                                    "Envoy filter: subfilter match requires filter match with {HCM}"
                                ),
                            );
                            continue;
                        }
                        if sub.name.is_empty() {
                            r.error(&p, "Envoy filter: subfilter match has no name to match on");
                            continue;
                        }
                    }
                }
            }
            Apply::RouteConfiguration | Apply::VirtualHost | Apply::HttpRoute
                if has_object && m.route_configuration.is_none() =>
            {
                r.error(
                    &p,
                    "Envoy filter: applyTo for http route class objects cannot have non route configuration match",
                );
            }
            Apply::Cluster if has_object && m.cluster.is_none() => {
                r.error(
                    &p,
                    "Envoy filter: applyTo for cluster class objects cannot have non cluster match",
                );
            }
            _ => {}
        }
    }
}
