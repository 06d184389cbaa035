//! PeerAuthentication resolution, as Istio composes it: the mesh-wide policy (root
//! namespace, no selector), the namespace policy (no selector) and the workload policy (a
//! selector matching the workload's labels, outside the root namespace) are layered in that
//! order; `UNSET` inherits from the layer above, and with nothing set the mode is
//! PERMISSIVE. A workload policy's `portLevelMtls` overrides the mode per workload port
//! (`UNSET` there inherits the workload's mode).
//!
//! When a layer has several candidates Istio takes the oldest; objects here carry no
//! creation time, so the first by namespace and name wins (the store's order).

use std::collections::BTreeMap;
use std::sync::Arc;

use trellis_api::istio::security::{
    PeerAuthentication, PeerAuthenticationMutualTls, PeerAuthenticationMutualTlsMode as PaMode,
};
use trellis_api::{Kind, Resource, Spec};
use trellis_config::store::Snapshot;

use crate::registry::build::selects;

/// The mutual TLS a workload accepts on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// Plain text only.
    Disable,
    /// Both mutual TLS and plain text.
    Permissive,
    /// Mutual TLS only.
    Strict,
}

/// The mode a policy's `mtls` sets, `None` when it inherits (absent or `UNSET`).
fn mode_of(mtls: Option<&PeerAuthenticationMutualTls>) -> Option<Mode> {
    match mtls?.mode {
        PaMode::Unset => None,
        PaMode::Disable => Some(Mode::Disable),
        PaMode::Permissive => Some(Mode::Permissive),
        PaMode::Strict => Some(Mode::Strict),
    }
}

/// A workload's effective peer authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// The workload-wide mode.
    pub mode: Mode,
    /// Overrides by workload (container) port.
    pub ports: BTreeMap<u32, Mode>,
}

impl Effective {
    /// The mode on one workload port.
    pub fn for_port(&self, port: u32) -> Mode {
        self.ports.get(&port).copied().unwrap_or(self.mode)
    }
}

/// Every PeerAuthentication of the mesh, indexed once per push.
#[derive(Debug, Clone, Default)]
pub struct PeerAuthentications {
    root_namespace: String,
    /// `(namespace, policy)` in the store's order (namespace, then name).
    policies: Vec<(String, Arc<Resource>)>,
}

impl PeerAuthentications {
    /// Indexes the PeerAuthentications of a configuration snapshot.
    pub fn new(config: &Snapshot, root_namespace: &str) -> Self {
        PeerAuthentications {
            root_namespace: root_namespace.to_string(),
            policies: config
                .of_kind(Kind::PeerAuthentication)
                .map(|r| (r.meta.namespace.clone(), r.clone()))
                .collect(),
        }
    }

    fn specs(&self) -> impl Iterator<Item = (&str, &PeerAuthentication)> {
        self.policies.iter().filter_map(|(ns, r)| match &r.spec {
            Spec::PeerAuthentication(pa) => Some((ns.as_str(), pa)),
            _ => None,
        })
    }

    /// The first selector-less policy of a namespace.
    fn namespace_wide(&self, namespace: &str) -> Option<&PeerAuthentication> {
        self.specs()
            .find(|(ns, pa)| *ns == namespace && selector(pa).is_none())
            .map(|(_, pa)| pa)
    }

    /// The mode the mesh-wide and namespace-wide policies give a namespace. This is what a
    /// client assumes of a destination in that namespace (Istio's auto mTLS does not look
    /// at workload policies).
    pub fn namespace_mode(&self, namespace: &str) -> Mode {
        compose(
            self.namespace_wide(&self.root_namespace),
            (namespace != self.root_namespace)
                .then(|| self.namespace_wide(namespace))
                .flatten(),
            None,
        )
        .mode
    }

    /// The effective peer authentication of a workload in `namespace` with `labels`.
    pub fn for_workload(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Effective {
        let workload = (namespace != self.root_namespace)
            .then(|| {
                self.specs()
                    .find(|(ns, pa)| {
                        *ns == namespace && selector(pa).is_some_and(|s| selects(s, labels))
                    })
                    .map(|(_, pa)| pa)
            })
            .flatten();
        compose(
            self.namespace_wide(&self.root_namespace),
            (namespace != self.root_namespace)
                .then(|| self.namespace_wide(namespace))
                .flatten(),
            workload,
        )
    }
}

/// A policy's non-empty `selector.matchLabels`.
fn selector(pa: &PeerAuthentication) -> Option<&BTreeMap<String, String>> {
    pa.selector
        .as_ref()
        .map(|s| &s.match_labels)
        .filter(|l| !l.is_empty())
}

/// Layers mesh, namespace and workload policies (each may be absent).
fn compose(
    mesh: Option<&PeerAuthentication>,
    namespace: Option<&PeerAuthentication>,
    workload: Option<&PeerAuthentication>,
) -> Effective {
    // The most specific layer that sets a mode wins.
    let mode = [workload, namespace, mesh]
        .into_iter()
        .flatten()
        .find_map(|pa| mode_of(pa.mtls.as_ref()))
        .unwrap_or(Mode::Permissive);
    let ports = workload
        .map(|pa| {
            pa.port_level_mtls
                .iter()
                .map(|(port, mtls)| (*port, mode_of(Some(mtls)).unwrap_or(mode)))
                .collect()
        })
        .unwrap_or_default();
    Effective { mode, ports }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::snapshot;

    fn policy(ns: &str, name: &str, body: &str) -> String {
        format!(
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
             metadata: {{name: {name}, namespace: {ns}}}\nspec: {body}\n---\n"
        )
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn index(yaml: &str) -> PeerAuthentications {
        PeerAuthentications::new(&snapshot(yaml), "istio-system")
    }

    /// Policies (YAML), workload namespace, workload labels, port, expected mode.
    type Case<'a> = (String, &'a str, &'a BTreeMap<String, String>, u32, Mode);

    #[test]
    fn effective_mode_table() {
        use Mode::*;
        let mesh_strict = policy("istio-system", "default", "{mtls: {mode: STRICT}}");
        let mesh_unset = policy("istio-system", "default", "{}");
        let mesh_disable = policy("istio-system", "default", "{mtls: {mode: DISABLE}}");
        let ns_permissive = policy("shop", "default", "{mtls: {mode: PERMISSIVE}}");
        let ns_unset = policy("shop", "default", "{mtls: {}}");
        let ns_strict = policy("shop", "default", "{mtls: {mode: STRICT}}");
        let wl_disable_port = policy(
            "shop",
            "reviews",
            "{selector: {matchLabels: {app: reviews}}, portLevelMtls: {9080: {mode: DISABLE}, 9090: {mode: UNSET}}}",
        );
        let wl_strict = policy(
            "shop",
            "reviews",
            "{selector: {matchLabels: {app: reviews}}, mtls: {mode: STRICT}}",
        );
        let root_selector = policy(
            "istio-system",
            "selected",
            "{selector: {matchLabels: {app: reviews}}, mtls: {mode: DISABLE}}",
        );
        let reviews = labels(&[("app", "reviews")]);
        let other = labels(&[("app", "ratings")]);
        let cases: Vec<Case> = vec![
            (String::new(), "shop", &reviews, 9080, Permissive),
            (mesh_strict.clone(), "shop", &reviews, 9080, Strict),
            (mesh_unset.clone(), "shop", &reviews, 9080, Permissive),
            (mesh_disable.clone(), "other", &reviews, 9080, Disable),
            (
                mesh_strict.clone() + &ns_permissive,
                "shop",
                &reviews,
                9080,
                Permissive,
            ),
            (
                mesh_strict.clone() + &ns_unset,
                "shop",
                &reviews,
                9080,
                Strict,
            ),
            (
                mesh_strict.clone() + &ns_permissive,
                "other",
                &reviews,
                9080,
                Strict,
            ),
            (
                ns_strict.clone() + &wl_disable_port,
                "shop",
                &reviews,
                9080,
                Disable,
            ),
            // UNSET on a port inherits the workload's (here: the namespace's) mode.
            (
                ns_strict.clone() + &wl_disable_port,
                "shop",
                &reviews,
                9090,
                Strict,
            ),
            (
                ns_strict.clone() + &wl_disable_port,
                "shop",
                &reviews,
                8080,
                Strict,
            ),
            (
                ns_strict.clone() + &wl_disable_port,
                "shop",
                &other,
                9080,
                Strict,
            ),
            (
                mesh_disable.clone() + &wl_strict,
                "shop",
                &reviews,
                9080,
                Strict,
            ),
            // Selectors in the root namespace are not workload policies.
            (
                mesh_strict.clone() + &root_selector,
                "shop",
                &reviews,
                9080,
                Strict,
            ),
            // The root namespace's own workloads get the mesh policy.
            (mesh_strict.clone(), "istio-system", &reviews, 9080, Strict),
        ];
        for (i, (yaml, ns, labels, port, want)) in cases.into_iter().enumerate() {
            let got = index(&yaml).for_workload(ns, labels).for_port(port);
            assert_eq!(got, want, "case {i}: {yaml}");
        }
    }

    #[test]
    fn namespace_mode_ignores_workload_policies() {
        let yaml = policy("istio-system", "default", "{mtls: {mode: STRICT}}")
            + &policy("legacy", "default", "{mtls: {mode: DISABLE}}")
            + &policy(
                "shop",
                "wl",
                "{selector: {matchLabels: {app: a}}, mtls: {mode: DISABLE}}",
            );
        let idx = index(&yaml);
        assert_eq!(idx.namespace_mode("legacy"), Mode::Disable);
        assert_eq!(idx.namespace_mode("shop"), Mode::Strict);
        assert_eq!(index("").namespace_mode("shop"), Mode::Permissive);
    }

    #[test]
    fn the_first_namespace_policy_wins() {
        let yaml = policy("shop", "a", "{mtls: {mode: DISABLE}}")
            + &policy("shop", "b", "{mtls: {mode: STRICT}}");
        let got = index(&yaml).for_workload("shop", &BTreeMap::new());
        assert_eq!(got.mode, Mode::Disable);
    }
}
