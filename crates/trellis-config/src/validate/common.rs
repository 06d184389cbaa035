//! Pieces of Istio's validation shared by several kinds: DNS names and wildcard hosts,
//! `namespace/host` entries, ports and protocols, IPs and CIDRs, label maps and selectors,
//! durations and percentages, header names and values, `exportTo`, policy target references.
//!
//! Each check is a small pure function returning `Result<(), String>` (or a list of
//! messages) so that callers attach the field path; messages keep Istio's key words so that
//! operators who know Istio's errors recognise them.

use regex::Regex;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::OnceLock;

use trellis_api::istio::type_v1beta1::{PolicyTargetReference, WorkloadSelector};
use trellis_api::{Duration, Kind, OneofGroups, Resource};

use super::Report;
use super::report::at;

/// Prefix that marks a Unix domain socket address in binds and endpoints.
pub const UNIX_ADDRESS_PREFIX: &str = "unix://";

const DNS1123_LABEL_MAX: usize = 63;

fn regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|_| unreachable_regex()))
}

/// Patterns are constants written here; a typo would be caught by the unit tests. Falling
/// back to a never-matching pattern keeps this module free of `unwrap` on any path.
fn unreachable_regex() -> Regex {
    Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!("constant pattern"))
}

/// A DNS-1123 label: lower or upper alphanumerics and `-`, not starting or ending with `-`.
pub fn is_dns1123_label(value: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    value.len() <= DNS1123_LABEL_MAX
        && regex(&RE, r"^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$").is_match(value)
}

/// A first label that may carry a wildcard: `*`, `*foo`, `*-foo` or a plain label.
pub fn is_wildcard_dns1123_label(value: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    value.len() <= DNS1123_LABEL_MAX
        && regex(
            &RE,
            r"^(\*|(\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)$",
        )
        .is_match(value)
}

fn check_dns1123_preconditions(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!("domain name {name:?} too long (max 255)"));
    }
    if name.is_empty() {
        return Err("empty domain name not allowed".to_string());
    }
    Ok(())
}

/// Every dot-separated label is a DNS-1123 label and the top-level one is not all digits.
/// A trailing dot (`istio.io.`) is allowed.
pub fn validate_dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let tld = parts.last().copied().unwrap_or_default();
    if !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {tld:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// A fully qualified domain name (no wildcard).
pub fn validate_fqdn(fqdn: &str) -> Result<(), String> {
    check_dns1123_preconditions(fqdn)?;
    validate_dns1123_labels(fqdn)
}

/// A domain name whose first label may be a wildcard (`*.example.com`, `*`).
pub fn validate_wildcard_domain(domain: &str) -> Result<(), String> {
    check_dns1123_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (domain, None),
    };
    if !is_wildcard_dns1123_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(rest) => validate_dns1123_labels(rest),
        None => Ok(()),
    }
}

/// Hosts of a VirtualService bound to gateways: like [`validate_wildcard_domain`], but for
/// SNI hosts the names Istio generates for AUTO_PASSTHROUGH (`outbound_.80_._.host`) pass.
pub fn validate_wildcard_domain_for_gateway_vs(sni: bool, domain: &str) -> Result<(), String> {
    check_dns1123_preconditions(domain)?;
    if sni && domain.starts_with("outbound_") {
        let parts: Vec<&str> = domain.split('_').collect();
        if parts.len() < 4 {
            return Err(format!(
                "domain name {domain} invalid, should follow 'outbound_.<port>_._.<hostname>' format"
            ));
        }
        let port = parts[1].trim_matches('.');
        let host = parts[3].trim_matches('.');
        if parts[0] != "outbound" {
            return Err(format!(
                "domain name {domain:?} invalid (label {:?} invalid)",
                parts[0]
            ));
        }
        if !port.bytes().any(|b| b.is_ascii_digit()) {
            return Err(format!(
                "domain name {domain:?} invalid (label {port:?} invalid). should follow outbound_.<port>_._.<hostname> format"
            ));
        }
        if !host.bytes().any(|b| b.is_ascii_alphabetic()) {
            return Err(format!(
                "domain name {domain:?} invalid (label {host:?} invalid). should follow outbound_.<port>_._.<hostname> format"
            ));
        }
        return Ok(());
    }
    validate_wildcard_domain(domain)
}

/// A wildcard is only allowed as a whole first label (`*.example.com`) or alone (`*`).
pub fn validate_partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host.len() != 1 && !host.starts_with("*.") {
        return Err(format!("partial wildcard {host:?} not allowed"));
    }
    Ok(())
}

/// A port number in 1..=65535.
pub fn validate_port(port: i64) -> Result<(), String> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(format!("port number {port} must be in the range 1..65535"))
    }
}

/// A single IP address (v4 or v6, no zone, no prefix).
pub fn is_ip(addr: &str) -> bool {
    addr.parse::<IpAddr>().is_ok()
}

/// A single IP address.
pub fn validate_ip_address(addr: &str) -> Result<(), String> {
    if is_ip(addr) {
        Ok(())
    } else {
        Err(format!("{addr} is not a valid IP"))
    }
}

/// An IP address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`).
pub fn validate_ip_subnet(subnet: &str) -> Result<(), String> {
    if subnet.matches('/').count() == 1 {
        return if is_cidr(subnet) {
            Ok(())
        } else {
            Err(format!("{subnet} is not a valid CIDR block"))
        };
    }
    validate_ip_address(subnet)
}

/// A CIDR block whose address and prefix length are well-formed (host bits may be set, as
/// Go's `netip.ParsePrefix` allows).
pub fn is_cidr(value: &str) -> bool {
    let Some((addr, len)) = value.split_once('/') else {
        return false;
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return false;
    };
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
        return false;
    }
    let Ok(bits) = len.parse::<u8>() else {
        return false;
    };
    // Go rejects leading zeros in the prefix length ("/08").
    if len.len() > 1 && len.starts_with('0') {
        return false;
    }
    match ip {
        IpAddr::V4(_) => bits <= 32,
        IpAddr::V6(_) => bits <= 128,
    }
}

/// A path for a Unix domain socket: absolute and not a directory, or abstract (`@name`).
pub fn validate_unix_address(addr: &str) -> Result<(), String> {
    if addr.is_empty() {
        return Err("unix address must not be empty".to_string());
    }
    if addr.starts_with('@') {
        return Ok(());
    }
    if !addr.starts_with('/') || addr.ends_with('/') {
        return Err(format!("{addr} is not an absolute path to a file"));
    }
    Ok(())
}

/// Istio's protocol names, case-insensitive, as ports declare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Grpc,
    GrpcWeb,
    Http,
    HttpProxy,
    Http2,
    Https,
    Tls,
    Mongo,
    Redis,
    MySql,
    Unsupported,
}

impl Protocol {
    /// Parses a port's protocol the way Istio does (unknown names are `Unsupported`).
    pub fn parse(s: &str) -> Protocol {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "grpc" => Protocol::Grpc,
            "grpc-web" => Protocol::GrpcWeb,
            "http" => Protocol::Http,
            "http_proxy" => Protocol::HttpProxy,
            "http2" => Protocol::Http2,
            "https" => Protocol::Https,
            "tls" => Protocol::Tls,
            "mongo" => Protocol::Mongo,
            "redis" => Protocol::Redis,
            "mysql" => Protocol::MySql,
            _ => Protocol::Unsupported,
        }
    }

    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http
                | Protocol::Http2
                | Protocol::HttpProxy
                | Protocol::Grpc
                | Protocol::GrpcWeb
        )
    }

    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }

    pub fn is_tcp(self) -> bool {
        matches!(
            self,
            Protocol::Tcp
                | Protocol::Https
                | Protocol::Tls
                | Protocol::Mongo
                | Protocol::Redis
                | Protocol::MySql
        )
    }
}

/// A protocol name Istio knows; empty means "sniff" and is allowed.
pub fn validate_protocol(protocol: &str) -> Result<(), String> {
    if !protocol.is_empty() && Protocol::parse(protocol) == Protocol::Unsupported {
        return Err(format!("unsupported protocol: {protocol}"));
    }
    Ok(())
}

/// A port name must be a DNS-1123 label.
pub fn validate_port_name(name: &str) -> Result<(), String> {
    if is_dns1123_label(name) {
        Ok(())
    } else {
        Err(format!("invalid port name: {name}"))
    }
}

/// Kubernetes label keys and values: `[prefix/]name` keys, qualified-name values.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        if let Err(e) = validate_label_key(k) {
            errs.push(e);
        }
        if !is_label_value(v) {
            errs.push(format!("invalid tag value: {v:?}"));
        }
    }
    errs
}

const QUALIFIED_NAME: &str = "(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";

fn is_label_value(v: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(&RE, &format!("^({QUALIFIED_NAME})?$")).is_match(v)
}

/// A label key: an optional DNS-name prefix and `/`, then a qualified name of at most 63.
pub fn validate_label_key(k: &str) -> Result<(), String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let label = "[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?";
    let re = regex(
        &RE,
        &format!(r"^({label}(?:\.{label})*/)?({QUALIFIED_NAME})$"),
    );
    let Some(caps) = re.captures(k) else {
        return Err(format!("invalid tag key: {k:?}"));
    };
    if let Some(prefix) = caps.get(1)
        && prefix.as_str().len() - 1 > 253
    {
        return Err(format!("invalid tag key: {k:?} (DNS prefix is too long)"));
    }
    if caps
        .get(2)
        .is_some_and(|n| n.as_str().len() > DNS1123_LABEL_MAX)
    {
        return Err(format!("invalid tag key: {k:?} (name is too long)"));
    }
    Ok(())
}

/// A duration Envoy accepts for timeouts: at least 1ms, whole milliseconds.
pub fn validate_duration(d: &Duration) -> Result<(), String> {
    let nanos = d.as_nanos();
    if nanos < 1_000_000 {
        return Err("duration must be greater than 1ms".to_string());
    }
    if nanos % 1_000_000 != 0 {
        return Err("only durations to ms precision are supported".to_string());
    }
    Ok(())
}

/// An integer percentage in 0..=100.
pub fn validate_percent(val: i32) -> Result<(), String> {
    if !(0..=100).contains(&val) {
        return Err(format!("percentage {val} is not in range 0..100"));
    }
    Ok(())
}

/// A fractional percentage: 0, or within [0.0001, 100].
pub fn validate_percentage(value: f64) -> Result<(), String> {
    if !(0.0..=100.0).contains(&value) || (value > 0.0 && value < 0.0001) || value.is_nan() {
        return Err(format!(
            "percentage {value} is neither 0.0, nor in range [0.0001, 100.0]"
        ));
    }
    Ok(())
}

/// HTTP token characters (RFC 7230) for header names.
pub fn is_http_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Header names used to route on a JWT claim (`@request.auth.claims.sub`,
/// `@request.auth.claims[sub]`).
pub fn is_jwt_claim_route(name: &str) -> bool {
    const PREFIX: &str = "@request.auth.claims";
    if name.len() < PREFIX.len() || !name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
        return false;
    }
    let rest = &name[PREFIX.len()..];
    (rest.starts_with('.') && rest.len() > 1)
        || (rest.starts_with('[') && rest.ends_with(']') && rest.len() > 2)
}

/// A header name to match on: an HTTP token, a pseudo-header or a JWT claim route.
pub fn validate_header_name_or_jwt_claim(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_string());
    }
    if is_jwt_claim_route(name)
        || matches!(
            name,
            ":method" | ":scheme" | ":authority" | ":path" | ":status"
        )
    {
        return Ok(());
    }
    if !is_http_token(name) {
        return Err(format!("header name {name} is not a valid header name"));
    }
    Ok(())
}

/// A stricter header name (letters, digits, `-`, `_`), used where Istio writes the header.
pub fn validate_strict_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_string());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!("header name {name} is not a valid header name"));
    }
    Ok(())
}

fn is_internal_header(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

/// True for `:authority` and `host`, the two spellings of the request's authority.
pub fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// Request headers to add or set: the authority may be rewritten here, other pseudo
/// headers may not.
pub fn validate_header_set_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_string());
    }
    if is_internal_header(name) && !is_authority_header(name) {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

/// Headers to remove, or response headers: neither Host nor pseudo headers.
pub fn validate_header_operation_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_string());
    }
    if name.eq_ignore_ascii_case("host") {
        return Err(format!("invalid header {name:?}: cannot set Host header"));
    }
    if is_internal_header(name) {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

/// A header value Envoy accepts: no control characters, and `%VAR%` / `%VAR(args)%`
/// expressions well-formed (`%%` escapes a percent sign).
pub fn validate_header_value(value: &str) -> Result<(), String> {
    if value
        .chars()
        .any(|c| (c as u32) < 0x20 && c != '\t' || c == '\u{7f}')
    {
        return Err(format!("header value configuration {value} is invalid"));
    }
    header_value_expressions(value).map_err(|e| format!("header value configuration: {e}"))
}

/// Walks `%...%` expressions the way Envoy's header formatter parses them.
fn header_value_expressions(value: &str) -> Result<(), String> {
    #[derive(PartialEq)]
    enum S {
        Literal,
        VarName,
        ExpectArray,
        ExpectString,
        InString,
        ExpectDelimOrEnd,
        ExpectArgsEnd,
        ExpectVarEnd,
    }
    let bytes = value.as_bytes();
    let mut state = S::Literal;
    let mut pos = 0;
    while pos < bytes.len() {
        let ch = bytes[pos];
        let has_next = pos + 1 < bytes.len();
        match state {
            S::Literal => {
                if ch == b'%' {
                    if !has_next {
                        return Err("invalid header configuration. Un-escaped %".to_string());
                    }
                    if bytes[pos + 1] == b'%' {
                        pos += 1;
                    } else {
                        state = S::VarName;
                    }
                }
            }
            S::VarName => {
                if ch == b'%' {
                    state = S::Literal;
                } else if ch == b'(' {
                    state = S::ExpectArray;
                }
            }
            S::ExpectArray => {
                if ch == b'[' {
                    state = S::ExpectString;
                } else if ch != b' ' {
                    state = S::InString;
                }
            }
            S::ExpectDelimOrEnd => {
                if ch == b',' {
                    state = S::ExpectString;
                } else if ch == b']' {
                    state = S::ExpectArgsEnd;
                } else if ch != b' ' {
                    return Err(
                        "invalid header configuration. Expecting ',', ']', or whitespace"
                            .to_string(),
                    );
                }
            }
            S::ExpectString => {
                if ch == b'"' {
                    state = S::InString;
                } else if ch != b' ' {
                    return Err("invalid header configuration. Expecting '\"'".to_string());
                }
            }
            S::InString => {
                if ch == b'\\' {
                    if !has_next {
                        return Err(
                            "invalid header configuration. Un-terminated backslash in JSON string"
                                .to_string(),
                        );
                    }
                    pos += 1;
                } else if ch == b')' {
                    state = S::ExpectVarEnd;
                } else if ch == b'"' {
                    state = S::ExpectDelimOrEnd;
                }
            }
            S::ExpectArgsEnd => {
                if ch == b')' {
                    state = S::ExpectVarEnd;
                } else if ch != b' ' {
                    return Err(
                        "invalid header configuration. Expecting ')' or whitespace".to_string()
                    );
                }
            }
            S::ExpectVarEnd => {
                if ch == b'%' {
                    state = S::Literal;
                } else if ch != b' ' {
                    return Err(
                        "invalid header configuration. Expecting '%' or whitespace after"
                            .to_string(),
                    );
                }
            }
        }
        pos += 1;
    }
    if state != S::Literal {
        return Err(format!(
            "invalid header configuration. Un-terminated variable expression '{value}'"
        ));
    }
    Ok(())
}

/// A regular expression in RE2 syntax, at most 1024 bytes (Envoy's program-size limit is
/// approximated by length).
pub fn validate_regex(re: &str, where_: &str) -> Result<(), String> {
    if re.len() > 1024 {
        return Err(format!(
            "{where_:?}: regex is too large, max length allowed is 1024"
        ));
    }
    regex::RegexBuilder::new(re)
        .size_limit(1 << 20)
        .build()
        .map(|_| ())
        .map_err(|e| {
            let first = e.to_string();
            let first = first.lines().last().unwrap_or_default().to_string();
            format!(
                "{where_:?}: error parsing regexp: {first}; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)"
            )
        })
}

/// `exportTo`: `.`, `*`, `~` (ServiceEntry only) or namespace names, without duplicates and
/// without mixing `*`/`~` with anything else. A DestinationRule with a workload selector
/// may only be exported to its own namespace.
pub fn validate_export_to(
    namespace: &str,
    export_to: &[String],
    is_service_entry: bool,
    is_dr_with_selector: bool,
) -> Vec<String> {
    let mut errs = Vec::new();
    if export_to.is_empty() {
        return errs;
    }
    let mut seen: Vec<String> = Vec::new();
    for e in export_to {
        let key = if e == "." {
            namespace.to_string()
        } else {
            e.clone()
        };
        if seen.contains(&key) {
            if &key != e {
                errs.push(format!(
                    "duplicate entries in exportTo: . and current namespace {namespace}"
                ));
            } else {
                errs.push(format!("duplicate entries in exportTo for entry {e}"));
            }
            continue;
        }
        if is_service_entry && e == "~" {
            seen.push(key);
            continue;
        }
        match key.as_str() {
            "*" => seen.push(key),
            _ if e == "." => seen.push(key),
            "~" => errs.push(
                "exportTo ~ (none) is not allowed for Istio configuration objects".to_string(),
            ),
            k if is_dns1123_label(k) => seen.push(key),
            _ => errs.push(
                "only .,*, or a valid DNS 1123 label is allowed as exportTo entry".to_string(),
            ),
        }
    }
    if is_dr_with_selector && !seen.is_empty() {
        if seen.iter().any(|s| s == namespace) {
            if seen.len() > 1 {
                errs.push(
                    "destination rule with workload selector cannot have multiple entries in exportTo"
                        .to_string(),
                );
            }
        } else {
            errs.push(
                "destination rule with workload selector cannot have exportTo beyond current namespace"
                    .to_string(),
            );
        }
    }
    if seen.iter().any(|s| s == "*") && export_to.len() > 1 {
        errs.push(
            "cannot have both public (*) and non-public exportTo values for a resource".to_string(),
        );
    }
    if seen.iter().any(|s| s == "~") && export_to.len() > 1 {
        errs.push("cannot export service entry to no one (~) and someone".to_string());
    }
    errs
}

/// A selector's labels: no empty key, no wildcard; an empty selector selects everything
/// (a warning, as it is most likely a mistake).
/// Checks a `workloadSelector`'s labels, warning when there are none (the object then
/// applies to every workload of its namespace). False when the labels are invalid.
pub(crate) fn check_selector_labels(
    r: &mut Report,
    labels: &BTreeMap<String, String>,
    what: &str,
) -> bool {
    let before = r.error_count();
    check_label_selector(r, "spec.workloadSelector.labels", labels);
    if r.error_count() > before {
        return false;
    }
    if labels.is_empty() {
        r.warn(
            "spec.workloadSelector",
            format!("{what}: workload selector specified without labels, will be applied to all services in namespace"),
        );
    }
    true
}

pub(crate) fn check_label_selector(r: &mut Report, path: &str, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        if k.is_empty() {
            r.error(
                path,
                format!("empty key is not supported in selector: \"{k}={v}\""),
            );
        }
        if k.contains('*') || v.contains('*') {
            r.error(
                path,
                format!("wildcard is not supported in selector: \"{k}={v}\""),
            );
        }
    }
}

/// `selector: {matchLabels: ...}` of the security, telemetry and extension kinds.
pub(crate) fn check_workload_selector(
    r: &mut Report,
    path: &str,
    selector: Option<&WorkloadSelector>,
) {
    let Some(selector) = selector else {
        return;
    };
    let labels_path = at(path, "matchLabels");
    check_label_selector(r, &labels_path, &selector.match_labels);
    for e in validate_labels(&selector.match_labels) {
        r.error(&labels_path, e);
    }
    if selector.match_labels.is_empty() {
        r.warn(path, "workload selector specified without labels");
    }
}

/// Only one way of choosing the workloads: `selector`, `targetRef` or `targetRefs`.
pub(crate) fn check_one_selector_type(
    r: &mut Report,
    selector: bool,
    target_ref: bool,
    target_refs: bool,
) {
    if [selector, target_ref, target_refs]
        .iter()
        .filter(|b| **b)
        .count()
        > 1
    {
        r.error(
            "spec",
            "only one of targetRefs or workloadSelector can be set",
        );
    }
}

/// Policies attach to a Service, ServiceEntry, Gateway or GatewayClass in their own
/// namespace, by name.
pub(crate) fn check_target_ref(r: &mut Report, path: &str, t: &PolicyTargetReference) {
    if t.name.is_empty() {
        r.error(&at(path, "name"), "targetRef name must be set");
    }
    if !t.namespace.is_empty() {
        r.error(
            &at(path, "namespace"),
            "targetRef namespace must not be set; cross namespace referencing is not supported",
        );
    }
    let group = if t.group.is_empty() {
        "core"
    } else {
        t.group.as_str()
    };
    let allowed = matches!(
        (group, t.kind.as_str()),
        ("core", "Service")
            | ("networking.istio.io", "ServiceEntry")
            | ("gateway.networking.k8s.io", "Gateway")
            | ("gateway.networking.k8s.io", "GatewayClass")
    );
    if !allowed {
        r.error(
            path,
            format!(
                "targetRef must be to one of [core/Service networking.istio.io/ServiceEntry gateway.networking.k8s.io/Gateway gateway.networking.k8s.io/GatewayClass] but was {}/{}",
                t.group, t.kind
            ),
        );
    }
}

/// Every entry of `targetRefs`.
pub(crate) fn check_target_refs(r: &mut Report, path: &str, refs: &[PolicyTargetReference]) {
    for (i, t) in refs.iter().enumerate() {
        check_target_ref(r, &format!("{path}[{i}]"), t);
    }
}

/// A proto `oneof` has at most one member set; YAML can set several.
pub(crate) fn check_oneofs(r: &mut Report, path: &str, msg: &impl OneofGroups) {
    for (group, set) in msg.oneof_groups() {
        if set.len() > 1 {
            r.error(
                path,
                format!("only one of {} may be set (oneof {group})", set.join(", ")),
            );
        }
    }
}

/// `namespace/host` entries of Sidecar egress listeners and Gateway servers (a Gateway also
/// accepts a bare host).
pub fn validate_namespace_slash_host(
    hostname: &str,
    is_gateway: bool,
    gateway_semantics: bool,
) -> Vec<String> {
    let mut errs = Vec::new();
    let Some((ns, host)) = hostname.split_once('/') else {
        if is_gateway {
            return validate_host_part(hostname, true);
        }
        errs.push("host must be of form namespace/dnsName".to_string());
        return errs;
    };
    if ns.is_empty() || host.is_empty() {
        errs.push("config namespace and dnsName in host entry cannot be empty".to_string());
    }
    if !is_gateway {
        let trimmed = ns.strip_prefix('~').unwrap_or(ns);
        if !trimmed.is_empty() && trimmed != "*" && trimmed != "." && !is_dns1123_label(trimmed) {
            errs.push(format!("invalid namespace value {ns:?} in sidecar"));
        }
    } else if ns != "*" && ns != "." && (ns != "~" || !gateway_semantics) && !is_dns1123_label(ns) {
        errs.push(format!("invalid namespace value {ns:?} in gateway"));
    }
    errs.extend(validate_host_part(host, is_gateway));
    errs
}

fn validate_host_part(hostname: &str, is_gateway: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if hostname != "*" && !hostname.contains('.') {
        errs.push("short names (non FQDN) are not allowed".to_string());
    }
    if let Err(e) = validate_wildcard_domain(hostname) {
        // Gateways also accept an IP address as the host.
        if !is_gateway || !is_ip(hostname) {
            errs.push(e);
        }
    }
    if let Err(e) = validate_partial_wildcard(hostname) {
        errs.push(e);
    }
    errs
}

/// Checks that apply to every Istio object whatever its kind: annotations Istio reserves.
pub(crate) fn validate_metadata(r: &mut Report, resource: &Resource) {
    let ann = &resource.meta.annotations;
    let full = resource.full_name();
    if let Some(val) = ann.get("istio.io/dry-run") {
        match &resource.spec {
            trellis_api::Spec::AuthorizationPolicy(ap) => {
                use trellis_api::istio::security::AuthorizationPolicyAction as A;
                match ap.action {
                    A::Allow | A::Deny => {
                        if parse_go_bool(val).is_none() {
                            r.error(
                                "metadata.annotations",
                                format!(
                                    "{full} has annotation istio.io/dry-run with invalid value ({val}): must be true or false"
                                ),
                            );
                        }
                    }
                    other => r.error(
                        "metadata.annotations",
                        format!(
                            "the annotation istio.io/dry-run currently only supports action ALLOW/DENY, found action {} in {full}",
                            other.as_str()
                        ),
                    ),
                }
            }
            _ if resource.kind().is_istio() => r.error(
                "metadata.annotations",
                format!(
                    "{full} has unsupported annotation istio.io/dry-run, please remove the annotation"
                ),
            ),
            _ => {}
        }
    }
    if !resource.kind().is_istio() || resource.kind() == Kind::Namespace {
        return;
    }
    for reserved in [
        "istio.io/rejected",
        "internal.istio.io/parent-namespace",
        "internal.istio.io/parents",
    ] {
        if ann.contains_key(reserved) {
            r.error(
                "metadata.annotations",
                format!("{reserved:?} annotation found, this may not be set by users"),
            );
        }
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_domains() {
        assert!(validate_wildcard_domain("*.example.com").is_ok());
        assert!(validate_wildcard_domain("*").is_ok());
        assert!(validate_wildcard_domain("*foo.example.com").is_ok());
        assert!(validate_wildcard_domain("foo.*.com").is_err());
        assert!(validate_wildcard_domain("").is_err());
        assert!(validate_wildcard_domain("example.123").is_err());
        assert!(validate_wildcard_domain("istio.io.").is_ok());
        assert!(validate_partial_wildcard("*foo.com").is_err());
    }

    #[test]
    fn cidrs() {
        assert!(validate_ip_subnet("10.0.0.0/8").is_ok());
        assert!(validate_ip_subnet("10.0.0.0/33").is_err());
        assert!(validate_ip_subnet("2001:db8::/32").is_ok());
        assert!(validate_ip_subnet("1.2.3.4").is_ok());
        assert!(validate_ip_subnet("1.2.3/8").is_err());
    }

    #[test]
    fn header_values() {
        assert!(validate_header_value("foo").is_ok());
        assert!(validate_header_value("%HOSTNAME%").is_ok());
        assert!(validate_header_value("100%%").is_ok());
        assert!(validate_header_value("abc%123").is_err());
        assert!(validate_header_value("%START_TIME%%").is_err());
        assert!(validate_header_value("%REQ([\"x\"])%").is_ok());
    }

    #[test]
    fn export_to() {
        assert!(validate_export_to("ns", &[".".into(), "ns".into()], false, false).len() == 1);
        assert!(validate_export_to("ns", &["~".into()], true, false).is_empty());
        assert!(!validate_export_to("ns", &["~".into()], false, false).is_empty());
        assert!(!validate_export_to("ns", &["*".into(), "a".into()], false, false).is_empty());
    }

    #[test]
    fn host_matching() {}

    #[test]
    fn label_keys() {
        assert!(validate_label_key("app").is_ok());
        assert!(validate_label_key("istio.io/rev").is_ok());
        assert!(validate_label_key("@").is_err());
        assert!(validate_label_key("").is_err());
    }
}
