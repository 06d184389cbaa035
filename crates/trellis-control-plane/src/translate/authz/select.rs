//! Which AuthorizationPolicies and RequestAuthentications apply to a proxy, as Istio
//! attaches them: those of the root namespace and of the proxy's namespace; a policy
//! without selector covers every workload it can see (the root namespace: the whole
//! mesh), one with a selector the workloads whose labels include it. `targetRefs` attach
//! only to Kubernetes Gateway deployments (label `gateway.networking.k8s.io/gateway-name`)
//! of the policy's namespace; sidecars ignore policies that carry them.

use std::collections::BTreeMap;

use trellis_api::istio::type_v1beta1::{PolicyTargetReference, WorkloadSelector};
use trellis_api::{Kind, Resource, Spec};

use crate::mesh::MeshSnapshot;
use crate::proxy::ProxyNode;

/// The label Kubernetes Gateway deployments carry.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// The selection-relevant part of a policy (or Telemetry).
struct Attachment<'a> {
    selector: Option<&'a WorkloadSelector>,
    target_refs: Vec<&'a PolicyTargetReference>,
}

fn attachment(resource: &Resource) -> Option<Attachment<'_>> {
    let (selector, target_ref, target_refs) = match &resource.spec {
        Spec::AuthorizationPolicy(p) => (&p.selector, &p.target_ref, &p.target_refs),
        Spec::RequestAuthentication(p) => (&p.selector, &p.target_ref, &p.target_refs),
        Spec::Telemetry(t) => (&t.selector, &t.target_ref, &t.target_refs),
        _ => return None,
    };
    let mut refs: Vec<&PolicyTargetReference> = target_refs.iter().collect();
    if refs.is_empty() {
        refs.extend(target_ref.as_ref());
    }
    Some(Attachment {
        selector: selector.as_ref(),
        target_refs: refs,
    })
}

fn selected(selector: Option<&WorkloadSelector>, labels: &BTreeMap<String, String>) -> bool {
    selector.is_none_or(|s| s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// True when `resource` (an AuthorizationPolicy, RequestAuthentication or Telemetry)
/// applies to the workload of `proxy`.
pub fn attaches(resource: &Resource, proxy: &ProxyNode) -> bool {
    let Some(a) = attachment(resource) else {
        return false;
    };
    let Some(gateway) = proxy.labels.get(GATEWAY_NAME_LABEL) else {
        return a.target_refs.is_empty() && selected(a.selector, &proxy.labels);
    };
    if a.target_refs.is_empty() {
        return selected(a.selector, &proxy.labels);
    }
    resource.meta.namespace == proxy.namespace
        && a.target_refs.iter().any(|r| {
            (r.namespace.is_empty() || r.namespace == proxy.namespace)
                && r.kind == "Gateway"
                && r.group == "gateway.networking.k8s.io"
                && &r.name == gateway
        })
}

/// The objects of `kind` that apply to `proxy`: root namespace first, then the proxy's,
/// each in the store's order (by name).
pub fn for_proxy<'a>(mesh: &'a MeshSnapshot, proxy: &ProxyNode, kind: Kind) -> Vec<&'a Resource> {
    let mut namespaces = vec![mesh.root_namespace.as_str()];
    if proxy.namespace != mesh.root_namespace {
        namespaces.push(proxy.namespace.as_str());
    }
    let mut out = Vec::new();
    for ns in namespaces {
        out.extend(
            mesh.config
                .of_kind(kind)
                .filter(|r| r.meta.namespace == ns && attaches(r, proxy))
                .map(|r| r.as_ref()),
        );
    }
    out
}
