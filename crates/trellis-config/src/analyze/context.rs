//! The set of objects an analysis runs over, with typed access by kind and lookups by name.

use std::collections::BTreeMap;

use trellis_api::istio::{mesh::MeshConfig, networking, security, telemetry};
use trellis_api::{DecodeError, Kind, Resource, Spec, kube};

use super::Input;

/// Read-only view of everything analyzed.
pub struct Context<'a> {
    /// The input objects followed by the defaults a mesh always has ([`default_resources`]).
    pub resources: Vec<&'a Resource>,
    pub mesh: &'a MeshConfig,
    pub decode_errors: &'a [DecodeError],
}

macro_rules! typed {
    ($($fn:ident: $kind:ident => $ty:ty;)+) => {
        impl<'a> Context<'a> {
            $(
                /// Every object of this kind with its typed spec, in input order.
                pub fn $fn(&self) -> impl Iterator<Item = (&'a Resource, &'a $ty)> + '_ {
                    self.resources.iter().copied().filter_map(|r| match &r.spec {
                        Spec::$kind(s) => Some((r, s)),
                        _ => None,
                    })
                }
            )+
        }
    };
}

typed! {
    virtual_services: VirtualService => networking::VirtualService;
    destination_rules: DestinationRule => networking::DestinationRule;
    gateways: Gateway => networking::Gateway;
    service_entries: ServiceEntry => networking::ServiceEntry;
    sidecars: Sidecar => networking::Sidecar;
    envoy_filters: EnvoyFilter => networking::EnvoyFilter;
    authorization_policies: AuthorizationPolicy => security::AuthorizationPolicy;
    request_authentications: RequestAuthentication => security::RequestAuthentication;
    telemetries: Telemetry => telemetry::Telemetry;
    services: Service => kube::ServiceSpec;
    pods: Pod => kube::PodSpec;
    deployments: Deployment => kube::DeploymentSpec;
    secrets: Secret => kube::DataSpec;
}

impl<'a> Context<'a> {
    pub fn new(input: &Input<'a>, defaults: &'a [Resource]) -> Self {
        Context {
            resources: input.resources.iter().chain(defaults).collect(),
            mesh: input.mesh,
            decode_errors: input.decode_errors,
        }
    }

    /// The object of a kind with this namespace and name.
    pub fn find(&self, kind: Kind, namespace: &str, name: &str) -> Option<&'a Resource> {
        self.resources
            .iter()
            .copied()
            .find(|r| r.kind() == kind && r.meta.namespace == namespace && r.meta.name == name)
    }

    /// Namespaces that exist: declared by a Namespace object or holding any object.
    pub fn namespaces(&self) -> BTreeMap<&'a str, ()> {
        self.resources
            .iter()
            .copied()
            .map(|r| {
                if r.kind() == Kind::Namespace {
                    r.meta.name.as_str()
                } else {
                    r.meta.namespace.as_str()
                }
            })
            .map(|n| (n, ()))
            .collect()
    }

    /// Pods (and the pod templates of Deployments are not pods: only real Pods count, as
    /// in Istio) whose labels `selects` accepts, in `namespace` (or any namespace if `None`).
    pub fn pods_in<'s>(
        &'s self,
        namespace: Option<&'s str>,
    ) -> impl Iterator<Item = (&'a Resource, &'a kube::PodSpec)> + 's {
        self.pods()
            .filter(move |(r, _)| namespace.is_none_or(|ns| r.meta.namespace == ns))
    }
}

/// Istio's name of an object in messages: `Kind namespace/name`, or `Kind name` when the
/// object has no namespace.
pub fn origin(r: &Resource) -> String {
    if r.meta.namespace.is_empty() {
        format!("{} {}", r.kind(), r.meta.name)
    } else {
        format!("{} {}/{}", r.kind(), r.meta.namespace, r.meta.name)
    }
}

/// `namespace/name`, or `name` alone without a namespace (Istio's `FullName.String()`).
pub fn full_name(r: &Resource) -> String {
    full_name_of(&r.meta.namespace, &r.meta.name)
}

pub fn full_name_of(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

/// The objects `istioctl analyze` assumes in every mesh whose ingress controller is on: the
/// default ingress gateway's pod and Service in `istio-system` (Istio adds the same two).
pub fn default_resources(mesh: &MeshConfig) -> Vec<Resource> {
    use trellis_api::istio::mesh::MeshConfigIngressControllerMode as Mode;
    if mesh.ingress_controller_mode == Mode::Off {
        return Vec::new();
    }
    let service = if mesh.ingress_service.is_empty() {
        "istio-ingressgateway"
    } else {
        mesh.ingress_service.as_str()
    };
    let labels: BTreeMap<String, String> =
        [("istio".to_string(), "ingressgateway".to_string())].into();
    let origin = trellis_api::Origin {
        file: "internal-ingress".into(),
        line: 1,
    };
    let meta = |name: String, labels: BTreeMap<String, String>| trellis_api::ObjectMeta {
        name,
        namespace: "istio-system".to_string(),
        labels,
        ..Default::default()
    };
    let port = |name: &str, port: u32| kube::ServicePort {
        name: name.to_string(),
        port,
        target_port: Some(kube::IntOrString::Int(port)),
        protocol: Some("TCP".to_string()),
        ..Default::default()
    };
    vec![
        Resource {
            api_version: "v1".to_string(),
            meta: meta(format!("{service}-dummypod"), labels.clone()),
            spec: Spec::Pod(kube::PodSpec {
                containers: vec![kube::Container {
                    name: "istio-proxy".to_string(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            pod_status: None,
            origin: origin.clone(),
        },
        Resource {
            api_version: "v1".to_string(),
            meta: meta(service.to_string(), BTreeMap::new()),
            spec: Spec::Service(kube::ServiceSpec {
                selector: labels,
                ports: vec![
                    port("http2", 80),
                    port("https", 443),
                    port("tcp", 31400),
                    port("tls", 15443),
                ],
                ..Default::default()
            }),
            pod_status: None,
            origin,
        },
    ]
}
