//! xDS → the proxy's own configuration, one resource at a time. This is the edge where
//! protobuf ends: everything after it reads [`crate::config`].
//!
//! The rule is Envoy's contract turned strict: a resource that sets a field or names an
//! extension the proxy does not implement is rejected as a whole, with the field's path in
//! the reason (it becomes the NACK's `error_detail`). Messages are destructured
//! exhaustively, so a field added to envoy-types fails the build here until someone decides
//! what the proxy does with it; fields the proxy does not act on are either harmless
//! (names, stats, metadata) or must be left at their defaults ([`reject!`]).

// Deprecated fields are destructured on purpose: set or not, they must be judged.
#![allow(deprecated)]

pub mod access_log;
pub mod cluster;
pub mod cors;
pub mod limits;
pub mod listener;
pub mod route;
pub mod tls;

use std::time::Duration;

use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher};

use crate::config::StringMatch;

/// Why a resource is rejected: `path: reason`.
pub type Rejection = String;

pub type Result<T> = std::result::Result<T, Rejection>;

/// Fails with "`path.field` is not implemented" for each listed field that is set.
macro_rules! reject {
    ($path:expr; $($field:ident),+ $(,)?) => {
        $(
            if $crate::convert::is_set($field) {
                return Err(format!("{}.{} is not implemented", $path, stringify!($field)));
            }
        )+
    };
}
pub(crate) use reject;

/// Whether a field differs from its default (proto3's "unset").
pub fn is_set<T: Default + PartialEq>(value: &T) -> bool {
    *value != T::default()
}

/// Regexes from the control plane run on every request: bounded like Envoy's RE2 programs.
pub fn regex(pattern: &str, path: &str) -> Result<regex::Regex> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("{path}: invalid regex {pattern:?}: {e}"))
}

pub fn regex_matcher(m: &RegexMatcher, path: &str) -> Result<regex::Regex> {
    let RegexMatcher {
        regex: pattern,
        engine_type: _,
    } = m;
    regex(pattern, path)
}

pub fn string_matcher(m: &StringMatcher, path: &str) -> Result<StringMatch> {
    let StringMatcher {
        ignore_case,
        match_pattern,
    } = m;
    let ic = *ignore_case;
    Ok(match match_pattern {
        Some(MatchPattern::Exact(s)) => StringMatch::Exact(s.clone(), ic),
        Some(MatchPattern::Prefix(s)) => StringMatch::Prefix(s.clone(), ic),
        Some(MatchPattern::Suffix(s)) => StringMatch::Suffix(s.clone(), ic),
        Some(MatchPattern::Contains(s)) => StringMatch::Contains(s.clone(), ic),
        Some(MatchPattern::SafeRegex(r)) => {
            let pattern = if ic {
                format!("(?i:{})", r.regex)
            } else {
                r.regex.clone()
            };
            StringMatch::Regex(regex(&pattern, path)?)
        }
        Some(MatchPattern::Custom(_)) => {
            return Err(format!("{path}.custom string matcher is not implemented"));
        }
        None => return Err(format!("{path}: string matcher without a pattern")),
    })
}

/// An IP network as (address, prefix length); the length must fit the address family.
pub fn cidr(
    r: &envoy_types::pb::envoy::config::core::v3::CidrRange,
    path: &str,
) -> Result<(std::net::IpAddr, u8)> {
    let envoy_types::pb::envoy::config::core::v3::CidrRange {
        address_prefix,
        prefix_len,
    } = r;
    let ip: std::net::IpAddr = address_prefix
        .parse()
        .map_err(|_| format!("{path}: {address_prefix:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = prefix_len.as_ref().map_or(0, |l| l.value);
    if len > max {
        return Err(format!("{path}: prefix length {len}"));
    }
    Ok((ip, len as u8))
}

pub fn duration(d: &envoy_types::pb::google::protobuf::Duration) -> Duration {
    let secs = u64::try_from(d.seconds).unwrap_or(0);
    let nanos = u32::try_from(d.nanos).unwrap_or(0);
    Duration::new(secs, nanos.min(999_999_999))
}

/// A fraction as millionths (Envoy's `FractionalPercent`).
pub fn millionths(p: &envoy_types::pb::envoy::r#type::v3::FractionalPercent) -> u32 {
    let scale = match p.denominator {
        0 => 10_000, // HUNDRED
        1 => 100,    // TEN_THOUSAND
        _ => 1,      // MILLION
    };
    p.numerator.saturating_mul(scale).min(1_000_000)
}
