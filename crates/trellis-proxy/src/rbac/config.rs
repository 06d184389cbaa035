//! Envoy's RBAC policy (`envoy.config.rbac.v3.RBAC`) as the proxy's own immutable types:
//! what [`super::convert`] builds from the HTTP and network RBAC filters and what
//! [`super::matcher`] evaluates. No protobuf here.

use std::net::IpAddr;

use regex::Regex;

use crate::config::{HeaderMatcher, StringMatch};

/// One RBAC filter: the enforced rules, the shadow rules (evaluated, counted, never
/// enforced) and the prefixes of their counters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rbac {
    /// `None`: nothing is enforced (every request passes).
    pub rules: Option<Rules>,
    pub shadow_rules: Option<Rules>,
    /// Inserted before `allowed`/`denied` (HTTP filter only).
    pub rules_stat_prefix: String,
    /// Inserted before `shadow_allowed`/`shadow_denied`.
    pub shadow_rules_stat_prefix: String,
    /// The network filter's own `stat_prefix` (the HTTP filter uses its manager's).
    pub stat_prefix: String,
}

/// An action and its policies, sorted by name: Envoy keeps them in an ordered map, so the
/// policy reported as matched is the first matching one by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub action: Action,
    pub policies: Vec<(String, Policy)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Allowed iff some policy matches.
    Allow,
    /// Denied iff some policy matches.
    Deny,
    /// Always allowed; a match only marks the request for logging.
    Log,
}

/// Matches when any permission and any principal match.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub permissions: Vec<Permission>,
    pub principals: Vec<Principal>,
}

/// What is asked for (the destination side of the request or connection).
#[derive(Debug, Clone, PartialEq)]
pub enum Permission {
    Any,
    And(Vec<Permission>),
    Or(Vec<Permission>),
    Not(Box<Permission>),
    Header(Header),
    /// The path without query and fragment.
    UrlPath(StringMatch),
    /// `uri_template`: Envoy's path template, compiled to a regex over the path.
    UriTemplate(Template),
    DestinationIp(Cidr),
    DestinationPort(u32),
    /// `[start, end)`.
    DestinationPortRange(i64, i64),
    Metadata(MetadataMatch),
    RequestedServerName(StringMatch),
}

/// Who asks (the downstream side).
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    Any,
    And(Vec<Principal>),
    Or(Vec<Principal>),
    Not(Box<Principal>),
    /// A peer authenticated by mTLS; `Some`: its principal (URI SAN) must match.
    Authenticated(Option<StringMatch>),
    /// The downstream connection's peer (`source_ip`, `direct_remote_ip`).
    DirectRemoteIp(Cidr),
    /// The original client, after `x-forwarded-for` processing.
    RemoteIp(Cidr),
    Header(Header),
    UrlPath(StringMatch),
    Metadata(MetadataMatch),
    /// `filter_state` with a string matcher: Istio's `io.istio.peer_principal` (waypoints).
    FilterState {
        key: String,
        value: StringMatch,
    },
}

/// A header matcher with `treat_missing_header_as_empty`.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub matcher: HeaderMatcher,
    pub missing_as_empty: bool,
}

/// An IP network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: IpAddr,
    pub len: u8,
}

/// Envoy's `MetadataMatcher`: the value at `path` in the dynamic metadata of `filter`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataMatch {
    pub filter: String,
    pub path: Vec<String>,
    pub value: ValueMatch,
    pub invert: bool,
}

/// Envoy's `ValueMatcher`.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueMatch {
    Null,
    /// Exact value or `[start, end)`.
    Double(DoubleMatch),
    String(StringMatch),
    Bool(bool),
    /// `present_match`: true matches any value; false never matches (Envoy's semantics).
    Present(bool),
    /// `list_match.one_of`: a list with at least one element that matches.
    ListOneOf(Box<ValueMatch>),
    Or(Vec<ValueMatch>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DoubleMatch {
    Exact(f64),
    Range(f64, f64),
}

/// A compiled `uri_template` with its source, for comparison and display.
#[derive(Debug, Clone)]
pub struct Template {
    pub source: String,
    pub regex: Regex,
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}
