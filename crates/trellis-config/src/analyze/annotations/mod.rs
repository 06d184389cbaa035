//! Istio annotations on Kubernetes objects (Namespace, Service, Pod, Deployment): unknown
//! ones (IST0108), ones on a kind they do not apply to (IST0107), deprecated ones
//! (IST0135), values the injector would refuse (IST0125), and, in a separate analyzer,
//! annotations of alpha-phase features (IST0136).
//!
//! An annotation is Istio's when its prefix (before `/`) ends in `istio.io`, or when it is
//! `kubernetes.io/ingress.class`, which Istio documents. The facts about each annotation are
//! data in [`table`]; the value checks are in [`values`].

mod table;
mod values;

use trellis_api::{Kind, Resource};

use super::messages as m;
use super::{Context, Message};
use table::{Status, Target};

/// Annotations the control plane or the injector writes itself: never reported.
const ALWAYS_IGNORED: &[&str] = &[
    "sidecar.istio.io/status",
    "gateway.istio.io/controller-version",
    "istio.io/rev",
];

/// Annotations istio-cni sets on every pod: not reported as alpha on a pod without the
/// `istio-init` container (that is, where CNI did the setup).
const SET_BY_CNI: &[&str] = &[
    "sidecar.istio.io/interceptionMode",
    "traffic.sidecar.istio.io/includeInboundPorts",
    "traffic.sidecar.istio.io/excludeInboundPorts",
    "traffic.sidecar.istio.io/includeOutboundIPRanges",
];

fn is_istio_annotation(name: &str) -> bool {
    name == "kubernetes.io/ingress.class"
        || name
            .split('/')
            .next()
            .is_some_and(|prefix| prefix.ends_with("istio.io"))
}

/// The Kubernetes objects whose annotations are analyzed, with the kind name Istio's table
/// uses for them (Deployment is in no row of the table, so only `Any` annotations fit it).
fn annotated<'a, 'c>(
    ctx: &'c Context<'a>,
) -> impl Iterator<Item = (&'a Resource, &'static str)> + 'c {
    ctx.resources.iter().copied().filter_map(|r| {
        let kind = match r.kind() {
            Kind::Namespace => "Namespace",
            Kind::Service => "Service",
            Kind::Pod => "Pod",
            Kind::Deployment => "Deployment",
            _ => return None,
        };
        (!r.meta.annotations.is_empty()).then_some((r, kind))
    })
}

/// Istio's `annotations.K8sAnalyzer`.
pub fn kubernetes(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, kind) in annotated(ctx) {
        for (name, value) in &r.meta.annotations {
            if !is_istio_annotation(name) || ALWAYS_IGNORED.contains(&name.as_str()) {
                continue;
            }
            let Some(def) = table::lookup(name) else {
                out.push(m::unknown_annotation(r, name));
                continue;
            };
            // Keeping the deprecated annotation next to its replacement label is
            // deliberate, for compatibility; not worth a message.
            let replaced_by_label =
                name == "sidecar.istio.io/inject" && r.meta.labels.contains_key(name);
            if def.deprecated && !replaced_by_label {
                let extra = if name == "sidecar.istio.io/inject" {
                    " in favor of the \"sidecar.istio.io/inject\" label"
                } else {
                    ""
                };
                out.push(m::deprecated_annotation(r, name, extra));
            }
            if def.targets.contains(&Target::Any) {
                continue;
            }
            if !def.targets.iter().any(|t| t.as_str() == kind) {
                let kinds: Vec<&str> = def.targets.iter().map(|t| t.as_str()).collect();
                out.push(m::misplaced_annotation(r, name, &kinds.join(", ")));
                continue;
            }
            if let Err(problem) = values::check(name, value) {
                out.push(m::invalid_annotation(r, name, &problem));
            }
        }
    }
}

/// Istio's `maturity.AlphaAnalyzer` (not among the analyzers istioctl runs by default, for
/// the noise of annotations set by default; Trellis runs it only when asked by name).
pub fn alpha(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, _) in annotated(ctx) {
        let cni_pod = match &r.spec {
            trellis_api::Spec::Pod(p) => !p.init_containers.iter().any(|c| c.name == "istio-init"),
            _ => false,
        };
        for name in r.meta.annotations.keys() {
            if !is_istio_annotation(name) || ALWAYS_IGNORED.contains(&name.as_str()) {
                continue;
            }
            let Some(def) = table::lookup(name) else {
                continue;
            };
            if def.status != Status::Alpha || (cni_pod && SET_BY_CNI.contains(&name.as_str())) {
                continue;
            }
            out.push(m::alpha_annotation(r, name));
        }
    }
}
