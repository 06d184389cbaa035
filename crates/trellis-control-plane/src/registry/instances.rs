//! The running instances that can back services — Pods, WorkloadEntries and registered
//! workloads — indexed by namespace and label, so that finding a service's endpoints
//! looks at the instances carrying one of its selector's labels, not at every instance of
//! the mesh (a mesh of 1000 services and 10000 instances would otherwise make ten million
//! selector checks per build).

use std::collections::{BTreeMap, HashMap};

use trellis_api::istio::networking;
use trellis_api::{Resource, Spec, kube};
use trellis_config::store::Snapshot;

use super::Workload;
use super::build::{TLS_MODE_LABEL, selects};

/// A running instance that can back a service: a Pod, a WorkloadEntry or a registered
/// workload.
pub(super) struct Instance {
    pub(super) namespace: String,
    pub(super) address: String,
    pub(super) labels: BTreeMap<String, String>,
    /// Named ports (WorkloadEntry `ports`, container port names).
    pub(super) ports: BTreeMap<String, u32>,
    pub(super) service_account: String,
    pub(super) has_sidecar: bool,
    pub(super) locality: String,
    pub(super) weight: u32,
    pub(super) workload_name: String,
}

/// The instances of the mesh, by namespace.
pub(super) struct Instances {
    namespaces: HashMap<String, Namespace>,
}

/// One namespace's instances in collection order, and for each label key and value the
/// positions of the instances that carry it, ascending.
#[derive(Default)]
struct Namespace {
    all: Vec<Instance>,
    by_label: HashMap<String, HashMap<String, Vec<usize>>>,
}

impl Instances {
    pub(super) fn collect(snapshot: &Snapshot, workloads: &[Workload]) -> Self {
        let mut all = Vec::new();
        for resource in snapshot.objects.values() {
            match &resource.spec {
                Spec::Pod(pod) => all.extend(pod_instance(resource, pod)),
                Spec::WorkloadEntry(entry) => all.push(workload_entry_instance(
                    &resource.meta.namespace,
                    entry,
                    workload_entry_name(&resource.meta),
                )),
                _ => {}
            }
        }
        all.extend(workloads.iter().map(|w| Instance {
            namespace: w.namespace.clone(),
            address: w.ip.to_string(),
            labels: w.labels.clone(),
            ports: w.ports.clone(),
            service_account: w.service_account.clone(),
            has_sidecar: w.istio_mtls,
            locality: String::new(),
            weight: 1,
            workload_name: w.name.clone(),
        }));
        let mut namespaces: HashMap<String, Namespace> = HashMap::new();
        for instance in all {
            let namespace = namespaces.entry(instance.namespace.clone()).or_default();
            let position = namespace.all.len();
            for (key, value) in &instance.labels {
                namespace
                    .by_label
                    .entry(key.clone())
                    .or_default()
                    .entry(value.clone())
                    .or_default()
                    .push(position);
            }
            namespace.all.push(instance);
        }
        Instances { namespaces }
    }

    /// The instances of `namespace` that `selector` selects, in collection order.
    pub(super) fn selected(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> Vec<&Instance> {
        let Some(namespace) = self.namespaces.get(namespace) else {
            return Vec::new();
        };
        let Some((key, value)) = selector.iter().next() else {
            return namespace.all.iter().collect();
        };
        namespace
            .by_label
            .get(key)
            .and_then(|values| values.get(value))
            .into_iter()
            .flatten()
            .filter_map(|&position| namespace.all.get(position))
            .filter(|i| selects(selector, &i.labels))
            .collect()
    }
}

fn pod_instance(resource: &Resource, pod: &kube::PodSpec) -> Option<Instance> {
    let ip = resource.pod_status.as_ref()?.pod_ip.clone()?;
    let labels = resource.meta.labels.clone();
    let has_sidecar = labels.get(TLS_MODE_LABEL).is_some_and(|m| m == "istio")
        || resource
            .meta
            .annotations
            .contains_key("sidecar.istio.io/status");
    let ports = pod
        .containers
        .iter()
        .flat_map(|c| &c.ports)
        .filter(|p| !p.name.is_empty())
        .map(|p| (p.name.clone(), p.container_port))
        .collect();
    Some(Instance {
        namespace: resource.meta.namespace.clone(),
        address: ip,
        labels,
        ports,
        service_account: pod
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        has_sidecar,
        locality: String::new(),
        weight: 1,
        workload_name: resource.meta.name.clone(),
    })
}

/// Istio's workload name of a WorkloadEntry: its auto-registration group, else its
/// `service.istio.io/workload-name` label, else its own name.
fn workload_entry_name(meta: &trellis_api::meta::ObjectMeta) -> String {
    meta.annotations
        .get("istio.io/autoRegistrationGroup")
        .or_else(|| meta.labels.get("service.istio.io/workload-name"))
        .unwrap_or(&meta.name)
        .clone()
}

pub(super) fn workload_entry_instance(
    namespace: &str,
    entry: &networking::WorkloadEntry,
    workload_name: String,
) -> Instance {
    // Istio: the tlsMode label when there is one, else mTLS when a service account is named.
    let has_sidecar = match entry.labels.get(TLS_MODE_LABEL) {
        Some(mode) => mode == "istio",
        None => !entry.service_account.is_empty(),
    };
    Instance {
        workload_name,
        namespace: namespace.to_string(),
        address: entry.address.clone(),
        labels: entry.labels.clone(),
        ports: entry.ports.clone(),
        // Istio gives a WorkloadEntry without `serviceAccount` no identity at all.
        service_account: entry.service_account.clone(),
        has_sidecar,
        locality: entry.locality.clone(),
        weight: entry.weight.max(1),
    }
}
