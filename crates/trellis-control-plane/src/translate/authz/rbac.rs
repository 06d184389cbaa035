//! The RBAC filters of one proxy from the policies that apply to it, one filter per
//! action in Istio's order — AUDIT (Envoy `LOG`), DENY, ALLOW — after any CUSTOM one.
//!
//! Each rule of a policy becomes the RBAC policy `ns[NS]-policy[NAME]-rule[I]`; a policy
//! without rules becomes one that never matches (an ALLOW policy without rules thus denies
//! everything it selects). Policies annotated `istio.io/dry-run: "true"` go to
//! `shadow_rules` (evaluated, logged, never enforced).
//!
//! Envoy's RBAC messages hold their policies in a protobuf map, which prost encodes in
//! `HashMap` order; [`SortedRbac`] and the two filter messages here are wire-compatible
//! twins with ordered maps, so that the same policies always give the same bytes.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::rbac::v3::{Permission, Policy, Principal};
use trellis_api::Resource;
use trellis_api::istio::security::AuthorizationPolicy;

use super::logic::Node;
use super::rule::{Action, Model};
use super::trust_domain::TrustDomains;

pub const HTTP_RBAC: &str = "envoy.filters.http.rbac";
pub const NETWORK_RBAC: &str = "envoy.filters.network.rbac";
/// Istio's stat prefix of the TCP RBAC filter.
pub const TCP_STAT_PREFIX: &str = "tcp.";
const DRY_RUN_ALLOW_PREFIX: &str = "istio_dry_run_allow_";
const DRY_RUN_DENY_PREFIX: &str = "istio_dry_run_deny_";
/// The annotation that makes a policy a dry run.
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";
/// Name prefix and suffix of CUSTOM rules that are enforced as DENY (no provider).
const EXT_AUTHZ_PREFIX: &str = "istio-ext-authz";
const BAD_CUSTOM_SUFFIX: &str = "-deny-due-to-bad-CUSTOM-action";

/// `envoy.config.rbac.v3.RBAC` with its policies in name order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SortedRbac {
    #[prost(int32, tag = "1")]
    pub action: i32,
    #[prost(btree_map = "string, message", tag = "2")]
    pub policies: BTreeMap<String, Policy>,
}

/// `envoy.extensions.filters.http.rbac.v3.RBAC` (the fields Trellis sets).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpRbac {
    #[prost(message, optional, tag = "1")]
    pub rules: Option<SortedRbac>,
    #[prost(message, optional, tag = "2")]
    pub shadow_rules: Option<SortedRbac>,
    #[prost(string, tag = "3")]
    pub shadow_rules_stat_prefix: String,
}

impl prost::Name for HttpRbac {
    const NAME: &'static str = "RBAC";
    const PACKAGE: &'static str = "envoy.extensions.filters.http.rbac.v3";

    fn type_url() -> String {
        format!("type.googleapis.com/{}", Self::full_name())
    }
}

/// `envoy.extensions.filters.network.rbac.v3.RBAC` (the fields Trellis sets).
#[derive(Clone, PartialEq, prost::Message)]
pub struct NetworkRbac {
    #[prost(message, optional, tag = "1")]
    pub rules: Option<SortedRbac>,
    #[prost(message, optional, tag = "2")]
    pub shadow_rules: Option<SortedRbac>,
    #[prost(string, tag = "3")]
    pub stat_prefix: String,
    #[prost(string, tag = "5")]
    pub shadow_rules_stat_prefix: String,
}

impl prost::Name for NetworkRbac {
    const NAME: &'static str = "RBAC";
    const PACKAGE: &'static str = "envoy.extensions.filters.network.rbac.v3";

    fn type_url() -> String {
        format!("type.googleapis.com/{}", Self::full_name())
    }
}

/// Envoy's RBAC action numbers.
fn action_number(action: Action) -> i32 {
    match action {
        Action::Allow => 0,
        Action::Deny => 1,
        Action::Log => 2,
    }
}

/// Enforced and dry-run rules of one action.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub rules: Option<SortedRbac>,
    pub shadow: Option<SortedRbac>,
}

impl Built {
    /// Istio names the stat prefix after the shadow rules' action (ALLOW when none).
    fn shadow_prefix(&self) -> String {
        let deny = self
            .shadow
            .as_ref()
            .is_some_and(|s| s.action == action_number(Action::Deny));
        if deny {
            DRY_RUN_DENY_PREFIX
        } else {
            DRY_RUN_ALLOW_PREFIX
        }
        .to_string()
    }

    pub fn http(self) -> HttpRbac {
        HttpRbac {
            shadow_rules_stat_prefix: self.shadow_prefix(),
            rules: self.rules,
            shadow_rules: self.shadow,
        }
    }

    pub fn network(self) -> NetworkRbac {
        NetworkRbac {
            shadow_rules_stat_prefix: self.shadow_prefix(),
            stat_prefix: TCP_STAT_PREFIX.to_string(),
            rules: self.rules,
            shadow_rules: self.shadow,
        }
    }
}

/// True when the policy is annotated as a dry run (Go's `strconv.ParseBool` spellings).
pub fn is_dry_run(resource: &Resource) -> bool {
    matches!(
        resource
            .meta
            .annotations
            .get(DRY_RUN_ANNOTATION)
            .map(String::as_str),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True")
    )
}

/// A policy that matches nothing.
fn never() -> Policy {
    Policy {
        permissions: vec![Permission::not(Permission::any())],
        principals: vec![Principal::not(Principal::any())],
        ..Default::default()
    }
}

/// The RBAC policy name of rule `index` of a policy (`prefix` for CUSTOM ones).
pub fn policy_name(prefix: &str, resource: &Resource, index: usize) -> String {
    format!(
        "{prefix}ns[{}]-policy[{}]-rule[{index}]",
        resource.meta.namespace, resource.meta.name
    )
}

/// The rules of `policies` for `action`; `None` when there are no policies.
pub fn build(
    policies: &[(&Resource, &AuthorizationPolicy)],
    action: Action,
    tcp: bool,
    domains: &TrustDomains,
    prefix: &str,
) -> Option<Built> {
    if policies.is_empty() {
        return None;
    }
    let empty = || SortedRbac {
        action: action_number(action),
        policies: BTreeMap::new(),
    };
    let (mut rules, mut shadow) = (None::<SortedRbac>, None::<SortedRbac>);
    for (resource, policy) in policies {
        let target = if is_dry_run(resource) {
            shadow.get_or_insert_with(empty)
        } else {
            rules.get_or_insert_with(empty)
        };
        for (i, rule) in policy.rules.iter().enumerate() {
            let name = policy_name(prefix, resource, i);
            let generated = Model::new(&resource.meta.namespace, rule, domains)
                .and_then(|m| m.generate(tcp, action));
            match generated {
                Ok(p) => {
                    target.policies.insert(name, p);
                }
                Err(e) => tracing::debug!(rule = %name, tcp, "rule skipped: {e}"),
            }
        }
        if policy.rules.is_empty() {
            target
                .policies
                .insert(policy_name(prefix, resource, 0), never());
        }
    }
    Some(Built { rules, shadow })
}

/// CUSTOM policies whose provider Trellis cannot call: their rules are enforced as DENY,
/// one filter per provider (sorted), as Istio does for a provider it cannot find — a
/// request the CUSTOM policy would have sent to the provider is refused, never let
/// through unchecked. Dry-run CUSTOM policies are left out.
pub fn bad_custom(
    policies: &[(&Resource, &AuthorizationPolicy)],
    tcp: bool,
    domains: &TrustDomains,
) -> Vec<SortedRbac> {
    let mut by_provider: BTreeMap<&str, Vec<(&Resource, &AuthorizationPolicy)>> = BTreeMap::new();
    for (r, p) in policies.iter().filter(|(r, _)| !is_dry_run(r)) {
        let provider = p.provider.as_ref().map_or("", |p| p.name.as_str());
        by_provider.entry(provider).or_default().push((r, p));
    }
    by_provider
        .into_iter()
        .filter_map(|(provider, list)| {
            let prefix = if provider.is_empty() {
                format!("{EXT_AUTHZ_PREFIX}-")
            } else {
                format!("{EXT_AUTHZ_PREFIX}-{provider}-")
            };
            let built = build(&list, Action::Deny, tcp, domains, &prefix)?;
            let rules = built.rules?;
            Some(SortedRbac {
                action: action_number(Action::Deny),
                policies: rules
                    .policies
                    .into_iter()
                    .map(|(k, v)| (format!("{k}{BAD_CUSTOM_SUFFIX}"), v))
                    .collect(),
            })
        })
        .collect()
}
