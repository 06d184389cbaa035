//! Istio `HTTPMatchRequest` → Envoy `RouteMatch`: uri (exact → path, prefix, regex →
//! RE2 `safe_regex`), headers, `withoutHeaders` (inverted), query parameters, and the
//! pseudo-headers `:method`, `:authority`, `:scheme`. An empty string match, or the regex
//! `*`, means "present". Every regex is checked here: one RE2 would reject makes the whole
//! route fail translation (and be skipped), never the route configuration.
//!
//! Headers named `@request.auth.claims.a.b` or `@request.auth.claims[a][b]` route on the
//! verified JWT's claims, as Istio does: a `dynamic_metadata` match on the `jwt_authn`
//! filter's payload (a string claim, or a list claim with a matching item); in
//! `withoutHeaders` the match is inverted. Only gateways run `jwt_authn` before routing.

use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, QueryParameterMatcher, RouteMatch};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{MetadataMatcher, RegexMatcher, StringMatcher};
use envoy_types::pb::google::protobuf::BoolValue;
use trellis_api::istio::networking::{HttpMatchRequest, StringMatch};

use super::Skip;
use crate::translate::authz::matcher;

/// The largest compiled program accepted for a user's regex, like Envoy's RE2 limits keep
/// one pattern from costing unbounded memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Header names Istio routes on JWT claims with; that needs the JWT filter's metadata.
const JWT_CLAIM_PREFIX: &str = "@request.auth.claims";

/// The claim path of a JWT-claim header name (`.a.b` or `[a][b]` after the prefix).
fn routing_claims(name: &str) -> Option<Vec<&str>> {
    let rest = name
        .get(..JWT_CLAIM_PREFIX.len())
        .filter(|p| p.eq_ignore_ascii_case(JWT_CLAIM_PREFIX))
        .and_then(|_| name.get(JWT_CLAIM_PREFIX.len()..))?;
    if let Some(dotted) = rest.strip_prefix('.').filter(|r| !r.is_empty()) {
        return Some(dotted.split('.').collect());
    }
    rest.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .filter(|r| !r.is_empty())
        .map(|r| r.split("][").collect())
}

/// A match on the claims of the verified JWT, or `None` for an ordinary header.
fn claim_matcher(name: &str, sm: &StringMatch) -> Result<Option<MetadataMatcher>, Skip> {
    let Some(claims) = routing_claims(name) else {
        return Ok(None);
    };
    let value = matcher::string_value(string_matcher(sm)?);
    Ok(Some(matcher::jwt_claims(&claims, value)))
}

/// The Envoy match for one Istio match; no match means every request (prefix `/`).
pub(super) fn route_match(m: Option<&HttpMatchRequest>) -> Result<RouteMatch, Skip> {
    let mut out = RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
        ..Default::default()
    };
    let Some(m) = m else {
        return Ok(out);
    };
    for (name, sm) in &m.headers {
        match claim_matcher(name, sm)? {
            Some(claim) => out.dynamic_metadata.push(claim),
            None => out.headers.push(header_matcher(name, sm)?),
        }
    }
    for (name, sm) in &m.without_headers {
        if let Some(mut claim) = claim_matcher(name, sm)? {
            claim.invert = true;
            out.dynamic_metadata.push(claim);
            continue;
        }
        let mut matcher = header_matcher(name, sm)?;
        matcher.invert_match = true;
        if !is_presence(sm) {
            // A missing header does not match the value, so the inverted match takes it.
            matcher.treat_missing_header_as_empty = true;
        }
        out.headers.push(matcher);
    }
    // Stable: a name in both `headers` and `withoutHeaders` keeps that order.
    out.headers.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(uri) = &m.uri {
        if let Some(exact) = &uri.exact {
            out.path_specifier = Some(PathSpecifier::Path(exact.clone()));
        } else if let Some(prefix) = &uri.prefix {
            out.path_specifier = Some(PathSpecifier::Prefix(prefix.clone()));
        } else if let Some(regex) = &uri.regex {
            out.path_specifier = Some(PathSpecifier::SafeRegex(regex_matcher(regex)?));
        }
    }
    out.case_sensitive = Some(BoolValue {
        value: !m.ignore_uri_case,
    });
    for (name, sm) in [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ] {
        if let Some(sm) = sm {
            out.headers.push(header_matcher(name, sm)?);
        }
    }
    for (name, sm) in &m.query_params {
        out.query_parameters.push(query_matcher(name, sm)?);
    }
    Ok(out)
}

/// True when the match only asks for presence: nothing set, or the regex `*`.
fn is_presence(sm: &StringMatch) -> bool {
    match (&sm.exact, &sm.prefix, &sm.regex) {
        (None, None, None) => true,
        (None, None, Some(re)) => re == "*",
        _ => false,
    }
}

fn header_matcher(name: &str, sm: &StringMatch) -> Result<HeaderMatcher, Skip> {
    let specifier = if is_presence(sm) {
        HeaderMatchSpecifier::PresentMatch(true)
    } else {
        HeaderMatchSpecifier::StringMatch(string_matcher(sm)?)
    };
    Ok(HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(specifier),
        ..Default::default()
    })
}

fn query_matcher(name: &str, sm: &StringMatch) -> Result<QueryParameterMatcher, Skip> {
    let specifier = if is_presence(sm) {
        QueryParameterMatchSpecifier::PresentMatch(true)
    } else {
        QueryParameterMatchSpecifier::StringMatch(string_matcher(sm)?)
    };
    Ok(QueryParameterMatcher {
        name: name.to_string(),
        query_parameter_match_specifier: Some(specifier),
    })
}

/// Istio's `StringMatch` as an Envoy `StringMatcher` (callers handle the presence case).
pub(super) fn string_matcher(sm: &StringMatch) -> Result<StringMatcher, Skip> {
    let pattern = if let Some(exact) = &sm.exact {
        MatchPattern::Exact(exact.clone())
    } else if let Some(prefix) = &sm.prefix {
        MatchPattern::Prefix(prefix.clone())
    } else if let Some(regex) = &sm.regex {
        MatchPattern::SafeRegex(regex_matcher(regex)?)
    } else {
        return Err(Skip::new("string match sets none of exact, prefix, regex"));
    };
    Ok(StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    })
}

/// An RE2 matcher for `regex`, after checking that the pattern compiles.
pub(super) fn regex_matcher(regex: &str) -> Result<RegexMatcher, Skip> {
    check_regex(regex)?;
    Ok(RegexMatcher {
        regex: regex.to_string(),
        ..Default::default()
    })
}

/// Rejects patterns RE2 would reject. Rust's `regex` crate shares RE2's syntax and its
/// guarantee of linear-time matching (no backreferences, no look-around).
pub(super) fn check_regex(regex: &str) -> Result<(), Skip> {
    regex::RegexBuilder::new(regex)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(|_| ())
        .map_err(|e| {
            Skip::new(format!(
                "invalid regex {regex:?}: {}",
                summary(&e.to_string())
            ))
        })
}

fn summary(s: &str) -> &str {
    s.lines().last().unwrap_or(s).trim()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn exact(s: &str) -> StringMatch {
        StringMatch {
            exact: Some(s.to_string()),
            ..Default::default()
        }
    }

    fn regex(s: &str) -> StringMatch {
        StringMatch {
            regex: Some(s.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn no_match_is_prefix_slash_without_case_flag() {
        let m = route_match(None).unwrap();
        assert_eq!(m.path_specifier, Some(PathSpecifier::Prefix("/".into())));
        assert_eq!(m.case_sensitive, None);
    }

    #[test]
    fn uri_kinds() {
        let mut m = HttpMatchRequest {
            uri: Some(exact("/productpage")),
            ..Default::default()
        };
        assert_eq!(
            route_match(Some(&m)).unwrap().path_specifier,
            Some(PathSpecifier::Path("/productpage".into()))
        );
        m.uri = Some(regex("/api/v[0-9]+/.*"));
        m.ignore_uri_case = true;
        let out = route_match(Some(&m)).unwrap();
        assert!(
            matches!(out.path_specifier, Some(PathSpecifier::SafeRegex(ref r)) if r.regex == "/api/v[0-9]+/.*")
        );
        assert_eq!(out.case_sensitive, Some(BoolValue { value: false }));
    }

    #[test]
    fn bad_regex_fails_the_route() {
        let m = HttpMatchRequest {
            uri: Some(regex("/(unclosed")),
            ..Default::default()
        };
        let err = route_match(Some(&m)).unwrap_err();
        assert!(err.0.contains("invalid regex"), "{err:?}");
        // Look-around is not RE2.
        let m = HttpMatchRequest {
            headers: BTreeMap::from([("x".to_string(), regex("a(?=b)"))]),
            ..Default::default()
        };
        assert!(route_match(Some(&m)).is_err());
    }

    #[test]
    fn headers_sorted_inverted_and_pseudo_headers_last() {
        let m = HttpMatchRequest {
            headers: BTreeMap::from([
                ("end-user".to_string(), exact("jason")),
                ("x-any".to_string(), StringMatch::default()),
            ]),
            without_headers: BTreeMap::from([
                ("b-flag".to_string(), exact("on")),
                ("canary".to_string(), regex("*")),
            ]),
            method: Some(exact("GET")),
            authority: Some(StringMatch {
                prefix: Some("reviews".into()),
                ..Default::default()
            }),
            scheme: Some(exact("https")),
            ..Default::default()
        };
        let out = route_match(Some(&m)).unwrap();
        let names: Vec<&str> = out.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "b-flag",
                "canary",
                "end-user",
                "x-any",
                ":method",
                ":authority",
                ":scheme"
            ]
        );
        let b = &out.headers[0];
        assert!(b.invert_match && b.treat_missing_header_as_empty);
        let canary = &out.headers[1];
        assert!(canary.invert_match && !canary.treat_missing_header_as_empty);
        assert_eq!(
            canary.header_match_specifier,
            Some(HeaderMatchSpecifier::PresentMatch(true))
        );
        assert_eq!(
            out.headers[3].header_match_specifier,
            Some(HeaderMatchSpecifier::PresentMatch(true))
        );
    }

    #[test]
    fn query_params() {
        let m = HttpMatchRequest {
            query_params: BTreeMap::from([
                ("debug".to_string(), StringMatch::default()),
                ("v".to_string(), exact("2")),
            ]),
            ..Default::default()
        };
        let out = route_match(Some(&m)).unwrap();
        assert_eq!(
            out.query_parameters[0].query_parameter_match_specifier,
            Some(QueryParameterMatchSpecifier::PresentMatch(true))
        );
        assert!(matches!(
            &out.query_parameters[1].query_parameter_match_specifier,
            Some(QueryParameterMatchSpecifier::StringMatch(s)) if s.match_pattern == Some(MatchPattern::Exact("2".into()))
        ));
    }

    #[test]
    fn jwt_claims_route_on_the_verified_payload() {
        use crate::translate::authz::matcher::{jwt_claims, string_value};
        let m = HttpMatchRequest {
            headers: BTreeMap::from([("@request.auth.claims.group.id".to_string(), exact("a"))]),
            without_headers: BTreeMap::from([(
                "@request.auth.claims[role]".to_string(),
                exact("b"),
            )]),
            ..Default::default()
        };
        let out = route_match(Some(&m)).unwrap();
        assert!(out.headers.is_empty());
        let value = |v: &str| {
            string_value(StringMatcher {
                match_pattern: Some(MatchPattern::Exact(v.into())),
                ignore_case: false,
            })
        };
        let mut inverted = jwt_claims(&["role"], value("b"));
        inverted.invert = true;
        assert_eq!(
            out.dynamic_metadata,
            [jwt_claims(&["group", "id"], value("a")), inverted]
        );
        assert_eq!(routing_claims("@request.auth.claims"), None);
        assert_eq!(routing_claims("@request.auth.claims[]"), None);
        assert_eq!(routing_claims("@Request.Auth.Claims.x"), Some(vec!["x"]));
    }
}
