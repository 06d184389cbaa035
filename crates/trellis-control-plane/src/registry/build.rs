//! Building the registry from configuration objects and self-registered workloads.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use trellis_api::istio::networking::{self, ServiceEntryLocation, ServiceEntryResolution};
use trellis_api::kube::{self, IntOrString};
use trellis_api::{Resource, Spec};
use trellis_config::store::Snapshot;

use super::{Endpoint, Registry, Resolution, Service, ServicePort, Workload, vip};
use crate::protocol::Protocol;

/// The label that tells a client whether an endpoint has a sidecar.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// Builds the registry from a config snapshot and the workloads that registered
/// themselves. `domain` is the cluster's DNS suffix (`cluster.local`).
pub fn build(snapshot: &Snapshot, workloads: &[Workload], domain: &str) -> Registry {
    let mut services: BTreeMap<String, Service> = BTreeMap::new();
    for resource in snapshot.objects.values() {
        for service in services_of(resource, domain) {
            services.entry(service.hostname.clone()).or_insert(service);
        }
    }
    assign_vips(&mut services);
    let instances = Instances::collect(snapshot, workloads);
    let mut registry = Registry::default();
    for service in services.into_values() {
        for port in &service.ports {
            let mut endpoints = instances.endpoints_of(&service, port, snapshot);
            endpoints.sort_by(|a, b| (&a.address, a.port).cmp(&(&b.address, b.port)));
            endpoints.dedup_by(|a, b| a.address == b.address && a.port == b.port);
            registry
                .endpoints
                .insert((service.hostname.clone(), port.number), endpoints);
        }
        registry
            .services
            .insert(service.hostname.clone(), Arc::new(service));
    }
    registry
}

fn services_of(resource: &Resource, domain: &str) -> Vec<Service> {
    match &resource.spec {
        Spec::Service(spec) => kube_service(resource, spec, domain).into_iter().collect(),
        Spec::ServiceEntry(entry) => service_entry(resource, entry),
        _ => Vec::new(),
    }
}

fn kube_service(resource: &Resource, spec: &kube::ServiceSpec, domain: &str) -> Option<Service> {
    if spec.service_type.as_deref() == Some("ExternalName") {
        return None;
    }
    let ports = spec
        .ports
        .iter()
        .filter(|p| {
            p.protocol
                .as_deref()
                .is_none_or(|p| p.eq_ignore_ascii_case("TCP"))
        })
        .map(|p| ServicePort {
            name: p.name.clone(),
            number: p.port,
            protocol: Protocol::of_service_port(&p.name, p.app_protocol.as_deref()),
            target_port: match &p.target_port {
                Some(IntOrString::Int(n)) => Some(*n),
                _ => None,
            },
            target_port_name: match &p.target_port {
                Some(IntOrString::String(name)) => Some(name.clone()),
                _ => None,
            },
        })
        .collect();
    let meta = &resource.meta;
    Some(Service {
        hostname: format!("{}.{}.svc.{domain}", meta.name, meta.namespace),
        namespace: meta.namespace.clone(),
        address: spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok()),
        ports,
        resolution: Resolution::Static,
        mesh_external: false,
        subject_alt_names: Vec::new(),
        kubernetes: true,
        export_to: meta
            .annotations
            .get(EXPORT_TO_ANNOTATION)
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default(),
        selector: (!spec.selector.is_empty()).then(|| spec.selector.clone()),
    })
}

fn service_entry(resource: &Resource, entry: &networking::ServiceEntry) -> Vec<Service> {
    let address = entry
        .addresses
        .iter()
        .find_map(|a| a.parse::<Ipv4Addr>().ok());
    let ports: Vec<ServicePort> = entry
        .ports
        .iter()
        .map(|p| ServicePort {
            name: p.name.clone(),
            number: p.number,
            protocol: Protocol::parse(&p.protocol),
            target_port: (p.target_port != 0).then_some(p.target_port),
            target_port_name: None,
        })
        .collect();
    let resolution = match entry.resolution {
        ServiceEntryResolution::None => Resolution::Passthrough,
        ServiceEntryResolution::Static => Resolution::Static,
        ServiceEntryResolution::Dns | ServiceEntryResolution::DynamicDns => Resolution::Dns,
        ServiceEntryResolution::DnsRoundRobin => Resolution::DnsRoundRobin,
    };
    entry
        .hosts
        .iter()
        .map(|host| Service {
            hostname: host.clone(),
            namespace: resource.meta.namespace.clone(),
            address,
            ports: ports.clone(),
            resolution,
            mesh_external: entry.location == ServiceEntryLocation::MeshExternal,
            subject_alt_names: entry.subject_alt_names.clone(),
            kubernetes: false,
            export_to: entry.export_to.clone(),
            selector: entry.workload_selector.as_ref().map(|s| s.labels.clone()),
        })
        .collect()
}

fn assign_vips(services: &mut BTreeMap<String, Service>) {
    let taken: BTreeSet<Ipv4Addr> = services.values().filter_map(|s| s.address).collect();
    let wanting: BTreeSet<String> = services
        .values()
        .filter(|s| s.address.is_none() && !s.hostname.starts_with('*'))
        .filter(|s| s.resolution != Resolution::Passthrough || s.mesh_external)
        .map(|s| s.hostname.clone())
        .collect();
    for (host, ip) in vip::allocate(&wanting, &taken) {
        if let Some(service) = services.get_mut(&host) {
            service.address = Some(ip);
        }
    }
}

/// A running instance that can back a service: a Pod, a WorkloadEntry or a registered
/// workload.
struct Instance {
    namespace: String,
    address: String,
    labels: BTreeMap<String, String>,
    /// Named ports (WorkloadEntry `ports`, container port names).
    ports: BTreeMap<String, u32>,
    service_account: String,
    has_sidecar: bool,
    locality: String,
    weight: u32,
    workload_name: String,
}

struct Instances(Vec<Instance>);

impl Instances {
    fn collect(snapshot: &Snapshot, workloads: &[Workload]) -> Self {
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
        Instances(all)
    }

    fn endpoints_of(
        &self,
        service: &Service,
        port: &ServicePort,
        snapshot: &Snapshot,
    ) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = match &service.selector {
            Some(selector) => self
                .0
                .iter()
                .filter(|i| i.namespace == service.namespace && selects(selector, &i.labels))
                .map(|i| instance_endpoint(i, port))
                .collect(),
            None => Vec::new(),
        };
        out.extend(inline_endpoints(service, port, snapshot));
        if out.is_empty()
            && matches!(
                service.resolution,
                Resolution::Dns | Resolution::DnsRoundRobin
            )
        {
            // A DNS service entry without endpoints resolves its own host name.
            out.push(Endpoint {
                address: service.hostname.clone(),
                port: port.target_port.unwrap_or(port.number),
                labels: BTreeMap::new(),
                service_account: String::new(),
                namespace: service.namespace.clone(),
                has_sidecar: false,
                locality: String::new(),
                weight: 1,
                workload_name: String::new(),
            });
        }
        out
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

fn workload_entry_instance(
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

fn instance_endpoint(instance: &Instance, port: &ServicePort) -> Endpoint {
    let number = instance
        .ports
        .get(&port.name)
        .copied()
        .or_else(|| {
            port.target_port_name
                .as_ref()
                .and_then(|n| instance.ports.get(n).copied())
        })
        .or(port.target_port)
        .unwrap_or(port.number);
    Endpoint {
        address: instance.address.clone(),
        port: number,
        labels: instance.labels.clone(),
        service_account: instance.service_account.clone(),
        namespace: instance.namespace.clone(),
        has_sidecar: instance.has_sidecar,
        locality: instance.locality.clone(),
        weight: instance.weight,
        workload_name: instance.workload_name.clone(),
    }
}

fn inline_endpoints(service: &Service, port: &ServicePort, snapshot: &Snapshot) -> Vec<Endpoint> {
    snapshot
        .objects
        .values()
        .filter(|r| r.meta.namespace == service.namespace)
        .filter_map(|r| match &r.spec {
            Spec::ServiceEntry(entry) if entry.hosts.contains(&service.hostname) => Some(entry),
            _ => None,
        })
        .flat_map(|entry| &entry.endpoints)
        .map(|e| {
            let instance = workload_entry_instance(&service.namespace, e, String::new());
            instance_endpoint(&instance, port)
        })
        .collect()
}

/// True when every label of the selector is on the instance.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
