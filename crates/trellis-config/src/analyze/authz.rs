//! AuthorizationPolicies that select no workload (IST0127) or name namespaces that do not
//! exist (IST0101).

use trellis_api::{Kind, Resource};

use super::messages as m;
use super::workload::{pod_in_ambient, pod_in_mesh};
use super::{Context, Message, selector};

fn namespace_matches(ns: &str, pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return ns.ends_with(suffix);
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return ns.starts_with(prefix);
    }
    ns.eq_ignore_ascii_case(pattern)
}

pub fn authorization_policies(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let root = if ctx.mesh.root_namespace.is_empty() {
        "istio-system"
    } else {
        ctx.mesh.root_namespace.as_str()
    };
    let mesh_pods: Vec<&Resource> = ctx
        .pods()
        .map(|(p, _)| p)
        .filter(|p| pod_in_mesh(ctx, p) || pod_in_ambient(p))
        .collect();
    let namespaces: Vec<&str> = ctx
        .resources
        .iter()
        .filter(|r| r.kind() == Kind::Namespace)
        .map(|r| r.meta.name.as_str())
        .collect();
    for (r, ap) in ctx.authorization_policies() {
        let ns = r.meta.namespace.as_str();
        let sel = ap.selector.as_ref().map(|s| &s.match_labels);
        let in_ns = |p: &&&Resource| ns == root || p.meta.namespace == ns;
        let selected = |sel: &std::collections::BTreeMap<String, String>| {
            mesh_pods
                .iter()
                .filter(in_ns)
                .any(|p| selector::matches(sel, &p.meta.labels))
        };
        match sel {
            Some(sel) if !selected(sel) => {
                out.push(m::no_matching_workloads(r, &selector::to_string(sel)));
            }
            None if ns != root && !mesh_pods.iter().any(|p| p.meta.namespace == ns) => {
                out.push(m::no_matching_workloads(r, ""));
            }
            _ => {}
        }
        for rule in &ap.rules {
            for from in &rule.from {
                let Some(src) = &from.source else { continue };
                for pattern in src.namespaces.iter().chain(&src.not_namespaces) {
                    if !namespaces.iter().any(|n| namespace_matches(n, pattern)) {
                        out.push(m::referenced_resource_not_found(r, "namespace", pattern));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::namespace_matches;

    #[test]
    fn namespace_patterns() {
        assert!(namespace_matches("prod-a", "prod-*"));
        assert!(namespace_matches("a-prod", "*-prod"));
        assert!(namespace_matches("any", "*"));
        assert!(!namespace_matches("dev", "prod"));
    }
}
