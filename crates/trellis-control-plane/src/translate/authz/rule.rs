//! One authorization rule → one RBAC policy, with Istio's structure: a permission per
//! `to` (AND of its fields, then of the permission-side `when` conditions) and a principal
//! per `from` (AND of its fields, then of the principal-side `when` conditions); each
//! field is an OR of its values AND NOT an OR of its `not*` values.
//!
//! What cannot be expressed (an HTTP-only field on a TCP chain, a malformed address) makes
//! an ALLOW rule disappear — it then allows less — and is dropped from a DENY or AUDIT
//! rule, which then matches more: either way the error goes in the safe direction.

use envoy_types::pb::envoy::config::rbac::v3::{Permission, Policy, Principal};
use trellis_api::istio::security::{Rule, Source};

use super::attribute::Attr;
use super::logic::Node;
use super::trust_domain::TrustDomains;

/// The RBAC action a rule is built for; only ALLOW turns errors into a missing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
    Log,
}

/// One field or `when` key with its values.
#[derive(Debug, Clone)]
struct Condition {
    attr: Attr,
    values: Vec<String>,
    not_values: Vec<String>,
}

/// A rule's conditions grouped as Envoy will test them.
#[derive(Debug, Clone)]
pub struct Model {
    permissions: Vec<Vec<Condition>>,
    principals: Vec<Vec<Condition>>,
}

fn push_front(list: &mut Vec<Condition>, attr: Attr, values: &[String], not_values: &[String]) {
    if values.is_empty() && not_values.is_empty() {
        return;
    }
    list.insert(
        0,
        Condition {
            attr,
            values: values.to_vec(),
            not_values: not_values.to_vec(),
        },
    );
}

impl Model {
    /// The model of `rule` of a policy in `namespace`; an unknown `when` key is an error.
    pub fn new(namespace: &str, rule: &Rule, domains: &TrustDomains) -> Result<Model, String> {
        let mut base_permission = Vec::new();
        let mut base_principal = Vec::new();
        for when in &rule.when {
            let attr = Attr::from_key(&when.key, namespace)?;
            let (values, not_values) = match attr {
                Attr::SrcPrincipal => (
                    domains.replace_aliases(&when.values),
                    domains.replace_aliases(&when.not_values),
                ),
                Attr::SrcTrustDomain => (
                    domains.expand(&when.values),
                    domains.expand(&when.not_values),
                ),
                _ => (when.values.clone(), when.not_values.clone()),
            };
            let side = if attr.is_permission() {
                &mut base_permission
            } else {
                &mut base_principal
            };
            side.push(Condition {
                attr,
                values,
                not_values,
            });
        }
        let mut principals = Vec::new();
        for from in &rule.from {
            let mut merged = base_principal.clone();
            if let Some(s) = &from.source {
                source_conditions(&mut merged, s, namespace, domains);
            }
            principals.push(merged);
        }
        if rule.from.is_empty() {
            principals.push(base_principal);
        }
        let mut permissions = Vec::new();
        for to in &rule.to {
            let mut merged = base_permission.clone();
            if let Some(o) = &to.operation {
                push_front(&mut merged, Attr::DestPort, &o.ports, &o.not_ports);
                push_front(&mut merged, Attr::Path, &o.paths, &o.not_paths);
                push_front(&mut merged, Attr::Method, &o.methods, &o.not_methods);
                push_front(&mut merged, Attr::Host, &o.hosts, &o.not_hosts);
            }
            permissions.push(merged);
        }
        if rule.to.is_empty() {
            permissions.push(base_permission);
        }
        Ok(Model {
            permissions,
            principals,
        })
    }

    /// The RBAC policy for a chain (`tcp`: only L4 attributes are available).
    pub fn generate(&self, tcp: bool, action: Action) -> Result<Policy, String> {
        let permissions = self
            .permissions
            .iter()
            .map(|list| combine(list, action, |c| permission_parts(c, tcp)))
            .collect::<Result<Vec<Permission>, String>>()?;
        let principals = self
            .principals
            .iter()
            .map(|list| combine(list, action, |c| principal_parts(c, tcp)))
            .collect::<Result<Vec<Principal>, String>>()?;
        Ok(Policy {
            permissions,
            principals,
            ..Default::default()
        })
    }
}

fn source_conditions(list: &mut Vec<Condition>, s: &Source, namespace: &str, td: &TrustDomains) {
    push_front(list, Attr::SrcIp, &s.ip_blocks, &s.not_ip_blocks);
    push_front(
        list,
        Attr::RemoteIp,
        &s.remote_ip_blocks,
        &s.not_remote_ip_blocks,
    );
    push_front(list, Attr::SrcNamespace, &s.namespaces, &s.not_namespaces);
    push_front(
        list,
        Attr::SrcTrustDomain,
        &td.expand(&s.trust_domains),
        &td.expand(&s.not_trust_domains),
    );
    push_front(
        list,
        Attr::SrcServiceAccount(namespace.to_string()),
        &s.service_accounts,
        &s.not_service_accounts,
    );
    push_front(
        list,
        Attr::RequestPrincipal,
        &s.request_principals,
        &s.not_request_principals,
    );
    push_front(
        list,
        Attr::SrcPrincipal,
        &td.replace_aliases(&s.principals),
        &td.replace_aliases(&s.not_principals),
    );
}

/// AND of every condition's parts (`any` when there are none).
fn combine<T: Node>(
    list: &[Condition],
    action: Action,
    parts: impl Fn(&Condition) -> Parts<T>,
) -> Result<T, String> {
    let mut all = Vec::new();
    for c in list {
        all.extend(checked(action, parts(c))?);
    }
    if all.is_empty() {
        all.push(T::any());
    }
    Ok(T::and(all))
}

/// The matchers of one condition: its values, then its `not*` values (negated).
type Parts<T> = [Group<T>; 2];

/// The matchers for one list of values.
enum Group<T> {
    /// One matcher per value, OR-ed (even a single one, as Istio emits it).
    Each(Vec<Result<T, String>>),
    /// One matcher for all values (JWT claims, metadata); none when there are no values.
    One(Option<Result<T, String>>),
}

/// ALLOW fails on any error; DENY/AUDIT leave the failed matcher out.
fn keep<T>(action: Action, item: Result<T, String>) -> Result<Option<T>, String> {
    match item {
        Ok(node) => Ok(Some(node)),
        Err(e) if action == Action::Allow => Err(e),
        Err(_) => Ok(None),
    }
}

fn checked<T: Node>(action: Action, parts: Parts<T>) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for (i, group) in parts.into_iter().enumerate() {
        let node = match group {
            Group::Each(items) => {
                let mut ok = Vec::new();
                for item in items {
                    ok.extend(keep(action, item)?);
                }
                (!ok.is_empty()).then(|| T::or(ok))
            }
            Group::One(None) => None,
            Group::One(Some(item)) => keep(action, item)?,
        };
        if let Some(node) = node {
            out.push(if i == 1 { T::not(node) } else { node });
        }
    }
    Ok(out)
}

fn permission_parts(c: &Condition, tcp: bool) -> Parts<Permission> {
    if c.attr.is_extended() {
        return extended(c, |values| c.attr.extended_permission(values));
    }
    let each =
        |values: &[String]| Group::Each(values.iter().map(|v| c.attr.permission(v, tcp)).collect());
    [each(&c.values), each(&c.not_values)]
}

fn principal_parts(c: &Condition, tcp: bool) -> Parts<Principal> {
    if c.attr.is_extended() {
        return extended(c, |values| c.attr.extended_principal(values, tcp));
    }
    let each =
        |values: &[String]| Group::Each(values.iter().map(|v| c.attr.principal(v, tcp)).collect());
    [each(&c.values), each(&c.not_values)]
}

fn extended<T>(c: &Condition, build: impl Fn(&[String]) -> Result<T, String>) -> Parts<T> {
    let one = |values: &[String]| Group::One((!values.is_empty()).then(|| build(values)));
    [one(&c.values), one(&c.not_values)]
}
