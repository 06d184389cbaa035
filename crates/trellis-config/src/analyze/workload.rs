//! Whether a workload takes part in the mesh: a sidecar (declared or to be injected by
//! label, annotation or namespace label) or ambient redirection.

use std::collections::BTreeMap;

use trellis_api::kube::Container;
use trellis_api::{Kind, Resource};

use super::Context;

/// Pods redirected by ambient mode carry this annotation.
pub fn pod_in_ambient(pod: &Resource) -> bool {
    pod.meta
        .annotations
        .get("ambient.istio.io/redirection")
        .is_some_and(|v| v == "enabled")
}

/// Namespaces enrolled in ambient mode carry this label; a namespace also labelled for
/// sidecar injection keeps its sidecars.
pub fn namespace_in_ambient(ns: Option<&Resource>) -> bool {
    let Some(ns) = ns else {
        return false;
    };
    let labels = &ns.meta.labels;
    labels
        .get("istio.io/dataplane-mode")
        .is_some_and(|v| v == "ambient")
        && labels.get("istio-injection").is_none_or(|v| v != "enabled")
        && labels.get("istio.io/rev").is_none_or(|v| v.is_empty())
}

/// Istio's precedence: a proxy container with an image; else the workload's
/// `sidecar.istio.io/inject` label, then annotation; else its namespace's
/// `istio-injection=enabled`.
fn in_mesh(
    ctx: &Context<'_>,
    annotations: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    namespace: &str,
    containers: &[&Container],
) -> bool {
    if containers
        .iter()
        .any(|c| c.name == "istio-proxy" && !c.image.is_empty())
    {
        return true;
    }
    for m in [labels, annotations] {
        if let Some(v) = m.get("sidecar.istio.io/inject") {
            return v == "true";
        }
    }
    ctx.find(Kind::Namespace, "", namespace).is_some_and(|n| {
        n.meta
            .labels
            .get("istio-injection")
            .is_some_and(|v| v == "enabled")
    })
}

pub fn pod_in_mesh(ctx: &Context<'_>, pod: &Resource) -> bool {
    let trellis_api::Spec::Pod(spec) = &pod.spec else {
        return false;
    };
    let containers: Vec<&Container> = spec
        .containers
        .iter()
        .chain(&spec.init_containers)
        .collect();
    in_mesh(
        ctx,
        &pod.meta.annotations,
        &pod.meta.labels,
        &pod.meta.namespace,
        &containers,
    )
}

pub fn deployment_in_mesh(ctx: &Context<'_>, deployment: &Resource) -> bool {
    let trellis_api::Spec::Deployment(spec) = &deployment.spec else {
        return false;
    };
    let t = &spec.template;
    let containers: Vec<&Container> = t.spec.containers.iter().collect();
    in_mesh(
        ctx,
        &t.metadata.annotations,
        &t.metadata.labels,
        &deployment.meta.namespace,
        &containers,
    )
}
