//! Deployments exposed by several Services with one port under different protocols
//! (IST0116) or one targetPort under different ports (IST0137); deprecated fields (IST0002);
//! applications running as the proxy's user ID (IST0144).

use std::collections::BTreeMap;

use trellis_api::Resource;
use trellis_api::kube::{IntOrString, PodSpec, SecurityContext};

use super::context::full_name;
use super::messages as m;
use super::workload::deployment_in_mesh;
use super::{Context, Message, selector};

pub fn service_association(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, d) in ctx.deployments() {
        let waypoint = r
            .meta
            .labels
            .get("gateway.istio.io/managed")
            .is_some_and(|v| v == "istio.io-mesh-controller");
        if waypoint || !deployment_in_mesh(ctx, r) {
            continue;
        }
        let pod_labels = &d.template.metadata.labels;
        let services: Vec<_> = ctx
            .services()
            .filter(|(s, spec)| {
                !spec.selector.is_empty()
                    && s.meta.namespace == r.meta.namespace
                    && selector::matches(&spec.selector, pod_labels)
            })
            .collect();
        // port -> protocol -> services
        let mut by_port: BTreeMap<u32, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        // targetPort -> port -> service
        let mut by_target: BTreeMap<String, BTreeMap<u32, String>> = BTreeMap::new();
        for (s, spec) in &services {
            for p in &spec.ports {
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".to_string());
                by_port
                    .entry(p.port)
                    .or_default()
                    .entry(proto)
                    .or_default()
                    .push(full_name(s));
                let target = match &p.target_port {
                    Some(IntOrString::Int(n)) if *n != 0 => n.to_string(),
                    Some(IntOrString::String(t)) if !t.is_empty() && t != "0" => t.clone(),
                    _ => p.port.to_string(),
                };
                by_target
                    .entry(target)
                    .or_default()
                    .insert(p.port, full_name(s));
            }
        }
        for (port, protocols) in &by_port {
            if protocols.len() > 1 {
                let mut names: Vec<String> = protocols.values().flatten().cloned().collect();
                names.sort();
                out.push(m::deployment_multiple_services(
                    r,
                    &r.meta.name,
                    *port,
                    &names,
                ));
            }
        }
        for (target, ports) in &by_target {
            if ports.len() > 1 {
                let mut names: Vec<String> = ports.values().cloned().collect();
                names.sort();
                let numbers: Vec<u32> = ports.keys().copied().collect();
                out.push(m::deployment_conflicting_ports(
                    r,
                    &r.meta.name,
                    &names,
                    target,
                    &numbers,
                ));
            }
        }
    }
}

pub fn deprecated_fields(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, vs) in ctx.virtual_services() {
        let old_percent = vs
            .http
            .iter()
            .filter_map(|h| h.fault.as_ref()?.delay.as_ref())
            .any(|d| d.percent > 0);
        if old_percent {
            out.push(m::deprecated(
                r,
                "HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage",
            ));
        }
    }
    for (r, sc) in ctx.sidecars() {
        if sc
            .outbound_traffic_policy
            .as_ref()
            .is_some_and(|o| o.egress_proxy.is_some())
        {
            out.push(m::deprecated(
                r,
                "OutboundTrafficPolicy.EgressProxy ignored",
            ));
        }
    }
}

/// UID 1337 is the sidecar's: traffic capture lets its packets through, so an application
/// running as 1337 bypasses the mesh (IST0144). Istio's own control-plane workloads (label
/// `istio`, or `release: istio`) and the proxy's containers are exempt.
pub fn application_uid(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let runs_as_proxy_uid = |spec: &PodSpec| {
        let uid = |sc: &Option<SecurityContext>| sc.as_ref().and_then(|s| s.run_as_user);
        uid(&spec.security_context) == Some(PROXY_UID)
            || spec
                .containers
                .iter()
                .filter(|c| c.name != "istio-proxy" && c.name != "istio-operator")
                .any(|c| uid(&c.security_context) == Some(PROXY_UID))
    };
    let control_plane = |r: &Resource| {
        r.meta.labels.contains_key("istio")
            || r.meta.labels.get("release").is_some_and(|v| v == "istio")
    };
    for (r, pod) in ctx.pods() {
        if !control_plane(r) && runs_as_proxy_uid(pod) {
            out.push(m::invalid_application_uid(r));
        }
    }
    for (r, d) in ctx.deployments() {
        if !control_plane(r) && runs_as_proxy_uid(&d.template.spec) {
            out.push(m::invalid_application_uid(r));
        }
    }
}

/// The user ID the sidecar proxy runs as.
const PROXY_UID: i64 = 1337;
