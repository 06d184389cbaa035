//! The push context: one immutable view of the mesh — config snapshot, registry and the
//! indexes translation needs — built once per change and shared by every proxy's
//! translation (never copied per proxy).

use std::collections::BTreeMap;
use std::sync::Arc;

use trellis_api::istio::mesh::MeshConfig;
use trellis_api::istio::networking::{DestinationRule, VirtualService};
use trellis_api::{Kind, Resource, Spec};
use trellis_config::store::Snapshot;

use crate::jwks::JwksCache;
use crate::registry::{self, Registry, Workload};
use crate::translate::mtls::PeerAuthentications;

/// The cluster DNS suffix when the mesh config does not set one.
pub const DEFAULT_DOMAIN: &str = "cluster.local";
/// Istio's root namespace, whose mesh-wide objects apply everywhere.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// An immutable view of the whole mesh at one revision.
#[derive(Debug, Clone)]
pub struct MeshSnapshot {
    pub config: Arc<Snapshot>,
    pub registry: Arc<Registry>,
    pub mesh: Arc<MeshConfig>,
    pub domain: String,
    pub root_namespace: String,
    /// VirtualServices in Istio's precedence order (oldest first, then by namespace/name).
    pub virtual_services: Vec<Arc<Resource>>,
    /// PeerAuthentications, for mTLS on both sides.
    pub peer_authentications: PeerAuthentications,
    /// JWKS the control plane fetched for `jwksUri`s (sent inline).
    pub jwks: Arc<JwksCache>,
    /// DestinationRules by fully qualified host.
    destination_rules: BTreeMap<String, Vec<Arc<Resource>>>,
}

impl MeshSnapshot {
    /// Builds the push context from configuration, registered workloads and mesh settings.
    pub fn new(config: Arc<Snapshot>, workloads: &[Workload], mesh: Arc<MeshConfig>) -> Self {
        let domain = DEFAULT_DOMAIN.to_string();
        let root_namespace = if mesh.root_namespace.is_empty() {
            DEFAULT_ROOT_NAMESPACE.to_string()
        } else {
            mesh.root_namespace.clone()
        };
        let registry = Arc::new(registry::build(&config, workloads, &domain));
        let virtual_services = config.of_kind(Kind::VirtualService).cloned().collect();
        let mut destination_rules: BTreeMap<String, Vec<Arc<Resource>>> = BTreeMap::new();
        for rule in config.of_kind(Kind::DestinationRule) {
            if let Spec::DestinationRule(dr) = &rule.spec {
                let host = resolve_host(&dr.host, &rule.meta.namespace, &domain);
                destination_rules
                    .entry(host)
                    .or_default()
                    .push(rule.clone());
            }
        }
        let peer_authentications = PeerAuthentications::new(&config, &root_namespace);
        MeshSnapshot {
            peer_authentications,
            config,
            registry,
            mesh,
            domain,
            root_namespace,
            virtual_services,
            jwks: Arc::default(),
            destination_rules,
        }
    }

    /// The same mesh with the JWKS known now.
    pub fn with_jwks(mut self, jwks: JwksCache) -> Self {
        self.jwks = Arc::new(jwks);
        self
    }

    /// Resolves a host as written in an object of `namespace` to a fully qualified name.
    pub fn resolve(&self, host: &str, namespace: &str) -> String {
        resolve_host(host, namespace, &self.domain)
    }

    /// The DestinationRule in force for `host` as seen from a proxy in `proxy_namespace`:
    /// the proxy's namespace first, then the service's, then the root namespace; an exact
    /// host before a wildcard.
    pub fn destination_rule(
        &self,
        host: &str,
        proxy_namespace: &str,
        service_namespace: &str,
    ) -> Option<(&Resource, &DestinationRule)> {
        let candidates = self
            .destination_rules
            .get(host)
            .into_iter()
            .flatten()
            .chain(
                self.destination_rules
                    .iter()
                    .filter(|(pattern, _)| wildcard_matches(pattern, host))
                    .flat_map(|(_, rules)| rules),
            );
        let visible: Vec<&Arc<Resource>> = candidates
            .filter(|r| exported_to(r, proxy_namespace))
            .collect();
        let chosen = [
            proxy_namespace,
            service_namespace,
            self.root_namespace.as_str(),
        ]
        .iter()
        .find_map(|ns| visible.iter().copied().find(|r| r.meta.namespace == *ns));
        chosen.and_then(|r| match &r.spec {
            Spec::DestinationRule(dr) => Some((r.as_ref(), dr)),
            _ => None,
        })
    }

    /// The VirtualServices visible to a proxy in `namespace` bound to `gateway` (`mesh` for
    /// sidecars), in precedence order.
    pub fn virtual_services_for<'a>(
        &'a self,
        namespace: &'a str,
        gateway: &'a str,
    ) -> impl Iterator<Item = (&'a Resource, &'a VirtualService)> + 'a {
        self.virtual_services
            .iter()
            .filter_map(move |r| match &r.spec {
                Spec::VirtualService(vs)
                    if exported_to(r, namespace) && binds(vs, &r.meta.namespace, gateway) =>
                {
                    Some((r.as_ref(), vs))
                }
                _ => None,
            })
    }
}

/// Short names (no dot) belong to the object's namespace; anything with a dot is taken as
/// written, as Istio does.
pub fn resolve_host(host: &str, namespace: &str, domain: &str) -> String {
    if host.contains('.') || host.starts_with('*') {
        host.to_string()
    } else {
        format!("{host}.{namespace}.svc.{domain}")
    }
}

/// True when `pattern` is a wildcard host (`*.example.com`, `*`) that covers `host`.
pub fn wildcard_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
        None => false,
    }
}

fn exported_to(resource: &Resource, namespace: &str) -> bool {
    let export_to = match &resource.spec {
        Spec::VirtualService(vs) => &vs.export_to,
        Spec::DestinationRule(dr) => &dr.export_to,
        _ => return true,
    };
    export_to.is_empty()
        || export_to.iter().any(|e| {
            e == "*" || e == namespace || (e == "." && resource.meta.namespace == namespace)
        })
}

/// True when a VirtualService applies to `gateway` (`mesh` = sidecars). Without
/// `gateways` it applies to sidecars only; gateway names resolve in its namespace.
fn binds(vs: &VirtualService, namespace: &str, gateway: &str) -> bool {
    if vs.gateways.is_empty() {
        return gateway == "mesh";
    }
    vs.gateways.iter().any(|g| {
        g == gateway || (!g.contains('/') && g != "mesh" && format!("{namespace}/{g}") == gateway)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_in_the_namespace() {
        assert_eq!(
            resolve_host("reviews", "shop", "cluster.local"),
            "reviews.shop.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("reviews.other", "shop", "cluster.local"),
            "reviews.other"
        );
        assert_eq!(
            resolve_host("*.example.com", "shop", "cluster.local"),
            "*.example.com"
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_matches("*.example.com", "a.example.com"));
        assert!(!wildcard_matches("*.example.com", "example.com"));
        assert!(wildcard_matches("*", "anything"));
        assert!(!wildcard_matches("a.example.com", "a.example.com"));
    }
}
