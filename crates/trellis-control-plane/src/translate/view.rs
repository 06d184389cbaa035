//! A proxy's view: exactly what translation reads of a [`ProxyNode`], so that proxies with
//! equal views can share one translation (Istio translates once per distinct view too).
//!
//! Translation reads a proxy only through: its kind, namespace, SDS flag and declared
//! ports; its labels, through selectors and `sourceLabels` (exact matches: a selector
//! holds for the proxy's labels exactly when it holds for the proxy's labels that equal
//! some selector's key and value, so only those count); its addresses, through the registry endpoints at them (the services it serves) and,
//! when a Sidecar has ingress listeners, its first address (`0.0.0.0` default endpoints
//! bind to it). Its id, workload name and service account only appear in logs. A new use
//! of a proxy field in translation must be added here: [`ViewKey`] is what two proxies
//! must agree on to share resources, and a key too coarse is a correctness bug (the tests
//! translate both proxies of every equal key and compare).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use serde_json::Value;
use trellis_api::{Kind, Spec};

use super::authz::select::GATEWAY_NAME_LABEL;
use crate::mesh::MeshSnapshot;
use crate::proxy::{ProxyKind, ProxyNode};

/// Kinds whose labels describe workloads (endpoints), never the proxy being translated.
const WORKLOAD_KINDS: [Kind; 3] = [Kind::WorkloadEntry, Kind::WorkloadGroup, Kind::ServiceEntry];

/// Fields whose map keys are label keys matched against a proxy's labels.
const SELECTOR_FIELDS: [&str; 3] = ["matchLabels", "sourceLabels", "selector"];

/// What a mesh snapshot makes of proxies, computed once per snapshot.
#[derive(Debug, Clone, Default)]
pub struct ViewInputs {
    /// Labels (key and value) some configuration matches proxies against.
    selector_labels: BTreeSet<(String, String)>,
    /// Service ports by endpoint address: `(host, service port, endpoint port)`.
    instances: HashMap<IpAddr, Vec<(String, u32, u32)>>,
    /// Some Sidecar has ingress listeners (they may bind the proxy's own address).
    sidecar_ingress: bool,
}

impl ViewInputs {
    pub fn of(mesh: &MeshSnapshot) -> ViewInputs {
        let mut selector_labels = BTreeSet::new();
        let mut sidecar_ingress = false;
        for object in mesh.config.objects.values() {
            let kind = object.spec.kind();
            if !kind.group().ends_with("istio.io") || WORKLOAD_KINDS.contains(&kind) {
                continue;
            }
            if let Spec::Sidecar(s) = &object.spec {
                sidecar_ingress |= !s.ingress.is_empty();
            }
            if let Ok(value) = serde_json::to_value(&object.spec) {
                selector_keys(&value, false, &mut selector_labels);
            }
        }
        let mut instances: HashMap<IpAddr, Vec<(String, u32, u32)>> = HashMap::new();
        for ((host, port), endpoints) in &mesh.registry.endpoints {
            for e in endpoints {
                if let Ok(ip) = e.address.parse::<IpAddr>() {
                    instances
                        .entry(ip)
                        .or_default()
                        .push((host.clone(), *port, e.port));
                }
            }
        }
        ViewInputs {
            selector_labels,
            instances,
            sidecar_ingress,
        }
    }
}

/// Collects the labels of every map under a selector field, and of `labels` inside a
/// `workloadSelector` (other `labels` fields, such as subsets', describe endpoints).
fn selector_keys(value: &Value, selector: bool, into: &mut BTreeSet<(String, String)>) {
    match value {
        Value::Object(fields) => {
            if selector {
                for (k, v) in fields {
                    if let Value::String(v) = v {
                        into.insert((k.clone(), v.clone()));
                    }
                }
            }
            for (name, v) in fields {
                selector_keys(v, SELECTOR_FIELDS.contains(&name.as_str()), into);
                if name == "workloadSelector"
                    && let Some(labels) = v.get("labels")
                {
                    selector_keys(labels, true, into);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| selector_keys(v, false, into)),
        _ => {}
    }
}

/// Everything translation reads of a proxy, for a given mesh: proxies with equal keys get
/// equal resources.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ViewKey {
    kind: ProxyKind,
    namespace: String,
    sds: bool,
    ports: Vec<u32>,
    /// All labels for routers (few, and Gateways select them); for sidecars, those some
    /// selector names with their value, and the Gateway API gateway name (compared by
    /// value).
    labels: BTreeMap<String, String>,
    /// The services this proxy is an endpoint of, sorted.
    instances: Vec<(String, u32, u32)>,
    /// The first address, when a Sidecar ingress may bind it.
    bind: Option<IpAddr>,
}

impl ViewKey {
    pub fn of(inputs: &ViewInputs, proxy: &ProxyNode) -> ViewKey {
        let labels = match proxy.kind {
            ProxyKind::Router => proxy.labels.clone(),
            ProxyKind::Sidecar => proxy
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .filter(|pair| {
                    pair.0 == GATEWAY_NAME_LABEL || inputs.selector_labels.contains(pair)
                })
                .collect(),
        };
        let mut instances: Vec<(String, u32, u32)> = proxy
            .ips
            .iter()
            .filter_map(|ip| inputs.instances.get(ip))
            .flatten()
            .cloned()
            .collect();
        instances.sort();
        ViewKey {
            kind: proxy.kind,
            namespace: proxy.namespace.clone(),
            sds: proxy.sds,
            ports: proxy.ports.clone(),
            labels,
            instances,
            bind: proxy
                .ips
                .first()
                .copied()
                .filter(|_| inputs.sidecar_ingress),
        }
    }
}

#[cfg(test)]
mod tests;
