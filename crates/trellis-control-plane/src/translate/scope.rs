//! Which services a proxy sees, and how: the visible registry services narrowed by the
//! `Sidecar` resource that applies to the proxy, its explicit egress listeners, and the
//! outbound traffic policy.

use std::collections::BTreeSet;
use std::sync::Arc;

use trellis_api::istio::mesh::MeshConfigOutboundTrafficPolicyMode;
use trellis_api::istio::networking::{
    CaptureMode, OutboundTrafficPolicyMode, Sidecar, VirtualService,
};
use trellis_api::{Kind, Resource, Spec};

use trellis_api::host::covers;

use crate::mesh::MeshSnapshot;
use crate::protocol::Protocol;
use crate::proxy::ProxyNode;
use crate::registry::Service;
use crate::registry::build::selects;

/// An egress listener a Sidecar resource declares with an explicit port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressListener {
    pub port: u32,
    pub protocol: Protocol,
    /// The address to bind; empty means all addresses.
    pub bind: String,
    /// True for `captureMode: NONE`: the listener binds a real socket the app dials.
    pub explicit: bool,
    /// `namespace/host` patterns of the services this listener serves.
    pub hosts: Vec<String>,
}

/// What a proxy sees of the mesh.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    /// Visible services, in host-name order.
    pub services: Vec<&'a Arc<Service>>,
    /// The Sidecar resource in force, if any.
    pub sidecar: Option<&'a Resource>,
    pub egress_listeners: Vec<EgressListener>,
    /// ALLOW_ANY (true) sends unknown destinations through; REGISTRY_ONLY blocks them.
    pub allow_any: bool,
    /// The Sidecar's egress `namespace/host` patterns, when a Sidecar restricts the scope.
    egress_hosts: Option<Vec<String>>,
    /// The namespace `.` means in egress hosts.
    sidecar_namespace: String,
}

impl<'a> Scope<'a> {
    /// Computes the scope of a proxy.
    pub fn of(mesh: &'a MeshSnapshot, proxy: &ProxyNode) -> Self {
        let sidecar = sidecar_for(mesh, proxy);
        let spec = sidecar.and_then(|r| match &r.spec {
            Spec::Sidecar(s) => Some(s),
            _ => None,
        });
        let sidecar_ns = sidecar
            .map(|r| r.meta.namespace.as_str())
            .unwrap_or(&proxy.namespace);
        let host_patterns: Option<Vec<String>> = spec.map(|s| {
            s.egress
                .iter()
                .flat_map(|e| e.hosts.iter().cloned())
                .collect()
        });
        let inferred = host_patterns
            .as_deref()
            .map(|patterns| virtual_service_destinations(mesh, proxy, patterns, sidecar_ns))
            .unwrap_or_default();
        let sidecar_namespace = sidecar_ns.to_string();
        let services = mesh
            .registry
            .services
            .values()
            .filter(|s| s.visible_from(&proxy.namespace))
            .filter(|s| match &host_patterns {
                Some(patterns) => {
                    patterns.iter().any(|p| host_allowed(p, s, sidecar_ns))
                        || inferred.contains(&s.hostname)
                }
                None => true,
            })
            .collect();
        Scope {
            services,
            sidecar,
            egress_listeners: spec.map(egress_listeners).unwrap_or_default(),
            allow_any: allow_any(mesh, spec),
            egress_hosts: host_patterns,
            sidecar_namespace,
        }
    }

    /// The sidecar VirtualServices (bound to `mesh`) visible to the proxy and admitted by its
    /// Sidecar, in precedence order.
    pub fn virtual_services<'m>(
        &'m self,
        mesh: &'m MeshSnapshot,
        proxy: &'m ProxyNode,
    ) -> impl Iterator<Item = (&'m Resource, &'m VirtualService)> + 'm {
        mesh.virtual_services_for(&proxy.namespace, "mesh")
            .filter(move |(resource, vs)| self.admits_virtual_service(mesh, resource, vs))
    }

    /// True when the proxy's Sidecar egress hosts admit a VirtualService (any host of it, in
    /// the VirtualService's namespace), or when no Sidecar restricts the proxy.
    pub fn admits_virtual_service(
        &self,
        mesh: &MeshSnapshot,
        resource: &Resource,
        vs: &VirtualService,
    ) -> bool {
        match &self.egress_hosts {
            Some(patterns) => admits(mesh, resource, vs, patterns, &self.sidecar_namespace),
            None => true,
        }
    }

    /// The visible services a `namespace/host` pattern list admits.
    pub fn services_for(&self, patterns: &[String], sidecar_ns: &str) -> Vec<&'a Arc<Service>> {
        self.services
            .iter()
            .copied()
            .filter(|s| patterns.iter().any(|p| host_allowed(p, s, sidecar_ns)))
            .collect()
    }
}

/// The destinations of the VirtualServices a Sidecar's egress hosts admit: Istio adds them to
/// the proxy's scope, so a route to a service outside the egress hosts still has its cluster.
fn virtual_service_destinations(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    patterns: &[String],
    sidecar_ns: &str,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (resource, vs) in mesh.virtual_services_for(&proxy.namespace, "mesh") {
        if !admits(mesh, resource, vs, patterns, sidecar_ns) {
            continue;
        }
        let ns = resource.meta.namespace.as_str();
        let http = vs.http.iter().flat_map(|h| {
            let routes = h.route.iter().filter_map(|d| d.destination.as_ref());
            routes
                .chain(h.mirror.as_ref())
                .chain(h.mirrors.iter().filter_map(|m| m.destination.as_ref()))
        });
        let tcp = vs.tcp.iter().flat_map(|t| &t.route);
        let tls = vs.tls.iter().flat_map(|t| &t.route);
        let l4 = tcp.chain(tls).filter_map(|d| d.destination.as_ref());
        out.extend(http.chain(l4).map(|d| mesh.resolve(&d.host, ns)));
    }
    out
}

fn admits(
    mesh: &MeshSnapshot,
    resource: &Resource,
    vs: &VirtualService,
    patterns: &[String],
    sidecar_ns: &str,
) -> bool {
    let ns = resource.meta.namespace.as_str();
    vs.hosts.iter().any(|host| {
        let hostname = mesh.resolve(host, ns);
        patterns
            .iter()
            .any(|p| pattern_admits(p, ns, &hostname, sidecar_ns))
    })
}

fn sidecar_for<'a>(mesh: &'a MeshSnapshot, proxy: &ProxyNode) -> Option<&'a Resource> {
    let sidecars: Vec<(&Resource, &Sidecar)> = mesh
        .config
        .of_kind(Kind::Sidecar)
        .filter_map(|r| match &r.spec {
            Spec::Sidecar(s) => Some((r.as_ref(), s)),
            _ => None,
        })
        .collect();
    let selected = sidecars.iter().find(|(r, s)| {
        r.meta.namespace == proxy.namespace
            && s.workload_selector
                .as_ref()
                .is_some_and(|w| !w.labels.is_empty() && selects(&w.labels, &proxy.labels))
    });
    let namespace_default = || {
        sidecars
            .iter()
            .find(|(r, s)| r.meta.namespace == proxy.namespace && s.workload_selector.is_none())
    };
    let root_default = || {
        sidecars
            .iter()
            .find(|(r, s)| r.meta.namespace == mesh.root_namespace && s.workload_selector.is_none())
    };
    selected
        .or_else(namespace_default)
        .or_else(root_default)
        .map(|(r, _)| *r)
}

fn egress_listeners(sidecar: &Sidecar) -> Vec<EgressListener> {
    sidecar
        .egress
        .iter()
        .filter_map(|e| {
            let port = e.port.as_ref()?;
            Some(EgressListener {
                port: port.number,
                protocol: Protocol::parse(&port.protocol),
                bind: e.bind.clone(),
                explicit: e.capture_mode == CaptureMode::None,
                hosts: e.hosts.clone(),
            })
        })
        .collect()
}

fn allow_any(mesh: &MeshSnapshot, sidecar: Option<&Sidecar>) -> bool {
    if let Some(policy) = sidecar.and_then(|s| s.outbound_traffic_policy.as_ref()) {
        return policy.mode == OutboundTrafficPolicyMode::AllowAny;
    }
    // Istio's default mesh config is ALLOW_ANY; only an explicit REGISTRY_ONLY blocks.
    mesh.mesh
        .outbound_traffic_policy
        .as_ref()
        .is_none_or(|p| p.mode != MeshConfigOutboundTrafficPolicyMode::RegistryOnly)
}

/// Sidecar egress host matching: `ns/host` with `*` for any namespace, `.` for the
/// Sidecar's own, `~` for none; host `*`, a wildcard, or an exact name.
fn host_allowed(pattern: &str, service: &Service, sidecar_ns: &str) -> bool {
    pattern_admits(pattern, &service.namespace, &service.hostname, sidecar_ns)
}

fn pattern_admits(pattern: &str, namespace: &str, hostname: &str, sidecar_ns: &str) -> bool {
    let (ns, host) = pattern.split_once('/').unwrap_or(("*", pattern));
    let ns_ok = match ns {
        "*" => true,
        "." => namespace == sidecar_ns,
        "~" => false,
        other => namespace == other,
    };
    ns_ok && covers(host, hostname)
}
