//! The objects Trellis reads: their kinds, the apiVersions each kind is served at, and the
//! typed envelope (metadata + spec) of one object.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

use crate::istio::{extensions, networking, networking_v1beta1, security, telemetry};
use crate::{ObjectMeta, Origin, kube};

/// Declares every kind once: its API group, served versions and spec type. From that table
/// come [`Kind`], [`Spec`] and the decoding of an object by `apiVersion` and `kind`.
macro_rules! kinds {
    ($($kind:ident: $group:literal [$($version:literal),+] => $spec:ty, $strict:literal;)+) => {
        /// A kind of object Trellis understands.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind { $($kind,)+ }

        /// The typed spec of an object, by kind.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        #[allow(clippy::large_enum_variant)]
        pub enum Spec { $($kind($spec),)+ }

        impl Kind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [Kind] = &[$(Kind::$kind,)+];

            /// The kind's name as written in `kind:`.
            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$kind => stringify!($kind),)+ }
            }

            /// The API group (`""` for Kubernetes' core group).
            pub fn group(self) -> &'static str {
                match self { $(Kind::$kind => $group,)+ }
            }

            /// The versions of the group that serve this kind.
            pub fn versions(self) -> &'static [&'static str] {
                match self { $(Kind::$kind => &[$($version),+],)+ }
            }

            /// Istio kinds reject unknown fields; Kubernetes kinds ignore fields a mesh does
            /// not read.
            pub fn is_strict(self) -> bool {
                match self { $(Kind::$kind => $strict,)+ }
            }
        }

        impl Spec {
            /// The kind of this spec.
            pub fn kind(&self) -> Kind {
                match self { $(Spec::$kind(_) => Kind::$kind,)+ }
            }

            /// Decodes `spec` (or, for ConfigMap/Secret, the whole object) of a given kind.
            pub(crate) fn decode(
                kind: Kind,
                value: serde_json::Value,
            ) -> Result<Spec, serde_path_to_error::Error<serde_json::Error>> {
                match kind { $(Kind::$kind => decode_spec(value).map(Spec::$kind),)+ }
            }
        }
    };
}

kinds! {
    VirtualService: "networking.istio.io" ["v1", "v1beta1", "v1alpha3"] => networking::VirtualService, true;
    DestinationRule: "networking.istio.io" ["v1", "v1beta1", "v1alpha3"] => networking::DestinationRule, true;
    Gateway: "networking.istio.io" ["v1", "v1beta1", "v1alpha3"] => networking::Gateway, true;
    ServiceEntry: "networking.istio.io" ["v1", "v1beta1", "v1alpha3"] => networking::ServiceEntry, true;
    WorkloadEntry: "networking.istio.io" ["v1", "v1beta1", "v1alpha3"] => networking::WorkloadEntry, true;
    WorkloadGroup: "networking.istio.io" ["v1", "v1beta1", "v1alpha3"] => networking::WorkloadGroup, true;
    Sidecar: "networking.istio.io" ["v1", "v1beta1", "v1alpha3"] => networking::Sidecar, true;
    EnvoyFilter: "networking.istio.io" ["v1alpha3"] => networking::EnvoyFilter, true;
    ProxyConfig: "networking.istio.io" ["v1beta1"] => networking_v1beta1::ProxyConfig, true;
    PeerAuthentication: "security.istio.io" ["v1", "v1beta1"] => security::PeerAuthentication, true;
    AuthorizationPolicy: "security.istio.io" ["v1", "v1beta1"] => security::AuthorizationPolicy, true;
    RequestAuthentication: "security.istio.io" ["v1", "v1beta1"] => security::RequestAuthentication, true;
    Telemetry: "telemetry.istio.io" ["v1", "v1alpha1"] => telemetry::Telemetry, true;
    WasmPlugin: "extensions.istio.io" ["v1alpha1"] => extensions::WasmPlugin, true;
    TrafficExtension: "extensions.istio.io" ["v1alpha1"] => extensions::TrafficExtension, true;
    Namespace: "" ["v1"] => kube::NamespaceSpec, false;
    Service: "" ["v1"] => kube::ServiceSpec, false;
    Pod: "" ["v1"] => kube::PodSpec, false;
    Deployment: "apps" ["v1"] => kube::DeploymentSpec, false;
    ConfigMap: "" ["v1"] => kube::DataSpec, false;
    Secret: "" ["v1"] => kube::DataSpec, false;
}

fn decode_spec<T: DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
    serde_path_to_error::deserialize(value)
}

impl Kind {
    /// Finds the kind for an `apiVersion` and `kind` pair.
    pub fn resolve(api_version: &str, kind: &str) -> KindLookup {
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let Some(known) = Kind::ALL.iter().copied().find(|k| k.as_str() == kind) else {
            return if group.ends_with("istio.io") {
                KindLookup::UnknownIstioKind
            } else {
                KindLookup::NotMeshKind
            };
        };
        if known.group() != group {
            return if group.ends_with("istio.io") {
                KindLookup::UnknownIstioKind
            } else {
                KindLookup::NotMeshKind
            };
        }
        if known.versions().contains(&version) {
            KindLookup::Found(known)
        } else {
            KindLookup::UnservedVersion(known)
        }
    }

    /// `group/version` for the kind's newest served version (`v1` for core kinds).
    pub fn preferred_api_version(self) -> String {
        let version = self.versions()[0];
        if self.group().is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group(), version)
        }
    }

    /// True for kinds of the Istio API groups (as opposed to Kubernetes' own).
    pub fn is_istio(self) -> bool {
        self.group().ends_with("istio.io")
    }
}

/// The outcome of looking up a kind by `apiVersion` and `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindLookup {
    /// A kind Trellis reads.
    Found(Kind),
    /// A known kind at a version its group does not serve.
    UnservedVersion(Kind),
    /// A kind in an Istio group that Trellis does not know: an error, likely a typo.
    UnknownIstioKind,
    /// Some other Kubernetes object (ServiceAccount, Ingress...): not the mesh's business.
    NotMeshKind,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object: what it is, where it came from, its metadata and its typed spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub api_version: String,
    pub meta: ObjectMeta,
    pub spec: Spec,
    /// Only Pods carry a status a mesh reads (their IP).
    pub pod_status: Option<kube::PodStatus>,
    pub origin: Origin,
}

impl Resource {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// `namespace/name`, the way Istio names an object in messages.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.meta.namespace, self.meta.name)
    }

    /// `Kind namespace/name`, as in Istio's analyzer output.
    pub fn display_name(&self) -> String {
        format!("{} {}", self.kind(), self.full_name())
    }
}
