//! Authorization and request authentication: AuthorizationPolicy → Envoy RBAC filters,
//! RequestAuthentication → `jwt_authn` ([`super::authn`]), placed as Istio places them.
//!
//! [`http_filters`] gives the HTTP filters for a proxy's inbound (sidecar) and gateway
//! HTTP connection managers, to go before fault/cors/router, in this order:
//! 1. `envoy.filters.http.rbac` DENY per CUSTOM provider (Trellis calls no external
//!    authorizer; as Istio does for a provider it cannot use, the CUSTOM rules deny);
//! 2. `envoy.filters.http.jwt_authn` (RequestAuthentication);
//! 3. `envoy.filters.http.rbac` with action LOG (AUDIT policies);
//! 4. `envoy.filters.http.rbac` with action DENY;
//! 5. `envoy.filters.http.rbac` with action ALLOW (present as soon as one ALLOW policy
//!    applies: a request no ALLOW rule matches is denied).
//!
//! [`network_filters`] gives the same RBAC filters (`envoy.filters.network.rbac`, stat
//! prefix `tcp.`, without jwt_authn) for inbound TCP chains, before `tcp_proxy`; there,
//! HTTP-only fields make an ALLOW rule vanish and are dropped from DENY/AUDIT rules.
//!
//! - [`select`]: which policies apply to a proxy;
//! - [`rule`]: one rule → one RBAC policy; [`attribute`]: one field's values → matchers;
//!   [`matcher`]: Istio's wildcards as Envoy matchers; [`trust_domain`]: aliases;
//! - [`rbac`]: the filters per action, dry-run, and deterministic encoding.

pub mod attribute;
pub mod logic;
pub mod matcher;
pub mod rbac;
pub mod rule;
pub mod select;
pub mod trust_domain;

use envoy_types::pb::envoy::config::listener::v3::Filter;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpFilterConfig;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use trellis_api::istio::security::{AuthorizationPolicy, AuthorizationPolicyAction};
use trellis_api::{Kind, Resource, Spec};

use super::authn::jwt;
use crate::mesh::MeshSnapshot;
use crate::proxy::{ProxyKind, ProxyNode};
use rbac::{Built, HttpRbac, NetworkRbac, SortedRbac};
use rule::Action;
use trust_domain::TrustDomains;

/// The policies that apply to a proxy, by action.
#[derive(Default)]
struct ByAction<'a> {
    custom: Vec<(&'a Resource, &'a AuthorizationPolicy)>,
    audit: Vec<(&'a Resource, &'a AuthorizationPolicy)>,
    deny: Vec<(&'a Resource, &'a AuthorizationPolicy)>,
    allow: Vec<(&'a Resource, &'a AuthorizationPolicy)>,
}

fn by_action<'a>(mesh: &'a MeshSnapshot, proxy: &ProxyNode) -> ByAction<'a> {
    let mut out = ByAction::default();
    for r in select::for_proxy(mesh, proxy, Kind::AuthorizationPolicy) {
        if let Spec::AuthorizationPolicy(p) = &r.spec {
            let list = match p.action {
                AuthorizationPolicyAction::Custom => &mut out.custom,
                AuthorizationPolicyAction::Audit => &mut out.audit,
                AuthorizationPolicyAction::Deny => &mut out.deny,
                AuthorizationPolicyAction::Allow => &mut out.allow,
            };
            list.push((r, p));
        }
    }
    out
}

/// The RBAC configs in evaluation order: bad CUSTOM, then AUDIT, DENY, ALLOW. The
/// first list goes before `jwt_authn` on HTTP chains.
fn rbac_configs(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    tcp: bool,
) -> (Vec<SortedRbac>, Vec<Built>) {
    let domains = TrustDomains::of(&mesh.mesh);
    let policies = by_action(mesh, proxy);
    let custom = rbac::bad_custom(&policies.custom, tcp, &domains);
    let ordered = [
        (&policies.audit, Action::Log),
        (&policies.deny, Action::Deny),
        (&policies.allow, Action::Allow),
    ]
    .into_iter()
    .filter_map(|(list, action)| rbac::build(list, action, tcp, &domains, ""))
    .collect();
    (custom, ordered)
}

fn http_filter(name: &str, any: Any) -> HttpFilter {
    HttpFilter {
        name: name.to_string(),
        config_type: Some(HttpFilterConfig::TypedConfig(any)),
        ..Default::default()
    }
}

/// The security HTTP filters of `proxy`, in the order of the [module docs](self).
pub fn http_filters(mesh: &MeshSnapshot, proxy: &ProxyNode) -> Vec<HttpFilter> {
    let (custom, ordered) = rbac_configs(mesh, proxy, false);
    let mut out: Vec<HttpFilter> = custom
        .into_iter()
        .map(|rules| {
            let config = HttpRbac {
                rules: Some(rules),
                ..Default::default()
            };
            http_filter(rbac::HTTP_RBAC, pack_any(config))
        })
        .collect();
    let jwt_rules: Vec<_> = select::for_proxy(mesh, proxy, Kind::RequestAuthentication)
        .into_iter()
        .filter_map(|r| match &r.spec {
            Spec::RequestAuthentication(ra) => Some(ra.jwt_rules.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    let gateway = proxy.kind == ProxyKind::Router;
    if let Some(config) = jwt::config(&jwt_rules, &mesh.jwks, gateway) {
        out.push(http_filter(jwt::JWT_AUTHN, pack_any(config)));
    }
    out.extend(
        ordered
            .into_iter()
            .map(|b| http_filter(rbac::HTTP_RBAC, pack_any::<HttpRbac>(b.http()))),
    );
    out
}

/// The RBAC network filters of `proxy` for inbound TCP chains, before `tcp_proxy`.
pub fn network_filters(mesh: &MeshSnapshot, proxy: &ProxyNode) -> Vec<Filter> {
    let (custom, ordered) = rbac_configs(mesh, proxy, true);
    let custom = custom.into_iter().map(|rules| NetworkRbac {
        rules: Some(rules),
        stat_prefix: rbac::TCP_STAT_PREFIX.to_string(),
        ..Default::default()
    });
    custom
        .chain(ordered.into_iter().map(Built::network))
        .map(|config| Filter {
            name: rbac::NETWORK_RBAC.to_string(),
            config_type: Some(ConfigType::TypedConfig(pack_any(config))),
        })
        .collect()
}

#[cfg(test)]
mod tests;
