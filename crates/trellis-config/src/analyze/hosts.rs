//! Host names as the analyzers see them: short names resolved in a namespace, wildcard
//! matching, and which services (Kubernetes Services and ServiceEntry hosts) are visible
//! from which namespace through `exportTo`.
//!
//! Invariants (Istio's): a host without a dot and without a leading `*` is a short name and
//! means `name.<namespace>.svc.cluster.local`; `*` alone matches every host; `*.a.b` matches
//! any host ending in `.a.b`; two wildcards match when one's suffix ends the other's.

use std::collections::HashMap;

use trellis_api::Resource;

use super::Context;

/// The suffix of Kubernetes service names in the default cluster domain.
pub const CLUSTER_LOCAL: &str = "svc.cluster.local";
/// exportTo / scope meaning "every namespace".
pub const ALL_NAMESPACES: &str = "*";
/// exportTo meaning "the object's own namespace".
pub const LOCAL_NAMESPACE: &str = ".";

/// Resolves a short name in `namespace` (`reviews` → `reviews.ns.svc.cluster.local`);
/// names with a dot and wildcards are returned unchanged.
pub fn to_fqdn(namespace: &str, host: &str) -> String {
    if !host.starts_with('*') && !host.contains('.') {
        format!("{host}.{namespace}.{CLUSTER_LOCAL}")
    } else {
        host.to_string()
    }
}

pub use trellis_api::host::{covers, overlaps as matches};

/// `(name, namespace)` of a cluster-local FQDN (`a.ns.svc.cluster.local`), else `None`.
pub fn service_of_fqdn(fqdn: &str) -> Option<(&str, &str)> {
    let rest = fqdn.strip_suffix(".svc.cluster.local")?;
    let (name, ns) = rest.rsplit_once('.')?;
    if name.is_empty() || ns.is_empty() {
        return None;
    }
    Some((name, ns))
}

/// The `(namespace, name)` a host designates: the Service of a cluster-local FQDN, or the
/// host itself in `default_namespace` (how Istio keys DestinationRule hosts and subsets).
pub fn resource_name_of_host(default_namespace: &str, host: &str) -> (String, String) {
    match service_of_fqdn(host) {
        Some((name, ns)) => (ns.to_string(), name.to_string()),
        None => (default_namespace.to_string(), host.to_string()),
    }
}

/// Of a Gateway server's `namespace/host` entries, the hosts visible from `namespace`
/// (entries without a namespace are visible everywhere).
pub fn names_for_namespace<'h>(hosts: &'h [String], namespace: &str) -> Vec<&'h str> {
    hosts
        .iter()
        .filter_map(|h| match h.split_once('/') {
            Some((ns, host)) if ns == namespace || ns == ALL_NAMESPACES => Some(host),
            Some(_) => None,
            None => Some(h.as_str()),
        })
        .collect()
}

/// A port of a service, as a destination sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub number: u32,
    pub name: String,
    pub protocol: String,
}

/// A service a destination host can resolve to: a Kubernetes Service or a ServiceEntry.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub resource: &'a Resource,
    pub ports: Vec<ServicePort>,
}

/// Every service host with the namespaces it is visible from (`scope`: a namespace or `*`).
/// Built once per analysis; lookups follow Istio's precedence: a host exported to all
/// namespaces first, then to the asking namespace, then wildcard ServiceEntry hosts.
pub struct Registry<'a> {
    exact: HashMap<(String, String), Target<'a>>,
    /// `(scope, fqdn)` in insertion order, for wildcard lookups.
    all: Vec<(String, String)>,
}

impl<'a> Registry<'a> {
    pub fn new(ctx: &Context<'a>) -> Self {
        let mut reg = Registry {
            exact: HashMap::new(),
            all: Vec::new(),
        };
        for (r, se) in ctx.service_entries() {
            let ns = r.meta.namespace.as_str();
            let ports: Vec<ServicePort> = se
                .ports
                .iter()
                .map(|p| ServicePort {
                    number: p.number,
                    name: p.name.clone(),
                    protocol: p.protocol.clone(),
                })
                .collect();
            let scopes = export_scopes(&se.export_to, ns);
            for h in &se.hosts {
                for scope in &scopes {
                    reg.insert(
                        scope.clone(),
                        to_fqdn(ns, h),
                        Target {
                            resource: r,
                            ports: ports.clone(),
                        },
                    );
                }
            }
        }
        for (r, svc) in ctx.services() {
            let ns = r.meta.namespace.as_str();
            let ports: Vec<ServicePort> = svc
                .ports
                .iter()
                .map(|p| ServicePort {
                    number: p.port,
                    name: p.name.clone(),
                    protocol: p.protocol.clone().unwrap_or_default(),
                })
                .collect();
            let anno = r
                .meta
                .annotations
                .get("networking.istio.io/exportTo")
                .map(String::as_str)
                .unwrap_or("");
            let scopes: Vec<String> = if anno.is_empty() {
                vec![ALL_NAMESPACES.to_string()]
            } else {
                anno.split(',')
                    .map(str::trim)
                    .map(|s| {
                        if s == LOCAL_NAMESPACE {
                            ns.to_string()
                        } else {
                            s.to_string()
                        }
                    })
                    .collect()
            };
            for scope in scopes {
                reg.insert(
                    scope,
                    to_fqdn(ns, &r.meta.name),
                    Target {
                        resource: r,
                        ports: ports.clone(),
                    },
                );
            }
        }
        reg
    }

    fn insert(&mut self, scope: String, fqdn: String, target: Target<'a>) {
        let key = (scope, fqdn);
        if !self.exact.contains_key(&key) {
            self.all.push(key.clone());
        }
        // Later objects replace earlier ones for the same scoped host, as in Istio's map.
        self.exact.insert(key, target);
    }

    fn get(&self, scope: &str, fqdn: &str) -> Option<&Target<'a>> {
        self.exact.get(&(scope.to_string(), fqdn.to_string()))
    }

    /// The service a destination `host` written in namespace `source_ns` (by an object
    /// exported to `export_to`) resolves to, if any.
    pub fn lookup(&self, source_ns: &str, export_to: &[String], host: &str) -> Option<&Target<'a>> {
        let fqdn = to_fqdn(source_ns, host);
        if let Some(t) = self.get(ALL_NAMESPACES, &fqdn) {
            return Some(t);
        }
        if export_to.is_empty() {
            if let Some(t) = self.get(source_ns, &fqdn) {
                return Some(t);
            }
        } else {
            for e in export_to {
                let scope = if e == LOCAL_NAMESPACE { source_ns } else { e };
                if let Some(t) = self.get(scope, &fqdn) {
                    return Some(t);
                }
            }
        }
        let wanted = host.strip_prefix('*').unwrap_or(host);
        self.all
            .iter()
            .filter(|(scope, h)| {
                h.starts_with('*') && (scope == ALL_NAMESPACES || scope == source_ns)
            })
            .find(|(_, h)| wanted.ends_with(&h[1..]))
            .and_then(|(scope, h)| self.get(scope, h))
    }

    /// Every `(scope, fqdn, target)` known.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &Target<'a>)> {
        self.all
            .iter()
            .filter_map(|k| self.exact.get(k).map(|t| (k.0.as_str(), k.1.as_str(), t)))
    }
}

/// The namespaces an object with this `exportTo` is visible from (`*` for all).
pub fn export_scopes(export_to: &[String], own_ns: &str) -> Vec<String> {
    if export_to.is_empty() || export_to.iter().any(|e| e == ALL_NAMESPACES) {
        return vec![ALL_NAMESPACES.to_string()];
    }
    let mut out: Vec<String> = export_to
        .iter()
        .map(|e| {
            if e == LOCAL_NAMESPACE {
                own_ns.to_string()
            } else {
                e.clone()
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_in_the_namespace() {
        assert_eq!(to_fqdn("ns", "reviews"), "reviews.ns.svc.cluster.local");
        assert_eq!(to_fqdn("ns", "reviews.other"), "reviews.other");
        assert_eq!(to_fqdn("ns", "*"), "*");
        assert_eq!(to_fqdn("ns", "*.example.com"), "*.example.com");
    }

    #[test]
    fn wildcards_match_symmetrically() {
        assert!(matches("*", "a.b.c"));
        assert!(matches("a.b.c", "*"));
        assert!(matches("*.b.c", "a.b.c"));
        assert!(matches("a.b.c", "*.b.c"));
        assert!(!matches("*.b.c", "b.c"));
        assert!(matches("*.c", "*.b.c"));
        assert!(matches("*.b.c", "*.c"));
        assert!(!matches("*.x.c", "*.b.c"));
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.bc"));
    }

    #[test]
    fn coverage_is_one_way() {
        assert!(covers("*.c", "a.b.c"));
        assert!(covers("*.c", "*.b.c"));
        assert!(!covers("*.b.c", "*.c"));
        assert!(!covers("a.b.c", "*.b.c"));
    }

    #[test]
    fn cluster_local_fqdns_name_a_service() {
        assert_eq!(
            service_of_fqdn("reviews.ns.svc.cluster.local"),
            Some(("reviews", "ns"))
        );
        assert_eq!(
            service_of_fqdn("a.b.ns.svc.cluster.local"),
            Some(("a.b", "ns"))
        );
        assert_eq!(service_of_fqdn("example.com"), None);
        assert_eq!(
            resource_name_of_host("d", "example.com"),
            ("d".to_string(), "example.com".to_string())
        );
    }

    #[test]
    fn gateway_hosts_filter_by_namespace() {
        let hosts = vec![
            "ns1/a.com".to_string(),
            "*/b.com".to_string(),
            "c.com".to_string(),
        ];
        assert_eq!(
            names_for_namespace(&hosts, "ns1"),
            ["a.com", "b.com", "c.com"]
        );
        assert_eq!(names_for_namespace(&hosts, "ns2"), ["b.com", "c.com"]);
    }

    #[test]
    fn export_scopes_collapse_to_all() {
        assert_eq!(export_scopes(&[], "a"), ["*"]);
        assert_eq!(export_scopes(&[".".into(), "*".into()], "a"), ["*"]);
        assert_eq!(export_scopes(&[".".into(), "b".into()], "a"), ["a", "b"]);
    }
}

#[cfg(test)]
mod registry_tests {
    use trellis_api::istio::mesh::MeshConfig;

    use super::super::{Context, Input};
    use super::Registry;

    const OBJECTS: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec: {ports: [{port: 9080}]}
---
apiVersion: v1
kind: Service
metadata:
  name: private
  namespace: bookinfo
  annotations: {networking.istio.io/exportTo: .}
spec: {ports: [{port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: ext}
spec:
  hosts: ['*.example.com']
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
";

    #[test]
    fn lookups_follow_short_names_export_and_wildcards() {
        let decoded = trellis_api::decode_bytes("t.yaml", OBJECTS.as_bytes(), "default");
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        let mesh = MeshConfig::default();
        let input = Input {
            resources: &decoded.resources,
            mesh: &mesh,
            decode_errors: &[],
        };
        let ctx = Context::new(&input, &[]);
        let reg = Registry::new(&ctx);
        // A short name resolves in the asking namespace only.
        assert!(reg.lookup("bookinfo", &[], "reviews").is_some());
        assert!(reg.lookup("other", &[], "reviews").is_none());
        assert!(
            reg.lookup("other", &[], "reviews.bookinfo.svc.cluster.local")
                .is_some()
        );
        // exportTo "." hides a Service from other namespaces.
        assert!(reg.lookup("bookinfo", &[], "private").is_some());
        assert!(
            reg.lookup("other", &[], "private.bookinfo.svc.cluster.local")
                .is_none()
        );
        // A wildcard ServiceEntry host serves any host under it, with its ports.
        let t = reg
            .lookup("default", &[], "api.example.com")
            .expect("wildcard");
        assert_eq!(t.ports[0].number, 443);
        assert!(reg.lookup("default", &[], "example.com").is_none());
    }
}
