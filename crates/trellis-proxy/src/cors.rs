//! Envoy's CORS filter (`envoy.filters.http.cors`) on a route's `CorsPolicy`, as pure
//! decisions over the request's method and headers:
//!
//! - no policy, the policy disabled (neither `filter_enabled` nor `shadow_enabled` rolled
//!   in), no `Origin` or an empty one: nothing happens;
//! - a preflight (`OPTIONS` with `Origin` and a non-empty `Access-Control-Request-Method`)
//!   is answered locally with 200 and the allow headers — unless the origin is not allowed
//!   and `forward_not_matching_preflights` (default true) sends it upstream like any request;
//! - any other request from an allowed origin gets `access-control-allow-origin` (the
//!   request's origin), `access-control-allow-credentials` and
//!   `access-control-expose-headers` added to its response; from an origin not allowed,
//!   nothing is added.

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

use crate::config::StringMatch;
use crate::routing::string_matches;

/// A route's CORS policy (`envoy.extensions.filters.http.cors.v3.CorsPolicy`).
#[derive(Debug, Clone, PartialEq)]
pub struct CorsPolicy {
    pub allow_origins: Vec<StringMatch>,
    /// Sent verbatim; `*` echoes the request's `access-control-request-method`.
    pub allow_methods: String,
    /// Sent verbatim; `*` echoes the request's `access-control-request-headers`.
    pub allow_headers: String,
    pub expose_headers: String,
    pub max_age: String,
    pub allow_credentials: bool,
    pub allow_private_network_access: bool,
    /// `filter_enabled` in millionths of requests (unset: every request). Requests left
    /// out pass untouched; `shadow_enabled` only changes Envoy's `cors.origin_*` stats.
    pub enabled: u32,
    pub forward_not_matching_preflights: bool,
}

/// What the filter does with one request.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Decision {
    /// Not a CORS request (or the policy is off): pass through untouched.
    #[default]
    Pass,
    /// A preflight answered locally: 200 with these headers.
    Preflight(Vec<(HeaderName, HeaderValue)>),
    /// Forward, then add these headers to the response (empty: the origin is not allowed).
    Respond(Vec<(HeaderName, HeaderValue)>),
}

/// The filter on one request: [`Decision::Pass`] unless the connection manager has the
/// filter and the route a policy.
pub fn filter(
    in_chain: bool,
    policy: Option<&CorsPolicy>,
    method: &str,
    headers: &HeaderMap,
) -> Decision {
    match policy {
        Some(p) if in_chain => decide(p, method, headers, fastrand::u32(..1_000_000)),
        _ => Decision::Pass,
    }
}

/// Envoy's decision for a request with `method` and `headers` under `policy`; `roll` is a
/// uniform draw in `0..1_000_000` for the enabled fractions.
pub fn decide(policy: &CorsPolicy, method: &str, headers: &HeaderMap, roll: u32) -> Decision {
    if roll >= policy.enabled {
        return Decision::Pass;
    }
    let Some(origin) = value(headers, "origin").filter(|o| !o.is_empty()) else {
        return Decision::Pass;
    };
    let allowed = origin_allowed(policy, origin);
    let request_method = value(headers, "access-control-request-method").unwrap_or("");
    if method != "OPTIONS" || request_method.is_empty() {
        return Decision::Respond(if allowed {
            response_headers(policy, origin)
        } else {
            Vec::new()
        });
    }
    if !allowed && policy.forward_not_matching_preflights {
        return Decision::Respond(Vec::new());
    }
    Decision::Preflight(preflight_headers(policy, origin, allowed, headers))
}

/// Adds a decision's headers to its response (the local preflight answer or the
/// forwarded request's), replacing what was there.
pub fn apply(decision: &Decision, response: &mut HeaderMap) {
    if let Decision::Preflight(add) | Decision::Respond(add) = decision {
        for (name, value) in add {
            response.insert(name.clone(), value.clone());
        }
    }
}

fn origin_allowed(policy: &CorsPolicy, origin: &str) -> bool {
    policy
        .allow_origins
        .iter()
        .any(|m| string_matches(m, "*") || string_matches(m, origin))
}

fn preflight_headers(
    policy: &CorsPolicy,
    origin: &str,
    allowed: bool,
    request: &HeaderMap,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    if allowed {
        push(&mut out, "access-control-allow-origin", origin);
    }
    if policy.allow_credentials {
        push(&mut out, "access-control-allow-credentials", "true");
    }
    let echo = |configured: &str, asked: &str| match configured {
        "*" => value(request, asked).unwrap_or("").to_string(),
        other => other.to_string(),
    };
    if !policy.allow_methods.is_empty() {
        let methods = echo(&policy.allow_methods, "access-control-request-method");
        push(&mut out, "access-control-allow-methods", &methods);
    }
    if !policy.allow_headers.is_empty() {
        let headers = echo(&policy.allow_headers, "access-control-request-headers");
        push(&mut out, "access-control-allow-headers", &headers);
    }
    if !policy.max_age.is_empty() {
        push(&mut out, "access-control-max-age", &policy.max_age);
    }
    if policy.allow_private_network_access
        && value(request, "access-control-request-private-network") == Some("true")
    {
        push(&mut out, "access-control-allow-private-network", "true");
    }
    out
}

fn response_headers(policy: &CorsPolicy, origin: &str) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    push(&mut out, "access-control-allow-origin", origin);
    if policy.allow_credentials {
        push(&mut out, "access-control-allow-credentials", "true");
    }
    if !policy.expose_headers.is_empty() {
        push(
            &mut out,
            "access-control-expose-headers",
            &policy.expose_headers,
        );
    }
    out
}

fn push(out: &mut Vec<(HeaderName, HeaderValue)>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        out.push((HeaderName::from_static(name), v));
    }
}

fn value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CorsPolicy {
        CorsPolicy {
            allow_origins: vec![StringMatch::Exact("https://example.com".into(), false)],
            allow_methods: "POST,GET".into(),
            allow_headers: "X-Foo-Bar".into(),
            expose_headers: "X-Expose".into(),
            max_age: "86400".into(),
            allow_credentials: true,
            allow_private_network_access: false,
            enabled: 1_000_000,
            forward_not_matching_preflights: true,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(*n, HeaderValue::from_static(v));
        }
        h
    }

    fn names(d: &Decision) -> Vec<(String, String)> {
        let list = match d {
            Decision::Preflight(l) | Decision::Respond(l) => l.clone(),
            Decision::Pass => Vec::new(),
        };
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    const PREFLIGHT: &[(&str, &str)] = &[
        ("origin", "https://example.com"),
        ("access-control-request-method", "POST"),
    ];

    #[test]
    fn allowed_preflights_are_answered_with_the_allow_headers() {
        let d = decide(&policy(), "OPTIONS", &headers(PREFLIGHT), 0);
        assert!(matches!(d, Decision::Preflight(_)));
        let h = names(&d);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(
            get("access-control-allow-origin"),
            Some("https://example.com")
        );
        assert_eq!(get("access-control-allow-methods"), Some("POST,GET"));
        assert_eq!(get("access-control-allow-headers"), Some("X-Foo-Bar"));
        assert_eq!(get("access-control-max-age"), Some("86400"));
        assert_eq!(get("access-control-allow-credentials"), Some("true"));
        assert_eq!(get("access-control-expose-headers"), None);
    }

    #[test]
    fn preflights_from_other_origins_are_forwarded_or_answered_bare() {
        let other = headers(&[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ]);
        assert_eq!(
            decide(&policy(), "OPTIONS", &other, 0),
            Decision::Respond(Vec::new())
        );
        let strict = CorsPolicy {
            forward_not_matching_preflights: false,
            ..policy()
        };
        let d = decide(&strict, "OPTIONS", &other, 0);
        let h = names(&d);
        assert!(matches!(d, Decision::Preflight(_)));
        assert!(
            h.iter().all(|(n, _)| n != "access-control-allow-origin"),
            "{h:?}"
        );
    }

    #[test]
    fn simple_requests_get_origin_credentials_and_expose_headers() {
        let d = decide(
            &policy(),
            "GET",
            &headers(&[("origin", "https://example.com")]),
            0,
        );
        assert_eq!(names(&d).len(), 3);
        let mut response = HeaderMap::new();
        apply(&d, &mut response);
        assert_eq!(
            response["access-control-allow-origin"],
            "https://example.com"
        );
        assert_eq!(response["access-control-expose-headers"], "X-Expose");
        let other = decide(
            &policy(),
            "GET",
            &headers(&[("origin", "https://evil.example")]),
            0,
        );
        assert_eq!(other, Decision::Respond(Vec::new()));
    }

    #[test]
    fn no_origin_disabled_or_shadow_passes() {
        assert_eq!(
            decide(&policy(), "GET", &HeaderMap::new(), 0),
            Decision::Pass
        );
        let off = CorsPolicy {
            enabled: 0,
            ..policy()
        };
        assert_eq!(
            decide(&off, "OPTIONS", &headers(PREFLIGHT), 0),
            Decision::Pass
        );
    }

    #[test]
    fn wildcards_echo_the_request() {
        let p = CorsPolicy {
            allow_origins: vec![StringMatch::Exact("*".into(), false)],
            allow_methods: "*".into(),
            allow_headers: "*".into(),
            ..policy()
        };
        let mut h = headers(PREFLIGHT);
        h.insert(
            "access-control-request-headers",
            HeaderValue::from_static("x-a"),
        );
        h.insert("origin", HeaderValue::from_static("https://any.example"));
        let got = names(&decide(&p, "OPTIONS", &h, 0));
        assert!(got.contains(&("access-control-allow-methods".into(), "POST".into())));
        assert!(got.contains(&("access-control-allow-headers".into(), "x-a".into())));
        assert!(got.contains(&(
            "access-control-allow-origin".into(),
            "https://any.example".into()
        )));
    }
}
