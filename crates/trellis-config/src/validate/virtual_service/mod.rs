//! VirtualService: hosts, gateways, delegation, and every part of an HTTP, TLS and TCP route.
//!
//! A VirtualService without hosts is a delegate: it may only carry HTTP routes and may not
//! name gateways. An HTTP route that delegates (a "root" route) may only match and delegate.
//! Rules never reached (a catch-all before others, duplicate matches) are warnings, as in
//! Istio.

use trellis_api::ObjectMeta;
use trellis_api::istio::networking::{
    HttpRoute, HttpRouteDestination, RouteDestination, VirtualService,
};

mod actions;
mod l4;
mod matches;
mod unreachable;

use super::Report;
use super::common::{self, is_dns1123_label, validate_duration};
use super::report::{at, idx};
use actions::{check_mirror_percentage, validate_mirrors};
use l4::{validate_tcp_route, validate_tls_route};
use matches::{check_authority_rewrite, check_headers, check_http_matches};
use unreachable::{warn_unreachable_http, warn_unreachable_l4};

pub(crate) use actions::{
    validate_cors_policy, validate_destination, validate_direct_response, validate_fault,
    validate_fault_abort, validate_fault_delay, validate_redirect, validate_regex_rewrite,
    validate_retry, validate_rewrite, validate_subset_name,
};

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
    use trellis_api::istio::networking::HttpRetry;

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
