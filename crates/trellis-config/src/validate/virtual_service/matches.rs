//! HTTP match conditions: URI, header, query and gateway matchers, header operations, and
//! authority rewrites, which depend on them.

use trellis_api::istio::networking::{Headers, HttpMatchRequest, HttpRewrite, StringMatch};

use super::check_gateway_names;
use crate::validate::Report;
use crate::validate::common::{self, is_dns1123_label, validate_port};
use crate::validate::report::{at, idx, key};

pub(super) fn check_http_matches(r: &mut Report, path: &str, matches: &[HttpMatchRequest]) {
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
pub(super) fn check_string_match(
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
pub(super) fn check_headers(r: &mut Report, path: &str, headers: Option<&Headers>) {
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
pub(super) fn check_authority_rewrite(
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
