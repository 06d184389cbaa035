//! Building the registry from configuration objects and self-registered workloads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use trellis_api::istio::networking::{self, ServiceEntryLocation, ServiceEntryResolution};
use trellis_api::kube::{self, IntOrString};
use trellis_api::{Resource, Spec};
use trellis_config::store::Snapshot;

use super::instances::{Instance, Instances, workload_entry_instance};
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
    let inline = InlineEndpoints::collect(snapshot);
    let mut registry = Registry::default();
    for service in services.into_values() {
        for port in &service.ports {
            let mut endpoints = endpoints_of(&service, port, &instances, &inline);
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

fn endpoints_of(
    service: &Service,
    port: &ServicePort,
    instances: &Instances,
    inline: &InlineEndpoints,
) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = match &service.selector {
        Some(selector) => instances
            .selected(&service.namespace, selector)
            .into_iter()
            .map(|i| instance_endpoint(i, port))
            .collect(),
        None => Vec::new(),
    };
    out.extend(inline.endpoints(service, port));
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

/// The inline endpoints of ServiceEntries by namespace and host, in snapshot order.
struct InlineEndpoints<'a>(HashMap<(&'a str, &'a str), Vec<&'a networking::WorkloadEntry>>);

impl<'a> InlineEndpoints<'a> {
    fn collect(snapshot: &'a Snapshot) -> Self {
        let mut index: HashMap<(&str, &str), Vec<&networking::WorkloadEntry>> = HashMap::new();
        for resource in snapshot.objects.values() {
            if let Spec::ServiceEntry(entry) = &resource.spec {
                let hosts: BTreeSet<&str> = entry.hosts.iter().map(String::as_str).collect();
                for host in hosts {
                    index
                        .entry((resource.meta.namespace.as_str(), host))
                        .or_default()
                        .extend(&entry.endpoints);
                }
            }
        }
        InlineEndpoints(index)
    }

    fn endpoints(&self, service: &Service, port: &ServicePort) -> Vec<Endpoint> {
        self.0
            .get(&(service.namespace.as_str(), service.hostname.as_str()))
            .into_iter()
            .flatten()
            .map(|e| {
                let instance = workload_entry_instance(&service.namespace, e, String::new());
                instance_endpoint(&instance, port)
            })
            .collect()
    }
}

/// True when every label of the selector is on the instance.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
