//! The mesh's trust domain and its aliases (`MeshConfig.trustDomain`,
//! `trustDomainAliases`): a principal written with any of them — or with `cluster.local`,
//! which Istio treats as "this mesh" — matches peers of every one of them.

use trellis_api::istio::mesh::MeshConfig;

/// The default trust domain, also the conventional name of "this mesh's" domain.
pub const CLUSTER_LOCAL: &str = "cluster.local";

/// The trust domain first, then its aliases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustDomains(Vec<String>);

impl TrustDomains {
    pub fn of(mesh: &MeshConfig) -> TrustDomains {
        let first = if mesh.trust_domain.is_empty() {
            CLUSTER_LOCAL.to_string()
        } else {
            mesh.trust_domain.clone()
        };
        let mut all = vec![first];
        all.extend(mesh.trust_domain_aliases.iter().cloned());
        TrustDomains(all)
    }

    /// Principals `td/ns/N/sa/S` whose trust domain is this mesh's (or an alias, or
    /// `cluster.local`) become one principal per trust domain of the mesh; anything else
    /// (`*` domains, other shapes, foreign domains) stays as written.
    pub fn replace_aliases(&self, principals: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for p in principals {
            let parts: Vec<&str> = p.split('/').collect();
            let enforced = parts.len() == 5 && parts.first().is_some_and(|td| *td != "*");
            let Some(td) = parts.first().filter(|_| enforced) else {
                out.push(p.clone());
                continue;
            };
            if !(self.0.iter().any(|d| wildcard_eq(td, d)) || *td == CLUSTER_LOCAL) {
                out.push(p.clone());
                continue;
            }
            let rest = parts.get(1..).unwrap_or_default().join("/");
            let mut mine: Vec<String> = Vec::new();
            for d in &self.0 {
                let candidate = if suffix_match(d, td) {
                    p.clone()
                } else {
                    format!("{d}/{rest}")
                };
                if !mine.contains(&candidate) {
                    mine.push(candidate);
                }
            }
            out.extend(mine);
        }
        out
    }

    /// Trust-domain values naming one of the mesh's domains stand for all of them.
    pub fn expand(&self, values: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for v in values {
            let items: Vec<String> = if self.0.contains(v) {
                self.0.clone()
            } else {
                vec![v.clone()]
            };
            for i in items {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
        out
    }
}

/// `a` ends with what follows the `*` that `pattern` starts with.
fn suffix_match(a: &str, pattern: &str) -> bool {
    pattern.strip_prefix('*').is_some_and(|p| a.ends_with(p))
}

/// `a` starts with what precedes the `*` that `pattern` ends with.
fn prefix_match(a: &str, pattern: &str) -> bool {
    pattern.strip_suffix('*').is_some_and(|p| a.starts_with(p))
}

/// Equal, or one covers the other with a leading or trailing `*`.
fn wildcard_eq(a: &str, b: &str) -> bool {
    a == b
        || b == "*"
        || prefix_match(a, b)
        || prefix_match(b, a)
        || suffix_match(a, b)
        || suffix_match(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(td: &str, aliases: &[&str]) -> TrustDomains {
        TrustDomains::of(&MeshConfig {
            trust_domain: td.to_string(),
            trust_domain_aliases: aliases.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    #[test]
    fn principals_follow_the_mesh_trust_domains() {
        let p = |s: &str| vec![s.to_string()];
        let local = bundle("", &[]);
        assert_eq!(
            local.replace_aliases(&p("cluster.local/ns/a/sa/b")),
            p("cluster.local/ns/a/sa/b")
        );
        let td = bundle("td1", &["td2"]);
        assert_eq!(
            td.replace_aliases(&p("cluster.local/ns/a/sa/b")),
            vec!["td1/ns/a/sa/b".to_string(), "td2/ns/a/sa/b".to_string()]
        );
        assert_eq!(
            td.replace_aliases(&p("other/ns/a/sa/b")),
            p("other/ns/a/sa/b")
        );
        assert_eq!(td.replace_aliases(&p("*/ns/a/sa/b")), p("*/ns/a/sa/b"));
        assert_eq!(td.replace_aliases(&p("*")), p("*"));
        assert_eq!(
            td.expand(&p("td2")),
            vec!["td1".to_string(), "td2".to_string()]
        );
    }
}
