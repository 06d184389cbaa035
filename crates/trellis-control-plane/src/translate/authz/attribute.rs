//! Each thing an authorization rule can test (a `from.source` or `to.operation` field or a
//! `when` key) and how one value of it becomes an Envoy RBAC permission or principal.
//!
//! An `Err` says the value cannot be expressed here (an HTTP-only attribute on a TCP chain,
//! a malformed address or port); the rule decides what that means for its action.

#![allow(deprecated)] // RBAC's `Principal::Metadata`, which Istio still emits.

use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::rbac::v3::principal::{Authenticated, Identifier};
use envoy_types::pb::envoy::config::rbac::v3::{Permission, Principal, permission};
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::{MetadataMatcher, StringMatcher};
use envoy_types::util::pack_any;

use super::logic::Node;
use super::matcher::{self as m, quote_meta};

/// The scheme of every SPIFFE identity.
const SPIFFE: &str = "spiffe://";

/// What a rule tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    // Permissions: what is asked for.
    Host,
    Method,
    Path,
    DestIp,
    DestPort,
    ConnSni,
    /// `experimental.envoy.filters.<filter>[<key>]`: dynamic metadata, as written.
    EnvoyFilter(String),
    // Principals: who asks.
    SrcIp,
    RemoteIp,
    SrcNamespace,
    SrcTrustDomain,
    /// Service accounts without a namespace belong to the policy's namespace.
    SrcServiceAccount(String),
    SrcPrincipal,
    RequestPrincipal,
    RequestAudiences,
    RequestPresenter,
    /// `request.headers[<name>]`, the whole key.
    RequestHeader(String),
    /// `request.auth.claims[<a>][<b>]...`, the whole key.
    RequestClaims(String),
}

impl Attr {
    /// The attribute a `when` key names.
    pub fn from_key(key: &str, policy_namespace: &str) -> Result<Attr, String> {
        Ok(match key {
            "destination.ip" => Attr::DestIp,
            "destination.port" => Attr::DestPort,
            "connection.sni" => Attr::ConnSni,
            "source.ip" => Attr::SrcIp,
            "remote.ip" => Attr::RemoteIp,
            "source.namespace" => Attr::SrcNamespace,
            "source.trustDomain" => Attr::SrcTrustDomain,
            "source.serviceAccount" => Attr::SrcServiceAccount(policy_namespace.to_string()),
            "source.principal" => Attr::SrcPrincipal,
            "request.auth.principal" => Attr::RequestPrincipal,
            "request.auth.audiences" => Attr::RequestAudiences,
            "request.auth.presenter" => Attr::RequestPresenter,
            k if k.starts_with("experimental.envoy.filters.") => Attr::EnvoyFilter(k.to_string()),
            k if k.starts_with("request.headers") => Attr::RequestHeader(k.to_string()),
            k if k.starts_with("request.auth.claims") => Attr::RequestClaims(k.to_string()),
            k => return Err(format!("unknown attribute {k}")),
        })
    }

    /// True for what describes the request (permission), false for the requester.
    pub fn is_permission(&self) -> bool {
        matches!(
            self,
            Attr::Host
                | Attr::Method
                | Attr::Path
                | Attr::DestIp
                | Attr::DestPort
                | Attr::ConnSni
                | Attr::EnvoyFilter(_)
        )
    }

    /// Attributes whose values are combined into one matcher rather than OR-ed one by one.
    pub fn is_extended(&self) -> bool {
        matches!(
            self,
            Attr::EnvoyFilter(_)
                | Attr::RequestPrincipal
                | Attr::RequestAudiences
                | Attr::RequestPresenter
                | Attr::RequestClaims(_)
        )
    }

    fn http_only(&self, tcp: bool) -> Result<(), String> {
        let http = matches!(
            self,
            Attr::Host
                | Attr::Method
                | Attr::Path
                | Attr::RequestPrincipal
                | Attr::RequestAudiences
                | Attr::RequestPresenter
                | Attr::RequestHeader(_)
                | Attr::RequestClaims(_)
        );
        if tcp && http {
            Err(format!("{self:?} is HTTP only"))
        } else {
            Ok(())
        }
    }

    /// One value of a permission attribute.
    pub fn permission(&self, v: &str, tcp: bool) -> Result<Permission, String> {
        self.http_only(tcp)?;
        use permission::Rule;
        let rule = match self {
            Attr::Host => Rule::Header(m::header(":authority", v, true)),
            Attr::Method => Rule::Header(m::header(":method", v, false)),
            Attr::Path if is_path_template(v) => Rule::UriTemplate(TypedExtensionConfig {
                name: "uri-template".to_string(),
                typed_config: Some(pack_any(UriTemplateMatchConfig {
                    path_template: v.replace("{**}", "**").replace("{*}", "*"),
                })),
            }),
            Attr::Path => Rule::UrlPath(m::path(v)),
            Attr::DestIp => Rule::DestinationIp(m::cidr(v)?),
            Attr::DestPort => Rule::DestinationPort(port(v)?),
            Attr::ConnSni => Rule::RequestedServerName(m::plain(v)),
            _ => return Err(format!("{self:?} is not a permission")),
        };
        Ok(Permission { rule: Some(rule) })
    }

    /// All values of an extended permission attribute, as one permission.
    pub fn extended_permission(&self, values: &[String]) -> Result<Permission, String> {
        let Attr::EnvoyFilter(key) = self else {
            return Err(format!("{self:?} is not an extended permission"));
        };
        let (filter, field) = envoy_filter_key(key)?;
        let matchers = values
            .iter()
            .map(
                |v| match v.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                    Some(item) => m::list_one_of(m::string_value(m::plain(item))),
                    None => m::string_value(m::plain(v)),
                },
            )
            .collect();
        Ok(Permission {
            rule: Some(permission::Rule::Metadata(m::metadata(
                filter,
                &[field],
                m::or_values(matchers),
            ))),
        })
    }

    /// One value of a principal attribute.
    pub fn principal(&self, v: &str, tcp: bool) -> Result<Principal, String> {
        self.http_only(tcp)?;
        let id = match self {
            Attr::SrcIp => Identifier::DirectRemoteIp(m::cidr(v)?),
            Attr::RemoteIp => Identifier::RemoteIp(m::cidr(v)?),
            Attr::SrcNamespace => {
                let ns = v.split('*').map(quote_meta).collect::<Vec<_>>().join(".*");
                authenticated(m::regex(&format!(".*/ns/{ns}/.*")))
            }
            Attr::SrcTrustDomain => authenticated(trust_domain(v)),
            Attr::SrcServiceAccount(policy_ns) => {
                let (ns, sa) = v.split_once('/').unwrap_or((policy_ns, v));
                authenticated(m::regex(&format!(
                    "spiffe://.+/ns/{}/(.+/|)sa/{}(/.+)?",
                    quote_meta(ns),
                    quote_meta(sa)
                )))
            }
            Attr::SrcPrincipal => authenticated(m::with_prefix(v, SPIFFE)),
            Attr::RequestHeader(key) => {
                let name = in_brackets(key.trim_start_matches("request.headers"))?;
                Identifier::Header(m::header(name, v, false))
            }
            _ => return Err(format!("{self:?} is not a principal")),
        };
        Ok(Principal {
            identifier: Some(id),
        })
    }

    /// All values of an extended principal attribute (JWT claims), as one principal.
    pub fn extended_principal(&self, values: &[String], tcp: bool) -> Result<Principal, String> {
        self.http_only(tcp)?;
        let claim = |claims: &[&str]| metadata(m::jwt_claims(claims, m::or_strings(values)));
        match self {
            Attr::RequestPrincipal => {
                let mut each: Vec<Principal> =
                    values.iter().map(|v| request_principal(v)).collect();
                match each.pop() {
                    Some(one) if each.is_empty() => Ok(one),
                    Some(last) => {
                        each.push(last);
                        Ok(Principal::or(each))
                    }
                    None => Err("no request principal".to_string()),
                }
            }
            Attr::RequestAudiences => Ok(claim(&["aud"])),
            Attr::RequestPresenter => Ok(claim(&["azp"])),
            Attr::RequestClaims(key) => {
                let claims = nested_brackets(key.trim_start_matches("request.auth.claims"))?;
                Ok(claim(&claims))
            }
            _ => Err(format!("{self:?} is not an extended principal")),
        }
    }
}

/// A request principal `iss/sub` (the last `/` splits, issuers may be URLs), with `*`.
fn request_principal(v: &str) -> Principal {
    let split = v.rfind('/').map(|i| (&v[..i], &v[i + 1..]));
    let (iss, sub): (StringMatcher, StringMatcher) = if v == "*" {
        (m::any_value(), m::any_value())
    } else if let Some(rest) = v.strip_prefix('*') {
        match split {
            Some(("*", sub)) => (m::any_value(), m::exact(sub, false)),
            Some((iss, sub)) => (m::suffix(&iss[1..], false), m::exact(sub, false)),
            None => (m::any_value(), m::suffix(rest, false)),
        }
    } else if let Some(rest) = v.strip_suffix('*') {
        match split {
            Some((iss, "*")) => (m::exact(iss, false), m::any_value()),
            Some((iss, sub)) => (
                m::exact(iss, false),
                m::prefix(sub.strip_suffix('*').unwrap_or(sub), false),
            ),
            None => (m::prefix(rest, false), m::any_value()),
        }
    } else {
        let (iss, sub) = split.unwrap_or((v, ""));
        (m::exact(iss, false), m::exact(sub, false))
    };
    Principal::and(vec![
        metadata(m::jwt_claim_string("iss", iss)),
        metadata(m::jwt_claim_string("sub", sub)),
    ])
}

fn trust_domain(v: &str) -> StringMatcher {
    if v == "*" {
        return m::prefix(SPIFFE, false);
    }
    match v.split_once('*') {
        None => m::prefix(&format!("{SPIFFE}{v}/"), false),
        Some((head, tail)) => m::regex(&format!(
            "spiffe://{}[^/]*{}/.*",
            quote_meta(head),
            quote_meta(tail)
        )),
    }
}

fn authenticated(name: StringMatcher) -> Identifier {
    Identifier::Authenticated(Authenticated {
        principal_name: Some(name),
    })
}

fn metadata(matcher: MetadataMatcher) -> Principal {
    Principal {
        identifier: Some(Identifier::Metadata(matcher)),
    }
}

/// Istio's path templates: `{*}` one segment, `{**}` any number.
pub fn is_path_template(path: &str) -> bool {
    path.contains("{*}") || path.contains("{**}")
}

fn port(v: &str) -> Result<u32, String> {
    v.parse::<u32>()
        .ok()
        .filter(|p| *p <= 65535 && !v.starts_with('+'))
        .ok_or_else(|| format!("invalid port {v:?}"))
}

/// `[name]` → `name`.
fn in_brackets(s: &str) -> Result<&str, String> {
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| format!("expecting format [<NAME>], but found {s}"))
}

/// `[a][b]` → `[a, b]`; anything else that is one `[...]` is a single name.
fn nested_brackets(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let parsed = rest
            .strip_prefix('[')
            .and_then(|r| r.find(['[', ']']).map(|i| (r, i)))
            .filter(|(r, i)| r.as_bytes().get(*i) == Some(&b']'));
        match parsed {
            Some((r, i)) => {
                out.push(&r[..i]);
                rest = &r[i + 1..];
            }
            None => return in_brackets(s).map(|one| vec![one]),
        }
    }
    if out.is_empty() {
        return in_brackets(s).map(|one| vec![one]);
    }
    Ok(out)
}

/// `experimental.envoy.filters.a.b[c]` → (`envoy.filters.a.b`, `c`).
fn envoy_filter_key(key: &str) -> Result<(&str, &str), String> {
    let inner = key.strip_prefix("experimental.").unwrap_or(key);
    let inner = inner.strip_suffix(']').unwrap_or(inner);
    inner
        .split_once('[')
        .ok_or_else(|| format!("invalid key: {key}"))
}

impl Node for Permission {
    fn any() -> Self {
        Permission {
            rule: Some(permission::Rule::Any(true)),
        }
    }
    fn and(items: Vec<Self>) -> Self {
        Permission {
            rule: Some(permission::Rule::AndRules(permission::Set { rules: items })),
        }
    }
    fn or(items: Vec<Self>) -> Self {
        Permission {
            rule: Some(permission::Rule::OrRules(permission::Set { rules: items })),
        }
    }
    fn not(item: Self) -> Self {
        Permission {
            rule: Some(permission::Rule::NotRule(Box::new(item))),
        }
    }
}

impl Node for Principal {
    fn any() -> Self {
        Principal {
            identifier: Some(Identifier::Any(true)),
        }
    }
    fn and(items: Vec<Self>) -> Self {
        use envoy_types::pb::envoy::config::rbac::v3::principal::Set;
        Principal {
            identifier: Some(Identifier::AndIds(Set { ids: items })),
        }
    }
    fn or(items: Vec<Self>) -> Self {
        use envoy_types::pb::envoy::config::rbac::v3::principal::Set;
        Principal {
            identifier: Some(Identifier::OrIds(Set { ids: items })),
        }
    }
    fn not(item: Self) -> Self {
        Principal {
            identifier: Some(Identifier::NotId(Box::new(item))),
        }
    }
}
