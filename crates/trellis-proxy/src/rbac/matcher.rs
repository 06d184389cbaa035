//! RBAC evaluation as a pure function: `(rules, attributes) → Decision`, with Envoy's
//! semantics. A policy matches when one of its permissions and one of its principals match;
//! ALLOW allows iff some policy matches, DENY denies iff some policy matches, LOG always
//! allows. The first matching policy by name is reported.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use hyper::HeaderMap;
use serde_json::Value;

use super::config::{
    Action, Cidr, DoubleMatch, Header, MetadataMatch, Permission, Policy, Principal, Rules,
    ValueMatch,
};
use crate::routing::string_matches;

/// Who the peer is, as mTLS proved it. `principal` is the URI SAN of the verified peer
/// certificate (`spiffe://...`); `None` when the connection is not mutual TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    pub principal: Option<String>,
}

/// Dynamic metadata by filter name (`envoy.filters.http.jwt_authn` → `{payload: {...}}`).
pub type Metadata = BTreeMap<String, serde_json::Map<String, Value>>;

/// Istio's filter-state key for the peer's principal (waypoints).
const PEER_PRINCIPAL_KEY: &str = "io.istio.peer_principal";

/// Everything a policy can look at. `request` is `None` for the network filter.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    /// The (original) destination of the connection.
    pub destination: SocketAddr,
    /// The downstream connection's peer.
    pub direct_remote: SocketAddr,
    /// The original client: `x-forwarded-for` processing, else the peer.
    pub remote: IpAddr,
    /// TLS SNI; empty without TLS.
    pub server_name: &'a str,
    pub peer: &'a PeerIdentity,
    pub request: Option<Request<'a>>,
    pub metadata: &'a Metadata,
}

/// The HTTP request as the RBAC filter sees it (after path normalization).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// `:path`: path and query.
    pub path: &'a str,
    pub authority: &'a str,
    pub scheme: &'a str,
    pub headers: &'a HeaderMap,
}

/// The outcome of one set of rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The first matching policy by name, if any.
    pub matched_policy: Option<String>,
}

pub fn evaluate(rules: &Rules, a: &Attributes) -> Decision {
    let matched_policy = rules
        .policies
        .iter()
        .find(|(_, p)| policy_matches(p, a))
        .map(|(name, _)| name.clone());
    let matched = matched_policy.is_some();
    let allowed = match rules.action {
        Action::Allow => matched,
        Action::Deny => !matched,
        Action::Log => true,
    };
    Decision {
        allowed,
        matched_policy,
    }
}

pub fn policy_matches(p: &Policy, a: &Attributes) -> bool {
    p.permissions.iter().any(|x| permission(x, a)) && p.principals.iter().any(|x| principal(x, a))
}

fn permission(p: &Permission, a: &Attributes) -> bool {
    match p {
        Permission::Any => true,
        Permission::And(all) => all.iter().all(|x| permission(x, a)),
        Permission::Or(any) => any.iter().any(|x| permission(x, a)),
        Permission::Not(x) => !permission(x, a),
        Permission::Header(h) => header(h, a),
        Permission::UrlPath(m) => a
            .request
            .is_some_and(|r| string_matches(m, url_path(r.path))),
        Permission::UriTemplate(t) => a
            .request
            .is_some_and(|r| t.regex.is_match(url_path(r.path))),
        Permission::DestinationIp(c) => in_cidr(a.destination.ip(), c),
        Permission::DestinationPort(port) => u32::from(a.destination.port()) == *port,
        Permission::DestinationPortRange(start, end) => {
            (*start..*end).contains(&i64::from(a.destination.port()))
        }
        Permission::Metadata(m) => metadata(m, a.metadata),
        Permission::RequestedServerName(m) => string_matches(m, a.server_name),
    }
}

fn principal(p: &Principal, a: &Attributes) -> bool {
    match p {
        Principal::Any => true,
        Principal::And(all) => all.iter().all(|x| principal(x, a)),
        Principal::Or(any) => any.iter().any(|x| principal(x, a)),
        Principal::Not(x) => !principal(x, a),
        Principal::Authenticated(m) => match (&a.peer.principal, m) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(name), Some(m)) => string_matches(m, name),
        },
        Principal::DirectRemoteIp(c) => in_cidr(a.direct_remote.ip(), c),
        Principal::RemoteIp(c) => in_cidr(a.remote, c),
        Principal::Header(h) => header(h, a),
        Principal::UrlPath(m) => a
            .request
            .is_some_and(|r| string_matches(m, url_path(r.path))),
        Principal::Metadata(m) => metadata(m, a.metadata),
        Principal::FilterState { key, value } => {
            key == PEER_PRINCIPAL_KEY
                && a.peer
                    .principal
                    .as_deref()
                    .is_some_and(|name| string_matches(value, name))
        }
    }
}

/// The path without query and fragment.
fn url_path(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}

/// Envoy's header matching, with the pseudo-headers of the request. Without a request (the
/// network filter) no header matcher matches.
fn header(h: &Header, a: &Attributes) -> bool {
    let Some(r) = a.request else {
        return false;
    };
    let m = &h.matcher;
    let value: Option<String> = match m.name.as_str() {
        ":method" => Some(r.method.to_string()),
        ":path" => Some(r.path.to_string()),
        ":authority" | "host" => Some(r.authority.to_string()),
        ":scheme" => Some(r.scheme.to_string()),
        name => {
            let values: Vec<&str> = r
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            // Envoy matches several values of one header joined by commas.
            (!values.is_empty()).then(|| values.join(","))
        }
    };
    let value = value.or_else(|| h.missing_as_empty.then(String::new));
    let result = match (&value, m.absent) {
        (None, absent) => absent,
        (Some(_), true) => false,
        (Some(v), false) => m.value.as_ref().is_none_or(|sm| string_matches(sm, v)),
    };
    result != m.invert
}

pub fn in_cidr(ip: IpAddr, c: &Cidr) -> bool {
    match (ip, c.network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(c.len)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(c.len)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V4(_)) => ip
            .to_ipv4_mapped()
            .is_some_and(|v4| in_cidr(IpAddr::V4(v4), c)),
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

fn metadata(m: &MetadataMatch, md: &Metadata) -> bool {
    let value = md.get(&m.filter).and_then(|s| {
        let (first, rest) = m.path.split_first()?;
        rest.iter()
            .try_fold(s.get(first)?, |v, key| v.as_object()?.get(key))
    });
    value_matches(&m.value, value) != m.invert
}

/// `value` is `None` when the path leads nowhere (Envoy's unset value).
pub fn value_matches(m: &ValueMatch, value: Option<&Value>) -> bool {
    match (m, value) {
        (ValueMatch::Present(p), v) => *p && v.is_some(),
        (_, None) => false,
        (ValueMatch::Null, Some(v)) => v.is_null(),
        (ValueMatch::Double(d), Some(Value::Number(n))) => n.as_f64().is_some_and(|x| match d {
            DoubleMatch::Exact(e) => x == *e,
            DoubleMatch::Range(start, end) => *start <= x && x < *end,
        }),
        (ValueMatch::String(s), Some(Value::String(v))) => string_matches(s, v),
        (ValueMatch::Bool(b), Some(Value::Bool(v))) => b == v,
        (ValueMatch::ListOneOf(one), Some(Value::Array(items))) => {
            items.iter().any(|i| value_matches(one, Some(i)))
        }
        (ValueMatch::Or(any), v) => any.iter().any(|x| value_matches(x, v)),
        _ => false,
    }
}
