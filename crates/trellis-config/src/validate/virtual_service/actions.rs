//! What an HTTP route does: destinations, CORS, faults, mirrors, redirects, direct responses,
//! retries and rewrites. VirtualService fragments reuse these checks.

use trellis_api::istio::networking::{
    CorsPolicy, Destination, HttpDirectResponse, HttpFaultInjection, HttpFaultInjectionAbort,
    HttpFaultInjectionDelay, HttpMatchRequest, HttpMirrorPolicy, HttpRedirect, HttpRetry,
    HttpRewrite, RegexRewrite,
};

use crate::validate::Report;
use crate::validate::common::{self, is_dns1123_label, validate_duration, validate_port};
use crate::validate::report::{at, idx};

pub(crate) fn validate_cors_policy(r: &mut Report, path: &str, cors: &CorsPolicy) {
    for (i, origin) in cors.allow_origins.iter().enumerate() {
        let p = idx(path, "allowOrigins", i);
        let value = origin
            .exact
            .as_deref()
            .or(origin.prefix.as_deref())
            .or(origin.regex.as_deref())
            .unwrap_or_default();
        if value.is_empty() {
            r.error(
                &p,
                "'' is not a valid match type for CORS allow origins".to_string(),
            );
            continue;
        }
        if let Some(re) = &origin.regex {
            r.check(&p, common::validate_regex(re, "corsPolicy.allowOrigins"));
        }
    }
    for (i, m) in cors.allow_methods.iter().enumerate() {
        if !matches!(
            m.as_str(),
            "GET"
                | "HEAD"
                | "POST"
                | "PUT"
                | "PATCH"
                | "DELETE"
                | "CONNECT"
                | "OPTIONS"
                | "TRACE"
                | "*"
        ) {
            r.error(
                &idx(path, "allowMethods", i),
                format!("{m:?} is not a supported HTTP method"),
            );
        }
    }
    for (field, names) in [
        ("allowHeaders", &cors.allow_headers),
        ("exposeHeaders", &cors.expose_headers),
    ] {
        for (i, name) in names.iter().enumerate() {
            let p = idx(path, field, i);
            if name.is_empty() {
                r.error(&p, "header name cannot be empty");
            } else if name != "*" && !common::is_http_token(name) {
                r.error(&p, format!("header name {name} is not a valid header name"));
            }
        }
    }
    if let Some(max_age) = &cors.max_age {
        let p = at(path, "maxAge");
        r.check(&p, validate_duration(max_age));
        if max_age.as_nanos() % 1_000_000_000 != 0 {
            r.error(&p, "max_age duration is accurate only to seconds precision");
        }
    }
}

pub(crate) fn validate_fault(r: &mut Report, path: &str, fault: &HttpFaultInjection) {
    if fault.abort.is_none() && fault.delay.is_none() {
        r.error(
            path,
            "HTTP fault injection must have an abort and/or a delay",
        );
    }
    if let Some(abort) = &fault.abort {
        validate_fault_abort(r, &at(path, "abort"), abort);
    }
    if let Some(delay) = &fault.delay {
        validate_fault_delay(r, &at(path, "delay"), delay);
    }
}

pub(super) const GRPC_STATUSES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

pub(crate) fn validate_fault_abort(r: &mut Report, path: &str, abort: &HttpFaultInjectionAbort) {
    common::check_oneofs(r, path, abort);
    if let Some(p) = &abort.percentage {
        r.check(
            &at(path, "percentage"),
            common::validate_percentage(p.value),
        );
    }
    if let Some(status) = &abort.grpc_status {
        if !GRPC_STATUSES.contains(&status.as_str()) {
            r.error(
                &at(path, "grpcStatus"),
                format!(
                    "gRPC status {status:?} is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, for example 'NOT_FOUND'"
                ),
            );
        }
    } else if abort.http2_error.is_some() {
        r.error(
            &at(path, "http2Error"),
            "HTTP/2 abort fault injection not supported yet",
        );
    } else if let Some(status) = abort.http_status {
        r.check(&at(path, "httpStatus"), validate_http_status(status));
    } else {
        r.warn(path, "abort configured, but error type not set");
    }
}

pub(super) fn validate_http_status(status: i32) -> Result<(), String> {
    if !(200..=600).contains(&status) {
        return Err(format!("HTTP status {status} is not in range 200-599"));
    }
    Ok(())
}

pub(crate) fn validate_fault_delay(r: &mut Report, path: &str, delay: &HttpFaultInjectionDelay) {
    common::check_oneofs(r, path, delay);
    if let Some(p) = &delay.percentage {
        r.check(
            &at(path, "percentage"),
            common::validate_percentage(p.value),
        );
    }
    if let Some(d) = &delay.fixed_delay {
        r.check(&at(path, "fixedDelay"), validate_duration(d));
    } else if let Some(d) = &delay.exponential_delay {
        r.check(&at(path, "exponentialDelay"), validate_duration(d));
        r.error(
            &at(path, "exponentialDelay"),
            "exponentialDelay not supported yet",
        );
    }
}

/// A destination host (FQDN or wildcard, never `*`), subset name and port.
pub(crate) fn validate_destination(r: &mut Report, path: &str, d: &Destination) {
    if d.host == "*" {
        r.error(
            &at(path, "host"),
            format!("invalid destination host {}", d.host),
        );
    } else {
        r.check(&at(path, "host"), common::validate_wildcard_domain(&d.host));
    }
    if !d.subset.is_empty() {
        r.check(&at(path, "subset"), validate_subset_name(&d.subset));
    }
    if let Some(port) = &d.port {
        r.check(&at(path, "port"), validate_port(i64::from(port.number)));
    }
}

/// Subset names become part of cluster names: DNS-1123 labels.
pub(crate) fn validate_subset_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("subset name cannot be empty".to_string());
    }
    if !is_dns1123_label(name) {
        return Err(format!("subset name is invalid: {name}"));
    }
    Ok(())
}

pub(super) fn check_mirror_percentage(r: &mut Report, path: &str, value: f64, what: &str) {
    if value > 100.0 {
        r.error(
            path,
            format!("{what} must have a max value of 100 (it has {value})"),
        );
    }
    if value < 0.0 {
        r.error(
            path,
            format!("{what} must have a min value of 0 (it has {value})"),
        );
    }
}

pub(super) fn validate_mirrors(r: &mut Report, path: &str, mirrors: &[HttpMirrorPolicy]) {
    for (i, m) in mirrors.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(dest) = &m.destination else {
            r.error(&p, "destination is required for mirrors");
            continue;
        };
        validate_destination(r, &at(&p, "destination"), dest);
        if let Some(pct) = &m.percentage {
            check_mirror_percentage(r, &at(&p, "percentage"), pct.value, "mirror percentage");
        }
    }
}

/// A redirect: something to redirect to, a 3xx code, http(s) scheme, a valid port.
/// Istio reports only the first problem.
pub(crate) fn validate_redirect(
    r: &mut Report,
    path: &str,
    redirect: &HttpRedirect,
    matches: &[HttpMatchRequest],
) {
    common::check_oneofs(r, path, redirect);
    r.check(path, redirect_problem(redirect, matches));
}

pub(super) fn redirect_problem(
    redirect: &HttpRedirect,
    matches: &[HttpMatchRequest],
) -> Result<(), String> {
    if !redirect.uri.is_empty() && !redirect.prefix_rewrite.is_empty() {
        return Err("redirect may only specify one of uri or prefix_rewrite".to_string());
    }
    if !redirect.prefix_rewrite.is_empty()
        && matches
            .iter()
            .any(|m| m.uri.as_ref().is_some_and(|u| u.prefix.is_none()))
    {
        return Err(
            "redirect prefix_rewrite requires all URI matches to use prefix match type".to_string(),
        );
    }
    if redirect.uri.is_empty()
        && redirect.prefix_rewrite.is_empty()
        && redirect.authority.is_empty()
        && redirect.port.is_none()
        && redirect.derive_port.is_none()
        && redirect.scheme.is_empty()
    {
        return Err("redirect must specify URI, authority, scheme, or port".to_string());
    }
    if redirect.redirect_code != 0 && !(300..=399).contains(&redirect.redirect_code) {
        return Err(format!(
            "{} is not a valid redirect code, must be 3xx",
            redirect.redirect_code
        ));
    }
    if !redirect.scheme.is_empty() && redirect.scheme != "http" && redirect.scheme != "https" {
        return Err("invalid redirect scheme, must be \"http\" or \"https\"".to_string());
    }
    if let Some(port) = redirect.port
        && port > 0
    {
        validate_port(i64::from(port))?;
    }
    Ok(())
}

pub(crate) fn validate_direct_response(r: &mut Report, path: &str, dr: &HttpDirectResponse) {
    if let Some(body) = &dr.body {
        common::check_oneofs(r, &at(path, "body"), body);
        let size = body
            .string
            .as_ref()
            .or(body.bytes.as_ref())
            .map_or(0, String::len);
        if size > 1024 * 1024 {
            r.error(
                &at(path, "body"),
                "large direct_responses may impact control plane performance, must be less than 1MB",
            );
        } else if size > 100 * 1024 {
            r.warn(
                &at(path, "body"),
                "large direct_responses may impact control plane performance",
            );
        }
    }
    let status = i32::try_from(dr.status).unwrap_or(i32::MAX);
    r.check(&at(path, "status"), validate_http_status(status));
}

pub(super) const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// HTTP status codes Go's `net/http` knows a text for (Istio accepts those in `retryOn`).
pub(super) fn is_known_http_status(code: i64) -> bool {
    matches!(
        code,
        100..=103
            | 200..=208
            | 226
            | 300..=305
            | 307
            | 308
            | 400..=418
            | 421..=426
            | 428
            | 429
            | 431
            | 451
            | 500..=508
            | 510
            | 511
    )
}

/// A retry policy: attempts >= 0, nothing else set when attempts is 0, known retryOn
/// conditions, ms-precision timeouts.
pub(crate) fn validate_retry(r: &mut Report, path: &str, retry: &HttpRetry) {
    if retry.attempts < 0 {
        r.error(&at(path, "attempts"), "attempts cannot be negative");
    }
    if retry.attempts == 0
        && (retry.per_try_timeout.is_some()
            || !retry.retry_on.is_empty()
            || retry.retry_remote_localities.is_some())
    {
        r.error(
            path,
            "http retry policy configured when attempts are set to 0 (disabled)",
        );
    }
    if let Some(t) = &retry.per_try_timeout {
        r.check(&at(path, "perTryTimeout"), validate_duration(t));
    }
    if !retry.retry_on.is_empty() {
        for policy in retry.retry_on.split(',') {
            let as_status = policy
                .parse::<i64>()
                .ok()
                .filter(|c| is_known_http_status(*c));
            if as_status.is_none() && !RETRY_ON.contains(&policy) {
                r.error(
                    &at(path, "retryOn"),
                    format!("{policy:?} is not a valid retryOn policy"),
                );
            }
        }
    }
    if let Some(b) = &retry.backoff {
        r.check(&at(path, "backoff"), validate_duration(b));
    }
}

pub(crate) fn validate_rewrite(r: &mut Report, path: &str, rw: &HttpRewrite) {
    if !rw.uri.is_empty() && rw.uri_regex_rewrite.is_some() {
        r.error(
            path,
            "rewrite may only contain one of URI or UriRegexRewrite",
        );
        return;
    }
    if rw.uri.is_empty() && rw.uri_regex_rewrite.is_none() && rw.authority.is_empty() {
        r.error(
            path,
            "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified",
        );
        return;
    }
    if let Some(re) = &rw.uri_regex_rewrite {
        validate_regex_rewrite(r, &at(path, "uriRegexRewrite"), re);
    }
}

pub(crate) fn validate_regex_rewrite(r: &mut Report, path: &str, re: &RegexRewrite) {
    if re.r#match.is_empty() || re.rewrite.is_empty() {
        r.error(
            path,
            "UriRegexRewrite has errors: UriRegexRewrite requires both Rewrite and Match fields to be specified",
        );
        return;
    }
    if let Err(e) = common::validate_regex(&re.r#match, "HTTPRewrite.UriRegexRewrite.Match") {
        r.error(path, format!("UriRegexRewrite has errors: {e}"));
    }
}
