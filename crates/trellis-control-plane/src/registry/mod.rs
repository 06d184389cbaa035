//! The service registry: which services exist, on which ports, and which endpoints serve
//! them.
//!
//! Services come from Kubernetes `Service` objects and `ServiceEntry`s; endpoints from Pods
//! with an IP, `WorkloadEntry`s (selected by labels in the service's namespace, as Istio
//! does for VMs), `ServiceEntry` inline endpoints, and [`Workload`]s — proxies that
//! registered themselves by connecting. [`build`] is a pure function of those inputs, so a
//! Kubernetes source only has to produce the same inputs.

pub mod build;
mod instances;
mod vip;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

pub use build::build;

use crate::protocol::Protocol;

/// How a service's endpoints are found, Istio's ServiceEntry resolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// Endpoints are known addresses (Kubernetes services, STATIC service entries).
    Static,
    /// Forward to the original destination address (NONE).
    Passthrough,
    /// Endpoints are DNS names resolved by the proxy (DNS).
    Dns,
    /// Like DNS, but connect to one address at a time (DNS_ROUND_ROBIN).
    DnsRoundRobin,
}

/// A port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServicePort {
    pub name: String,
    pub number: u32,
    pub protocol: Protocol,
    /// The port on the endpoints when it differs and is a number.
    pub target_port: Option<u32>,
    /// The container port name a Kubernetes `targetPort` names, if it names one.
    pub target_port_name: Option<String>,
}

/// A service of the mesh, known by its fully qualified host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// e.g. `reviews.default.svc.cluster.local`, or a ServiceEntry host.
    pub hostname: String,
    pub namespace: String,
    /// The virtual IP clients dial; from `clusterIP`, ServiceEntry `addresses`, or allocated
    /// from 240.240.0.0/16.
    pub address: Option<Ipv4Addr>,
    pub ports: Vec<ServicePort>,
    pub resolution: Resolution,
    /// True for services outside the mesh (ServiceEntry MESH_EXTERNAL).
    pub mesh_external: bool,
    /// Namespaces that may see it: `*` for all, `.` for its own; empty means all.
    pub export_to: Vec<String>,
    /// Label selector of a Kubernetes Service or a ServiceEntry's workloadSelector.
    pub selector: Option<BTreeMap<String, String>>,
    /// Identities a ServiceEntry declares for its workloads (`subjectAltNames`), which
    /// mutual TLS accepts besides those of the workloads themselves.
    pub subject_alt_names: Vec<String>,
    /// True for a Kubernetes Service (Istio's `Kubernetes` registry), whose short names
    /// (`name`, `name.namespace`) the sidecars' DNS proxy also answers.
    pub kubernetes: bool,
}

impl Service {
    /// The port with this number.
    pub fn port(&self, number: u32) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }

    /// True when a proxy in `namespace` may see this service.
    pub fn visible_from(&self, namespace: &str) -> bool {
        self.export_to.is_empty()
            || self
                .export_to
                .iter()
                .any(|e| e == "*" || e == namespace || (e == "." && self.namespace == namespace))
    }
}

/// One endpoint of one service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// An IP, or a host name for DNS-resolved services.
    pub address: String,
    pub port: u32,
    pub labels: BTreeMap<String, String>,
    /// Empty when the workload has none (a WorkloadEntry without `serviceAccount`).
    pub service_account: String,
    pub namespace: String,
    /// True when the endpoint has a sidecar (`security.istio.io/tlsMode: istio`).
    pub has_sidecar: bool,
    pub locality: String,
    pub weight: u32,
    /// The workload it belongs to, as Istio names it for telemetry (pod name, WorkloadEntry
    /// name or group, registered proxy's name; empty for ServiceEntry endpoints).
    pub workload_name: String,
}

/// A workload that registered itself: a proxy that connected with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub name: String,
    pub namespace: String,
    pub ip: IpAddr,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    /// Ports by name (like WorkloadEntry `ports`), when declared.
    pub ports: BTreeMap<String, u32>,
    /// Its proxy terminates Istio mTLS (it has SDS): clients may use mTLS to reach it
    /// (`tlsMode: istio`).
    pub istio_mtls: bool,
}

/// Every service and its endpoints, keyed by host name and port number.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub services: BTreeMap<String, Arc<Service>>,
    /// `(hostname, service port) → endpoints`, in a stable order.
    pub endpoints: BTreeMap<(String, u32), Vec<Endpoint>>,
}

impl Registry {
    /// The service with this host name.
    pub fn service(&self, hostname: &str) -> Option<&Arc<Service>> {
        self.services.get(hostname)
    }

    /// The endpoints of a service port.
    pub fn endpoints(&self, hostname: &str, port: u32) -> &[Endpoint] {
        self.endpoints
            .get(&(hostname.to_string(), port))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The service whose virtual IP is `address`.
    pub fn by_address(&self, address: Ipv4Addr) -> Option<&Arc<Service>> {
        self.services.values().find(|s| s.address == Some(address))
    }
}

#[cfg(test)]
mod tests;
