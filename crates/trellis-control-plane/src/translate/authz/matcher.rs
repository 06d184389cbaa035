//! Envoy matchers from Istio's authorization values: `*` alone means "present / any
//! non-empty value", a leading `*` a suffix match, a trailing `*` a prefix match, anything
//! else an exact match. Host values ignore case; every other value is case-sensitive.

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::PathSegment;
use envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::path_segment::Segment;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    ListMatcher, MetadataMatcher, OrMatcher, PathMatcher, RegexMatcher, StringMatcher,
    ValueMatcher, list_matcher, path_matcher, value_matcher,
};
use envoy_types::pb::google::protobuf::UInt32Value;

/// The dynamic-metadata namespace the JWT filter writes and RBAC reads.
pub const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";
/// The key under [`JWT_FILTER`] holding the verified token's payload.
pub const JWT_PAYLOAD: &str = "payload";

fn string(pattern: MatchPattern, ignore_case: bool) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case,
    }
}

pub fn exact(v: &str, ignore_case: bool) -> StringMatcher {
    string(MatchPattern::Exact(v.to_string()), ignore_case)
}

pub fn prefix(v: &str, ignore_case: bool) -> StringMatcher {
    string(MatchPattern::Prefix(v.to_string()), ignore_case)
}

pub fn suffix(v: &str, ignore_case: bool) -> StringMatcher {
    string(MatchPattern::Suffix(v.to_string()), ignore_case)
}

pub fn regex(r: &str) -> StringMatcher {
    string(
        MatchPattern::SafeRegex(RegexMatcher {
            regex: r.to_string(),
            ..Default::default()
        }),
        false,
    )
}

/// `.+`: any non-empty value.
pub fn any_value() -> StringMatcher {
    regex(".+")
}

/// A value with Istio's wildcards, `literal` put in front of what is matched (the SPIFFE
/// scheme for principals).
pub fn with_prefix(v: &str, literal: &str) -> StringMatcher {
    if v == "*" {
        return any_value();
    }
    if let Some(rest) = v.strip_prefix('*') {
        return if literal.is_empty() {
            suffix(rest, false)
        } else {
            regex(&format!("{literal}.*{}", quote_meta(rest)))
        };
    }
    if let Some(rest) = v.strip_suffix('*') {
        return prefix(&format!("{literal}{rest}"), false);
    }
    exact(&format!("{literal}{v}"), false)
}

/// Escapes regular-expression syntax the way Go's `regexp.QuoteMeta` does, so the
/// emitted regexes read as Istio's.
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A value with Istio's wildcards.
pub fn plain(v: &str) -> StringMatcher {
    with_prefix(v, "")
}

/// A header matcher (`*` = present); `ignore_case` for the host.
pub fn header(name: &str, v: &str, ignore_case: bool) -> HeaderMatcher {
    let specifier = if v == "*" {
        HeaderMatchSpecifier::PresentMatch(true)
    } else if let Some(rest) = v.strip_prefix('*') {
        HeaderMatchSpecifier::StringMatch(suffix(rest, ignore_case))
    } else if let Some(rest) = v.strip_suffix('*') {
        HeaderMatchSpecifier::StringMatch(prefix(rest, ignore_case))
    } else {
        HeaderMatchSpecifier::StringMatch(exact(v, ignore_case))
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(specifier),
        ..Default::default()
    }
}

/// The path (without query) of a request.
pub fn path(v: &str) -> PathMatcher {
    PathMatcher {
        rule: Some(path_matcher::Rule::Path(plain(v))),
    }
}

pub fn string_value(m: StringMatcher) -> ValueMatcher {
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::StringMatch(m)),
    }
}

/// One of several value matchers (a lone one stands for itself).
pub fn or_values(mut matchers: Vec<ValueMatcher>) -> ValueMatcher {
    if matchers.len() == 1
        && let Some(one) = matchers.pop()
    {
        return one;
    }
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::OrMatch(OrMatcher {
            value_matchers: matchers,
        })),
    }
}

/// Each value as a string matcher, any of them.
pub fn or_strings(values: &[String]) -> ValueMatcher {
    or_values(values.iter().map(|v| string_value(plain(v))).collect())
}

/// A list whose items include one matching `value`.
pub fn list_one_of(value: ValueMatcher) -> ValueMatcher {
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::ListMatch(Box::new(
            ListMatcher {
                match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(value))),
            },
        ))),
    }
}

/// Metadata of `filter` at `keys`, compared with `value`.
pub fn metadata(filter: &str, keys: &[&str], value: ValueMatcher) -> MetadataMatcher {
    MetadataMatcher {
        filter: filter.to_string(),
        path: keys
            .iter()
            .map(|k| PathSegment {
                segment: Some(Segment::Key(k.to_string())),
            })
            .collect(),
        value: Some(value),
        ..Default::default()
    }
}

/// A JWT claim (nested by `claims`) that is either a list with an item matching `value`
/// or a value matching it.
pub fn jwt_claims(claims: &[&str], value: ValueMatcher) -> MetadataMatcher {
    let mut keys = vec![JWT_PAYLOAD];
    keys.extend_from_slice(claims);
    let either = or_values(vec![list_one_of(value.clone()), value]);
    metadata(JWT_FILTER, &keys, either)
}

/// A single JWT claim compared as a string.
pub fn jwt_claim_string(claim: &str, m: StringMatcher) -> MetadataMatcher {
    metadata(JWT_FILTER, &[JWT_PAYLOAD, claim], string_value(m))
}

/// An address (`10.1.2.3`) or CIDR block (`10.1.0.0/16`) as an Envoy CIDR range.
pub fn cidr(v: &str) -> Result<CidrRange, String> {
    let (address, bits) = match v.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (v, None),
    };
    let ip: std::net::IpAddr = address
        .parse()
        .map_err(|_| format!("invalid IP address {v:?}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match bits {
        None => max,
        Some(b) => b
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= max && !b.starts_with('+'))
            .ok_or_else(|| format!("invalid CIDR block {v:?}"))?,
    };
    Ok(CidrRange {
        address_prefix: ip.to_string(),
        prefix_len: Some(UInt32Value { value: len }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_prefix_suffix_or_presence() {
        assert_eq!(plain("a*"), prefix("a", false));
        assert_eq!(plain("*a"), suffix("a", false));
        assert_eq!(plain("*"), regex(".+"));
        assert_eq!(plain("a"), exact("a", false));
        assert_eq!(
            with_prefix("*-x", "spiffe://"),
            regex("spiffe://.*-x"),
            "a suffix under a literal prefix needs a regex"
        );
        assert_eq!(
            with_prefix("a.b*", "spiffe://"),
            prefix("spiffe://a.b", false)
        );
        assert_eq!(
            header(":authority", "*.x.com", true).header_match_specifier,
            Some(HeaderMatchSpecifier::StringMatch(suffix(".x.com", true)))
        );
        assert_eq!(
            header("h", "*", false).header_match_specifier,
            Some(HeaderMatchSpecifier::PresentMatch(true))
        );
    }

    #[test]
    fn cidrs() {
        let c = cidr("10.1.0.0/16").unwrap();
        assert_eq!(
            (c.address_prefix.as_str(), c.prefix_len.unwrap().value),
            ("10.1.0.0", 16)
        );
        assert_eq!(cidr("1.2.3.4").unwrap().prefix_len.unwrap().value, 32);
        assert_eq!(cidr("::1").unwrap().prefix_len.unwrap().value, 128);
        for bad in ["", "x", "1.2.3.4/33", "1.2.3.4/", "1.2.3.4/a", "300.1.1.1"] {
            assert!(cidr(bad).is_err(), "{bad}");
        }
    }
}
