//! DestinationRule analyzers: TLS without server verification (IST0128/IST0129), hosts that
//! match no service (IST0174) and subsets that select no pod (IST0173).

use trellis_api::istio::networking::{ClientTlsSettings, ClientTlsSettingsTlsMode as Mode};

use std::collections::BTreeMap;

use trellis_api::Spec;

use super::hosts::Registry;
use super::messages as m;
use super::{Context, Message, selector};

/// SIMPLE or MUTUAL TLS with no CA to check the server against; a credentialName counts
/// as a CA only on a DestinationRule scoped to workloads (gateways read it from a secret).
fn unverified(tls: Option<&ClientTlsSettings>, scoped: bool) -> Option<&'static str> {
    let tls = tls?;
    if !matches!(tls.mode, Mode::Simple | Mode::Mutual) {
        return None;
    }
    let has_ca = !tls.ca_certificates.is_empty() || (!tls.credential_name.is_empty() && scoped);
    (!has_ca).then(|| tls.mode.as_str())
}

pub fn ca_certificates(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, dr) in ctx.destination_rules() {
        let scoped = dr.workload_selector.is_some();
        let Some(policy) = &dr.traffic_policy else {
            continue;
        };
        if let Some(mode) = unverified(policy.tls.as_ref(), scoped) {
            out.push(m::no_server_cert_verification_destination(
                r, mode, &dr.host,
            ));
        }
        for p in &policy.port_level_settings {
            if let Some(mode) = unverified(p.tls.as_ref(), scoped) {
                let port = p.port.as_ref().map_or(0, |p| p.number);
                out.push(m::no_server_cert_verification_port(r, mode, &dr.host, port));
            }
        }
    }
}

/// Labels Istio adds to a pod from its node (region, zone, subzone, hostname).
const NODE_LABELS: &[&str] = &[
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
    "kubernetes.io/hostname",
];

/// IST0174 for a host that resolves to no service; IST0173 for a subset whose labels (with
/// the ServiceEntry's workload selector) match no pod. Pods are matched on their own labels
/// only: the topology labels Istio adds from the pod's node are not known here.
pub fn subsets_select_pods(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let registry = Registry::new(ctx);
    for (r, dr) in ctx.destination_rules() {
        let target = registry.lookup(&r.meta.namespace, &dr.export_to, &dr.host);
        if target.is_none() {
            out.push(m::unknown_destination_rule_host(r, &dr.host));
        }
        let base: BTreeMap<String, String> = match target.map(|t| &t.resource.spec) {
            Some(Spec::ServiceEntry(se)) => se
                .workload_selector
                .as_ref()
                .map(|w| w.labels.clone())
                .unwrap_or_default(),
            _ => BTreeMap::new(),
        };
        for subset in &dr.subsets {
            // A pod's locality labels come from its node, which is not among the objects
            // read: a subset selecting a locality cannot be judged, so it is not reported.
            let by_locality = subset
                .labels
                .iter()
                .any(|(k, v)| NODE_LABELS.contains(&k.as_str()) && !v.is_empty());
            if by_locality {
                continue;
            }
            let mut sel = base.clone();
            sel.extend(subset.labels.clone());
            if !ctx
                .pods()
                .any(|(p, _)| selector::matches(&sel, &p.meta.labels))
            {
                out.push(m::subset_selects_no_pods(r, &subset.name));
            }
        }
    }
}
