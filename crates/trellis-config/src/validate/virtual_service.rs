//! VirtualService: hosts, gateways, delegation, and every part of an HTTP, TLS and TCP route.
//!
//! A VirtualService without hosts is a delegate: it may only carry HTTP routes and may not
//! name gateways. An HTTP route that delegates (a "root" route) may only match and delegate.
//! Rules never reached (a catch-all before others, duplicate matches) are warnings, as in
//! Istio.

use trellis_api::ObjectMeta;
use trellis_api::istio::networking::{
    CorsPolicy, Destination, Headers, HttpDirectResponse, HttpFaultInjection,
    HttpFaultInjectionAbort, HttpFaultInjectionDelay, HttpMatchRequest, HttpMirrorPolicy,
    HttpRedirect, HttpRetry, HttpRewrite, HttpRoute, HttpRouteDestination, L4MatchAttributes,
    RegexRewrite, RouteDestination, StringMatch, TcpRoute, TlsMatchAttributes, TlsRoute,
    VirtualService,
};

use super::Report;
use super::common::{self, is_dns1123_label, validate_duration, validate_port};
use super::report::{at, idx, key};

const MESH_GATEWAY: &str = "mesh";

/// How an HTTP route relates to delegation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteKind {
    /// An ordinary route.
    Independent,
    /// A route of a root VirtualService that delegates to another.
    Root,
    /// A route of a delegate VirtualService (one without hosts).
    Delegate,
}

pub(crate) fn validate_virtual_service(r: &mut Report, meta: &ObjectMeta, vs: &VirtualService) {
    let is_delegate = vs.hosts.is_empty();
    if is_delegate {
        if !vs.gateways.is_empty() {
            r.error(
                "spec.gateways",
                "delegate virtual service must have no gateways specified",
            );
        }
        if !vs.tls.is_empty() {
            r.error(
                "spec.tls",
                "delegate virtual service must have no tls route specified",
            );
        }
        if !vs.tcp.is_empty() {
            r.error(
                "spec.tcp",
                "delegate virtual service must have no tcp route specified",
            );
        }
    }
    let gateway_semantics = meta
        .annotations
        .get("internal.istio.io/route-semantics")
        .is_some_and(|v| v == "gateway");

    let applies_to_gateway = !vs.gateways.is_empty() && !vs.gateways.iter().any(|g| g == "mesh");
    let applies_to_mesh = !applies_to_gateway;
    if !vs.gateways.is_empty() {
        check_gateway_names(r, "spec.gateways", &vs.gateways, gateway_semantics);
    }

    if !applies_to_gateway {
        for (i, http) in vs.http.iter().enumerate() {
            for (j, m) in http.r#match.iter().enumerate() {
                let path = format!("spec.http[{i}].match[{j}]");
                for name in m.headers.keys().chain(m.without_headers.keys()) {
                    if common::is_jwt_claim_route(name) {
                        r.error(
                            &path,
                            format!(
                                "JWT claim based routing (key: {name}) is only supported for gateway, found no gateways: {:?}",
                                vs.gateways
                            ),
                        );
                    }
                }
            }
        }
    }

    let sni = is_sni_host(vs);
    let mut all_hosts_valid = true;
    for (i, host) in vs.hosts.iter().enumerate() {
        let path = idx("spec", "hosts", i);
        let result = if applies_to_gateway {
            common::validate_wildcard_domain_for_gateway_vs(sni, host)
        } else {
            common::validate_wildcard_domain(host)
        };
        match result {
            Err(e) => {
                if !common::is_ip(host) {
                    r.error(&path, e);
                    all_hosts_valid = false;
                }
            }
            Ok(()) if applies_to_mesh && host == "*" => {
                r.error(
                    &path,
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                );
                all_hosts_valid = false;
            }
            Ok(()) => {}
        }
    }
    if all_hosts_valid {
        for i in 0..vs.hosts.len() {
            for j in i + 1..vs.hosts.len() {
                if trellis_api::host::overlaps(&vs.hosts[i], &vs.hosts[j]) {
                    r.error(
                        "spec.hosts",
                        format!(
                            "duplicate hosts in virtual service: {} & {}",
                            vs.hosts[i], vs.hosts[j]
                        ),
                    );
                }
            }
        }
    }

    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        r.error(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }
    for (i, http) in vs.http.iter().enumerate() {
        let kind = route_kind(http, is_delegate);
        validate_http_route(r, &idx("spec", "http", i), http, kind, gateway_semantics);
    }
    for (i, tls) in vs.tls.iter().enumerate() {
        validate_tls_route(r, &idx("spec", "tls", i), tls, vs, gateway_semantics);
    }
    for (i, tcp) in vs.tcp.iter().enumerate() {
        validate_tcp_route(r, &idx("spec", "tcp", i), tcp, gateway_semantics);
    }
    for e in common::validate_export_to(&meta.namespace, &vs.export_to, false, false) {
        r.error("spec.exportTo", e);
    }
    warn_unreachable_http(r, &vs.http);
    warn_unreachable_l4(r, "spec.tcp", vs.tcp.iter().map(|t| t.r#match.as_slice()));
    warn_unreachable_l4(r, "spec.tls", vs.tls.iter().map(|t| t.r#match.as_slice()));
}

/// Whether a route of this VirtualService delegates, is delegated to, or neither.
pub(crate) fn route_kind(http: &HttpRoute, in_delegate: bool) -> RouteKind {
    if in_delegate {
        RouteKind::Delegate
    } else if http.delegate.is_some() {
        RouteKind::Root
    } else {
        RouteKind::Independent
    }
}

fn is_sni_host(vs: &VirtualService) -> bool {
    vs.tls
        .iter()
        .any(|t| t.r#match.iter().any(|m| !m.sni_hosts.is_empty()))
}

/// Gateway references: `namespace/name`, or a legacy `name.namespace` FQDN (a warning).
pub(crate) fn check_gateway_names(
    r: &mut Report,
    path: &str,
    names: &[String],
    gateway_semantics: bool,
) {
    for (i, name) in names.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some((ns, gw)) = name.split_once('/') else {
            if let Some((first, rest)) = name.split_once('.') {
                let second = rest.split('.').next().unwrap_or_default();
                r.warn(
                    &p,
                    format!(
                        "using legacy gatewayName format {name:?}; prefer the <namespace>/<name> format: \"{second}/{first}\""
                    ),
                );
            }
            r.check(&p, common::validate_fqdn(name));
            // Istio stops at the first legacy name.
            return;
        };
        if ns.is_empty() || gw.is_empty() {
            r.error(&p, "config namespace and gateway name cannot be empty");
        }
        if !is_dns1123_label(ns) {
            r.error(&p, format!("invalid value for namespace: {ns:?}"));
        }
        if !is_dns1123_label(gw) && !gateway_semantics {
            r.error(&p, format!("invalid value for gateway name: {gw:?}"));
        }
    }
}

/// One HTTP route, by the rules for its [`RouteKind`].
pub(crate) fn validate_http_route(
    r: &mut Report,
    path: &str,
    http: &HttpRoute,
    kind: RouteKind,
    gateway_semantics: bool,
) {
    check_route_conflicts(r, path, http, kind);
    check_http_matches(r, path, &http.r#match);
    check_headers(r, &at(path, "headers"), http.headers.as_ref());
    if let Some(cors) = &http.cors_policy {
        validate_cors_policy(r, &at(path, "corsPolicy"), cors);
    }
    if let Some(fault) = &http.fault {
        validate_fault(r, &at(path, "fault"), fault);
    }
    if let Some(value) = http.mirror_percent {
        if value > 100 {
            r.error(
                &at(path, "mirrorPercent"),
                format!("mirror_percent must have a max value of 100 (it has {value})"),
            );
        }
        r.warn(
            &at(path, "mirrorPercent"),
            "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
        );
    }
    if let Some(p) = &http.mirror_percentage {
        check_mirror_percentage(
            r,
            &at(path, "mirrorPercentage"),
            p.value,
            "mirror_percentage",
        );
    }
    if let Some(mirror) = &http.mirror {
        validate_destination(r, &at(path, "mirror"), mirror);
    }
    validate_mirrors(r, &at(path, "mirrors"), &http.mirrors);
    if let Some(redirect) = &http.redirect {
        validate_redirect(r, &at(path, "redirect"), redirect, &http.r#match);
    }
    if let Some(dr) = &http.direct_response {
        validate_direct_response(r, &at(path, "directResponse"), dr);
    }
    if let Some(retries) = &http.retries {
        validate_retry(r, &at(path, "retries"), retries);
    }
    if let Some(rewrite) = &http.rewrite {
        validate_rewrite(r, &at(path, "rewrite"), rewrite);
    }
    check_authority_rewrite(r, path, http.rewrite.as_ref(), http.headers.as_ref());
    validate_http_route_destinations(r, &at(path, "route"), &http.route, gateway_semantics);
    if let Some(t) = &http.timeout {
        r.check(&at(path, "timeout"), validate_duration(t));
    }
}

fn check_route_conflicts(r: &mut Report, path: &str, http: &HttpRoute, kind: RouteKind) {
    if kind == RouteKind::Root {
        if http.redirect.is_some() {
            r.error(
                path,
                format!("root HTTP route {} must not specify redirect", http.name),
            );
        }
        if !http.route.is_empty() {
            r.error(
                path,
                format!("root HTTP route {} must not specify route", http.name),
            );
        }
        return;
    }
    if kind == RouteKind::Delegate && http.delegate.is_some() {
        r.error(path, "delegate HTTP route cannot contain delegate");
    }
    check_exclusive_actions(r, path, http);
    if http.mirror.is_some() && !http.mirrors.is_empty() {
        r.error(path, "HTTP route cannot contain both mirror and mirrors");
    }
}

fn check_http_matches(r: &mut Report, path: &str, matches: &[HttpMatchRequest]) {
    for (i, m) in matches.iter().enumerate() {
        let mp = idx(path, "match", i);
        for (name, sm) in &m.headers {
            let hp = key(&mp, "headers", name);
            r.check(&hp, common::validate_header_name_or_jwt_claim(name));
            check_string_match(r, &hp, Some(sm), "headers", false);
        }
        for (name, sm) in &m.without_headers {
            let hp = key(&mp, "withoutHeaders", name);
            r.check(&hp, common::validate_header_name_or_jwt_claim(name));
            // `regex: "*"` means "present", not a regular expression.
            if sm.regex.as_deref() != Some("*") {
                check_string_match(r, &hp, Some(sm), "withoutHeaders", false);
            }
        }
        // An empty URI prefix is allowed (it matches everything); the others are not.
        check_string_match(r, &at(&mp, "uri"), m.uri.as_ref(), "uri", true);
        check_string_match(r, &at(&mp, "scheme"), m.scheme.as_ref(), "scheme", false);
        check_string_match(r, &at(&mp, "method"), m.method.as_ref(), "method", false);
        check_string_match(
            r,
            &at(&mp, "authority"),
            m.authority.as_ref(),
            "authority",
            false,
        );
        for (name, sm) in &m.query_params {
            check_string_match(
                r,
                &key(&mp, "queryParams", name),
                Some(sm),
                "queryParams",
                false,
            );
        }
        if m.port != 0 {
            r.check(&at(&mp, "port"), validate_port(i64::from(m.port)));
        }
        for e in common::validate_labels(&m.source_labels) {
            r.error(&at(&mp, "sourceLabels"), e);
        }
        check_gateway_names(r, &at(&mp, "gateways"), &m.gateways, false);
        if !m.source_namespace.is_empty() && !is_dns1123_label(&m.source_namespace) {
            r.error(
                &at(&mp, "sourceNamespace"),
                format!("sourceNamespace match {} is invalid", m.source_namespace),
            );
        }
    }
}

/// A string match: one kind only; prefix non-empty (unless `allow_empty_prefix`); regex
/// non-empty and valid RE2.
fn check_string_match(
    r: &mut Report,
    path: &str,
    sm: Option<&StringMatch>,
    where_: &str,
    allow_empty_prefix: bool,
) {
    let Some(sm) = sm else {
        return;
    };
    common::check_oneofs(r, path, sm);
    if let Some(prefix) = &sm.prefix
        && prefix.is_empty()
        && !allow_empty_prefix
    {
        r.error(
            path,
            format!("{where_:?}: prefix string match should not be empty"),
        );
    }
    if let Some(re) = &sm.regex {
        if re.is_empty() {
            r.error(
                path,
                format!("{where_:?}: regex string match should not be empty"),
            );
        } else {
            r.check(path, common::validate_regex(re, where_));
        }
    }
}

/// Header operations of a route or a destination.
fn check_headers(r: &mut Report, path: &str, headers: Option<&Headers>) {
    let Some(headers) = headers else {
        return;
    };
    if let Some(req) = &headers.request {
        let p = at(path, "request");
        for (name, val) in req.add.iter().chain(req.set.iter()) {
            r.check(&p, common::validate_header_set_name(name));
            r.check(&p, common::validate_header_value(val));
        }
        for name in &req.remove {
            r.check(&p, common::validate_header_operation_name(name));
        }
    }
    if let Some(resp) = &headers.response {
        let p = at(path, "response");
        for (name, val) in resp.add.iter().chain(resp.set.iter()) {
            r.check(&p, common::validate_header_operation_name(name));
            r.check(&p, common::validate_header_value(val));
        }
        for name in &resp.remove {
            r.check(&p, common::validate_header_operation_name(name));
        }
    }
}

/// The authority may be rewritten in one place only (rewrite.authority, or a request
/// header `:authority`/`host`).
fn check_authority_rewrite(
    r: &mut Report,
    path: &str,
    rewrite: Option<&HttpRewrite>,
    headers: Option<&Headers>,
) {
    let mut current = rewrite.map(|rw| rw.authority.clone()).unwrap_or_default();
    let Some(req) = headers.and_then(|h| h.request.as_ref()) else {
        return;
    };
    for (k, v) in req.set.iter().chain(req.add.iter()) {
        if !common::is_authority_header(k) {
            continue;
        }
        if !current.is_empty() {
            r.error(
                path,
                format!(
                    "authority header cannot be set multiple times: have {current:?}, attempting to set {v:?}"
                ),
            );
            return;
        }
        current = v.clone();
    }
}

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

const GRPC_STATUSES: &[&str] = &[
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

fn validate_http_status(status: i32) -> Result<(), String> {
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

fn check_mirror_percentage(r: &mut Report, path: &str, value: f64, what: &str) {
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

fn validate_mirrors(r: &mut Report, path: &str, mirrors: &[HttpMirrorPolicy]) {
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

fn redirect_problem(redirect: &HttpRedirect, matches: &[HttpMatchRequest]) -> Result<(), String> {
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

const RETRY_ON: &[&str] = &[
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
fn is_known_http_status(code: i64) -> bool {
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

/// Weighted HTTP destinations: each has a destination, non-negative weight, valid header
/// operations; several destinations may not all weigh 0.
pub(crate) fn validate_http_route_destinations(
    r: &mut Report,
    path: &str,
    routes: &[HttpRouteDestination],
    gateway_semantics: bool,
) {
    let mut total: i64 = 0;
    for (i, rd) in routes.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match &rd.destination {
            None => r.error(&p, "destination is required"),
            Some(d) if !gateway_semantics => validate_destination(r, &at(&p, "destination"), d),
            Some(_) => {}
        }
        check_headers(r, &at(&p, "headers"), rd.headers.as_ref());
        if rd.weight < 0 {
            r.error(&at(&p, "weight"), format!("weight {} < 0", rd.weight));
        }
        total += i64::from(rd.weight);
    }
    if routes.len() > 1 && total == 0 {
        r.error(path, "total destination weight = 0");
    }
}

/// Weighted TCP/TLS destinations.
pub(crate) fn validate_route_destinations(
    r: &mut Report,
    path: &str,
    routes: &[RouteDestination],
    gateway_semantics: bool,
) {
    let mut total: i64 = 0;
    for (i, rd) in routes.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match &rd.destination {
            None => r.error(&p, "destination is required"),
            Some(d) if !gateway_semantics => validate_destination(r, &at(&p, "destination"), d),
            Some(_) => {}
        }
        if rd.weight < 0 {
            r.error(&at(&p, "weight"), format!("weight {} < 0", rd.weight));
        }
        total += i64::from(rd.weight);
    }
    if routes.len() > 1 && total == 0 {
        r.error(path, "total destination weight = 0");
    }
}

fn validate_tls_route(
    r: &mut Report,
    path: &str,
    tls: &TlsRoute,
    vs: &VirtualService,
    gateway_semantics: bool,
) {
    if tls.r#match.is_empty() {
        r.error(path, "TLS route must have at least one match condition");
    }
    for (i, m) in tls.r#match.iter().enumerate() {
        validate_tls_match(r, &idx(path, "match", i), m, vs);
    }
    if tls.route.is_empty() {
        r.error(path, "TLS route is required");
    }
    validate_route_destinations(r, &at(path, "route"), &tls.route, gateway_semantics);
}

fn validate_tls_match(r: &mut Report, path: &str, m: &TlsMatchAttributes, vs: &VirtualService) {
    if m.sni_hosts.is_empty() {
        r.error(path, "TLS match must have at least one SNI host");
    }
    for (i, sni) in m.sni_hosts.iter().enumerate() {
        validate_sni_host(r, &idx(path, "sniHosts", i), sni, vs);
    }
    for (i, s) in m.destination_subnets.iter().enumerate() {
        r.check(
            &idx(path, "destinationSubnets", i),
            common::validate_ip_subnet(s),
        );
    }
    if m.port != 0 {
        r.check(&at(path, "port"), validate_port(i64::from(m.port)));
    }
    for e in common::validate_labels(&m.source_labels) {
        r.error(&at(path, "sourceLabels"), e);
    }
    check_gateway_names(r, &at(path, "gateways"), &m.gateways, false);
}

fn validate_sni_host(r: &mut Report, path: &str, sni: &str, vs: &VirtualService) {
    let to_gateway = !vs.gateways.iter().any(|g| g == MESH_GATEWAY);
    let result = if to_gateway {
        common::validate_wildcard_domain_for_gateway_vs(true, sni)
    } else {
        common::validate_wildcard_domain(sni)
    };
    if let Err(e) = result {
        if common::is_ip(sni) {
            r.warn(
                path,
                format!(
                    "using an IP address ({sni:?}) goes against SNI spec and most clients do not support this"
                ),
            );
        } else {
            r.error(path, e);
        }
        return;
    }
    if vs.hosts.iter().any(|h| trellis_api::host::covers(h, sni)) {
        return;
    }
    r.error(
        path,
        format!(
            "SNI host {sni:?} is not a compatible subset of any of the virtual service hosts: [{}]",
            vs.hosts.join(", ")
        ),
    );
}

fn validate_tcp_route(r: &mut Report, path: &str, tcp: &TcpRoute, gateway_semantics: bool) {
    for (i, m) in tcp.r#match.iter().enumerate() {
        validate_l4_match(r, &idx(path, "match", i), m);
    }
    if tcp.route.is_empty() {
        r.error(path, "TCP route is required");
    }
    validate_route_destinations(r, &at(path, "route"), &tcp.route, gateway_semantics);
}

fn validate_l4_match(r: &mut Report, path: &str, m: &L4MatchAttributes) {
    for (i, s) in m.destination_subnets.iter().enumerate() {
        r.check(
            &idx(path, "destinationSubnets", i),
            common::validate_ip_subnet(s),
        );
    }
    if m.port != 0 {
        r.check(&at(path, "port"), validate_port(i64::from(m.port)));
    }
    for e in common::validate_labels(&m.source_labels) {
        r.error(&at(path, "sourceLabels"), e);
    }
    check_gateway_names(r, &at(path, "gateways"), &m.gateways, false);
}

/// Canonical form of a match for duplicate detection (the name does not route).
fn match_key(m: &HttpMatchRequest) -> String {
    let mut m = m.clone();
    m.name.clear();
    serde_json::to_string(&m).unwrap_or_default()
}

/// Warns about HTTP rules that can never be reached: anything after a catch-all, and rules
/// whose every match repeats an earlier one.
fn warn_unreachable_http(r: &mut Report, routes: &[HttpRoute]) {
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut catch_all = false;
    for (i, route) in routes.iter().enumerate() {
        let name = route_name(&route.name, i);
        let path = idx("spec", "http", i);
        if route.r#match.is_empty() {
            if catch_all {
                r.warn(
                    &path,
                    format!(
                        "virtualService rule {name} not used (only the last rule can have no matches)"
                    ),
                );
            }
            catch_all = true;
            continue;
        }
        let mut dups = 0;
        for (j, m) in route.r#match.iter().enumerate() {
            if catch_all {
                r.warn(
                    &path,
                    format!(
                        "virtualService rule {name} not used (route without matches defined before)"
                    ),
                );
                continue;
            }
            let k = match_key(m);
            if let Some((_, earlier)) = seen.iter().find(|(s, _)| *s == k) {
                let earlier_name = route_name(&routes[*earlier].name, *earlier);
                r.warn(
                    &idx(&path, "match", j),
                    format!(
                        "virtualService rule {name} match {} is not used (duplicate/overlapping match in rule {earlier_name})",
                        route_name(&m.name, j)
                    ),
                );
                dups += 1;
            } else {
                seen.push((k, i));
            }
        }
        if dups == route.r#match.len() {
            r.warn(
                &path,
                format!("virtualService rule {name} not used (all matches used by prior rules)"),
            );
        }
    }
}

fn warn_unreachable_l4<'a, M: serde::Serialize + 'a>(
    r: &mut Report,
    base: &str,
    routes: impl Iterator<Item = &'a [M]>,
) {
    let mut seen: Vec<String> = Vec::new();
    let mut catch_all = false;
    for (i, matches) in routes.enumerate() {
        let path = format!("{base}[{i}]");
        if matches.is_empty() {
            if catch_all {
                r.warn(
                    &path,
                    format!(
                        "virtualService rule #{i} not used (only the last rule can have no matches)"
                    ),
                );
            }
            catch_all = true;
            continue;
        }
        let mut dups = 0;
        for m in matches {
            if catch_all {
                r.warn(
                    &path,
                    format!(
                        "virtualService rule #{i} not used (route without matches defined before)"
                    ),
                );
                continue;
            }
            let k = serde_json::to_string(m).unwrap_or_default();
            if seen.contains(&k) {
                dups += 1;
            } else {
                seen.push(k);
            }
        }
        if dups == matches.len() {
            r.warn(
                &path,
                format!("virtualService rule #{i} not used (all matches used by prior rules)"),
            );
        }
    }
}

fn route_name(name: &str, i: usize) -> String {
    if name.is_empty() {
        format!("#{i}")
    } else {
        format!("{name:?}")
    }
}

/// A redirect or a direct response answers the request itself, so it excludes forwarding
/// (`route`) and what only applies to forwarded requests; without either, `route` is needed.
fn check_exclusive_actions(r: &mut Report, path: &str, http: &HttpRoute) {
    let action = if http.redirect.is_some() {
        "redirect"
    } else if http.direct_response.is_some() {
        "direct_response"
    } else {
        if http.route.is_empty() {
            r.error(path, "HTTP route, redirect or direct_response is required");
        }
        return;
    };
    let conflicts = [
        (!http.route.is_empty(), "HTTP route", "route"),
        (http.fault.is_some(), "HTTP route", "fault"),
        (http.rewrite.is_some(), "HTTP route rule", "rewrite"),
        (
            action == "redirect" && http.direct_response.is_some(),
            "HTTP route rule",
            "direct_response",
        ),
    ];
    for (set, subject, field) in conflicts {
        if set {
            r.error(
                path,
                format!("{subject} cannot contain both {field} and {action}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(json: serde_json::Value) -> HttpRoute {
        serde_json::from_value(json).unwrap_or_default()
    }

    fn errors(http: &HttpRoute, kind: RouteKind) -> usize {
        let mut r = Report::default();
        validate_http_route(&mut r, "http[0]", http, kind, false);
        r.error_count()
    }

    #[test]
    fn root_route_may_only_delegate() {
        let http = route(
            serde_json::json!({"delegate": {"name": "a"}, "route": [{"destination": {"host": "a.b"}}]}),
        );
        assert_eq!(errors(&http, RouteKind::Root), 1);
        let http = route(serde_json::json!({"delegate": {"name": "a"}}));
        assert_eq!(errors(&http, RouteKind::Root), 0);
    }

    #[test]
    fn retry_on_accepts_status_codes_and_known_policies() {
        let mut r = Report::default();
        let retry: HttpRetry =
            serde_json::from_value(serde_json::json!({"attempts": 3, "retryOn": "503,5xx"}))
                .unwrap_or_default();
        validate_retry(&mut r, "retries", &retry);
        assert!(!r.has_errors());
        let retry: HttpRetry =
            serde_json::from_value(serde_json::json!({"attempts": 3, "retryOn": "999,bogus"}))
                .unwrap_or_default();
        validate_retry(&mut r, "retries", &retry);
        assert_eq!(r.error_count(), 2);
    }

    #[test]
    fn weights_must_not_all_be_zero() {
        let http = route(serde_json::json!({"route": [
            {"destination": {"host": "a.b"}}, {"destination": {"host": "c.d"}}]}));
        assert_eq!(errors(&http, RouteKind::Independent), 1);
    }
}
