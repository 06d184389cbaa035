//! PeerAuthentication, AuthorizationPolicy and RequestAuthentication.
//!
//! AuthorizationPolicy rules are checked field by field (IPs, ports, service accounts,
//! trust domains, path templates, condition keys) because a mistake there silently widens
//! or narrows who gets in. DENY rules built only from HTTP attributes deny all TCP traffic
//! in scope, which is legal but surprising: a warning.

use trellis_api::istio::security::{
    AuthorizationPolicy, AuthorizationPolicyAction as Action, JwtRule, Operation,
    PeerAuthentication, RequestAuthentication, Source,
};

use super::Report;
use super::common::{self, is_cidr, is_ip};
use super::report::{at, idx};

pub(crate) fn validate_peer_authentication(r: &mut Report, pa: &PeerAuthentication) {
    let empty_selector = pa
        .selector
        .as_ref()
        .is_none_or(|s| s.match_labels.is_empty());
    if empty_selector && !pa.port_level_mtls.is_empty() {
        r.error(
            "spec.portLevelMtls",
            "mesh/namespace peer authentication cannot have port level mTLS",
        );
    }
    for port in pa.port_level_mtls.keys() {
        if *port == 0 || *port > 65535 {
            r.error(
                &format!("spec.portLevelMtls[{port}]"),
                "port must be in range 1..65535",
            );
        }
    }
    common::check_workload_selector(r, "spec.selector", pa.selector.as_ref());
}

/// Selector / targetRef / targetRefs: one kind, each well-formed.
fn check_targeting(
    r: &mut Report,
    selector: Option<&trellis_api::istio::type_v1beta1::WorkloadSelector>,
    target_ref: Option<&trellis_api::istio::type_v1beta1::PolicyTargetReference>,
    target_refs: &[trellis_api::istio::type_v1beta1::PolicyTargetReference],
) {
    common::check_one_selector_type(
        r,
        selector.is_some(),
        target_ref.is_some(),
        !target_refs.is_empty(),
    );
    common::check_workload_selector(r, "spec.selector", selector);
    if let Some(t) = target_ref {
        common::check_target_ref(r, "spec.targetRef", t);
    }
    common::check_target_refs(r, "spec.targetRefs", target_refs);
}

const CUSTOM_UNSUPPORTED_KEYS: &[&str] = &[
    "source.namespace",
    "source.serviceAccount",
    "source.trustDomain",
    "source.principal",
];

pub(crate) fn validate_authorization_policy(r: &mut Report, ap: &AuthorizationPolicy) {
    check_targeting(
        r,
        ap.selector.as_ref(),
        ap.target_ref.as_ref(),
        &ap.target_refs,
    );
    if ap.action == Action::Custom {
        if ap.rules.is_empty() {
            r.error(
                "spec.rules",
                "CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request",
            );
        } else if ap.provider.as_ref().is_none_or(|p| p.name.is_empty()) {
            r.error("spec.provider.name", "`provider.name` must not be empty");
        }
        for (i, rule) in ap.rules.iter().enumerate() {
            let rp = idx("spec", "rules", i);
            for (j, from) in rule.from.iter().enumerate() {
                if let Some(src) = &from.source {
                    for (set, name) in custom_unsupported_sources(src) {
                        if set {
                            r.error(
                                &format!("{rp}.from[{j}].source"),
                                format!("{name} is currently not supported with CUSTOM action"),
                            );
                        }
                    }
                }
            }
            for (j, when) in rule.when.iter().enumerate() {
                if CUSTOM_UNSUPPORTED_KEYS.contains(&when.key.as_str())
                    || when.key.starts_with("request.auth.")
                {
                    r.error(
                        &format!("{rp}.when[{j}].key"),
                        format!("{} is currently not supported with CUSTOM action", when.key),
                    );
                }
            }
        }
    }
    if ap.provider.is_some() && ap.action != Action::Custom {
        r.error(
            "spec.provider",
            format!(
                "`provider` must not be with non CUSTOM action, found {}",
                ap.action.as_str()
            ),
        );
    }
    if ap.action == Action::Deny && ap.rules.is_empty() {
        r.error(
            "spec.rules",
            "DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request",
        );
    }
    for (i, rule) in ap.rules.iter().enumerate() {
        let rp = idx("spec", "rules", i);
        let mut tcp_in_from = false;
        let mut tcp_in_to = false;
        let mut from_exists = false;
        let mut to_exists = false;
        for (j, from) in rule.from.iter().enumerate() {
            let fp = idx(&rp, "from", j);
            let Some(src) = &from.source else {
                r.error(
                    &fp,
                    format!("`from.source` must not be nil, found at rule {i}"),
                );
                continue;
            };
            from_exists = true;
            tcp_in_from |= check_source(r, &at(&fp, "source"), src, i);
        }
        for (j, to) in rule.to.iter().enumerate() {
            let tp = idx(&rp, "to", j);
            let Some(op) = &to.operation else {
                r.error(
                    &tp,
                    format!("`to.operation` must not be nil, found at rule {i}"),
                );
                continue;
            };
            to_exists = true;
            tcp_in_to |= check_operation(r, &at(&tp, "operation"), op, i);
        }
        for (j, cond) in rule.when.iter().enumerate() {
            let wp = idx(&rp, "when", j);
            if cond.key.is_empty() {
                r.error(&wp, "`key` must not be empty");
                continue;
            }
            if cond.values.is_empty() && cond.not_values.is_empty() {
                r.error(
                    &wp,
                    format!(
                        "at least one of `values` or `notValues` must be set for key {}",
                        cond.key
                    ),
                );
                continue;
            }
            if let Err(e) = validate_attribute(&cond.key, &cond.values) {
                r.error(&wp, format!("invalid `value` for `key` {}: {e}", cond.key));
            }
            if let Err(e) = validate_attribute(&cond.key, &cond.not_values) {
                r.error(
                    &wp,
                    format!("invalid `notValue` for `key` {}: {e}", cond.key),
                );
            }
        }
        let http_only = (from_exists && !to_exists && !tcp_in_from) || (to_exists && !tcp_in_to);
        if http_only && ap.action == Action::Deny {
            r.warn(
                &rp,
                "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port",
            );
        }
    }
}

fn custom_unsupported_sources(src: &Source) -> [(bool, &'static str); 10] {
    [
        (!src.namespaces.is_empty(), "From.Namespaces"),
        (!src.not_namespaces.is_empty(), "From.NotNamespaces"),
        (!src.service_accounts.is_empty(), "From.ServiceAccounts"),
        (
            !src.not_service_accounts.is_empty(),
            "From.NotServiceAccounts",
        ),
        (!src.trust_domains.is_empty(), "From.TrustDomains"),
        (!src.not_trust_domains.is_empty(), "From.NotTrustDomains"),
        (!src.principals.is_empty(), "From.Principals"),
        (!src.not_principals.is_empty(), "From.NotPrincipals"),
        (!src.request_principals.is_empty(), "From.RequestPrincipals"),
        (
            !src.not_request_principals.is_empty(),
            "From.NotRequestPrincipals",
        ),
    ]
}

/// Checks one `from.source`; returns whether it uses attributes that apply to TCP.
fn check_source(r: &mut Report, p: &str, src: &Source, rule: usize) -> bool {
    if (src.principals.len()
        + src.not_principals.len()
        + src.namespaces.len()
        + src.not_namespaces.len()
        > 0)
        && (src.service_accounts.len() + src.not_service_accounts.len() > 0)
    {
        r.error(
            p,
            format!(
                "cannot set serviceAccounts with namespaces or principals, found at rule {rule}"
            ),
        );
    }
    let all: [&Vec<String>; 14] = [
        &src.principals,
        &src.request_principals,
        &src.namespaces,
        &src.ip_blocks,
        &src.remote_ip_blocks,
        &src.not_principals,
        &src.not_request_principals,
        &src.not_namespaces,
        &src.not_ip_blocks,
        &src.not_remote_ip_blocks,
        &src.service_accounts,
        &src.not_service_accounts,
        &src.trust_domains,
        &src.not_trust_domains,
    ];
    if all.iter().all(|v| v.is_empty()) {
        r.error(
            p,
            format!("`from.source` must not be empty, found at rule {rule}"),
        );
    }
    for (field, ips) in [
        ("ipBlocks", &src.ip_blocks),
        ("notIpBlocks", &src.not_ip_blocks),
        ("remoteIpBlocks", &src.remote_ip_blocks),
        ("notRemoteIpBlocks", &src.not_remote_ip_blocks),
    ] {
        for e in validate_ips(ips) {
            r.error(&at(p, field), e);
        }
    }
    for (name, values) in [
        ("Principals", &src.principals),
        ("RequestPrincipals", &src.request_principals),
        ("Namespaces", &src.namespaces),
        ("IpBlocks", &src.ip_blocks),
        ("RemoteIpBlocks", &src.remote_ip_blocks),
        ("NotPrincipals", &src.not_principals),
        ("NotRequestPrincipals", &src.not_request_principals),
        ("NotNamespaces", &src.not_namespaces),
        ("NotIpBlocks", &src.not_ip_blocks),
        ("NotRemoteIpBlocks", &src.not_remote_ip_blocks),
    ] {
        r.check(p, check_empty_values(name, values));
    }
    r.check(
        p,
        check_service_accounts("ServiceAccounts", &src.service_accounts),
    );
    r.check(
        p,
        check_service_accounts("NotServiceAccounts", &src.not_service_accounts),
    );
    r.check(p, check_trust_domains("TrustDomains", &src.trust_domains));
    r.check(
        p,
        check_trust_domains("NotTrustDomains", &src.not_trust_domains),
    );
    [
        &src.principals,
        &src.not_principals,
        &src.ip_blocks,
        &src.not_ip_blocks,
        &src.namespaces,
        &src.not_namespaces,
        &src.remote_ip_blocks,
        &src.not_remote_ip_blocks,
        &src.service_accounts,
        &src.not_service_accounts,
    ]
    .iter()
    .any(|v| !v.is_empty())
}

/// Checks one `to.operation`; returns whether it matches on ports (applies to TCP).
fn check_operation(r: &mut Report, p: &str, op: &Operation, rule: usize) -> bool {
    let all = [
        &op.ports,
        &op.methods,
        &op.paths,
        &op.hosts,
        &op.not_ports,
        &op.not_methods,
        &op.not_paths,
        &op.not_hosts,
    ];
    if all.iter().all(|v| v.is_empty()) {
        r.error(
            p,
            format!("`to.operation` must not be empty, found at rule {rule}"),
        );
    }
    for e in validate_ports(&op.ports)
        .into_iter()
        .chain(validate_ports(&op.not_ports))
    {
        r.error(p, e);
    }
    for (name, values) in [
        ("Ports", &op.ports),
        ("Methods", &op.methods),
        ("Paths", &op.paths),
        ("Hosts", &op.hosts),
        ("NotPorts", &op.not_ports),
        ("NotMethods", &op.not_methods),
        ("NotPaths", &op.not_paths),
        ("NotHosts", &op.not_hosts),
    ] {
        r.check(p, check_empty_values(name, values));
    }
    r.check(p, check_path_templates("Paths", &op.paths));
    r.check(p, check_path_templates("NotPaths", &op.not_paths));
    !op.ports.is_empty() || !op.not_ports.is_empty()
}

fn check_empty_values(key: &str, values: &[String]) -> Result<(), String> {
    if values.iter().any(String::is_empty) {
        return Err(format!("empty value not allowed, found in {key}"));
    }
    Ok(())
}

/// Values with at most one `*`, at the start or the end.
fn check_wildcard_values(key: &str, values: &[String]) -> Result<(), String> {
    check_empty_values(key, values)?;
    for v in values {
        let n = v.matches('*').count();
        if n > 1 {
            return Err(format!(
                "at most one wildcard is allowed, found in {key}: {v:?}"
            ));
        }
        if n == 1 && v != "*" && !v.starts_with('*') && !v.ends_with('*') {
            return Err(format!(
                "wildcard is only allowed at the start or end, found in {key}: {v:?}"
            ));
        }
    }
    Ok(())
}

fn check_trust_domains(key: &str, values: &[String]) -> Result<(), String> {
    check_wildcard_values(key, values)?;
    if let Some(v) = values.iter().find(|v| v.contains('/')) {
        return Err(format!(
            "trust domain must not contain '/', found in {key}: {v:?}"
        ));
    }
    Ok(())
}

/// `serviceAccount` or `namespace/serviceAccount`, no wildcards, at most 16 values.
fn check_service_accounts(key: &str, values: &[String]) -> Result<(), String> {
    if values.len() > 16 {
        return Err("may not have more than 16 values".to_string());
    }
    for v in values {
        if v.is_empty() {
            return Err(format!("empty value not allowed, found in {key}"));
        }
        if v.contains('*') {
            return Err(format!("wildcard not allowed, found in {key}"));
        }
        if v.matches('/').count() > 1 {
            return Err(format!(
                "expected format 'serviceAccount' or 'namespace/serviceAccount', found {v:?} in {key}"
            ));
        }
        if v.len() > 320 {
            return Err(format!(
                "value cannot exceed 320 characters, found {v:?} in {key}"
            ));
        }
        if let Some((ns, sa)) = v.split_once('/') {
            if ns.is_empty() {
                return Err(format!(
                    "expected format 'serviceAccount' or 'namespace/serviceAccount', found empty namespace {v:?} in {key}"
                ));
            }
            if sa.is_empty() {
                return Err(format!(
                    "expected format 'serviceAccount' or 'namespace/serviceAccount', found empty serviceAccount {v:?} in {key}"
                ));
            }
        }
    }
    Ok(())
}

fn is_valid_path_literal(glob: &str) -> bool {
    !glob.is_empty()
        && glob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@=".contains(&b))
}

/// Path templates: `{*}` for one segment, `{**}` only last; no other braces.
fn check_path_templates(key: &str, paths: &[String]) -> Result<(), String> {
    for path in paths {
        let has_template = path.contains("{*}") || path.contains("{**}");
        let trimmed = path.trim_matches('/');
        let mut any_seen = false;
        for glob in trimmed.split('/') {
            if (glob == "{*}" || glob == "{**}") && any_seen {
                return Err(format!(
                    "invalid or unsupported path {trimmed}, found in {key}. {{**}} is not the last operator"
                ));
            }
            if glob == "{*}" {
                continue;
            }
            if glob == "{**}" {
                any_seen = true;
                continue;
            }
            if glob.contains('{') || glob.contains('}') {
                return Err(format!(
                    "invalid or unsupported path {trimmed}, found in {key}. Contains '{{' or '}}' beyond a supported path template"
                ));
            }
            if has_template && !is_valid_path_literal(glob) {
                return Err(format!(
                    "invalid or unsupported path {trimmed}, found in {key}. Contains segment {glob} with invalid string literal"
                ));
            }
        }
    }
    Ok(())
}

fn validate_ips(ips: &[String]) -> Vec<String> {
    let mut errs = Vec::new();
    for v in ips {
        if v.contains('/') {
            if !is_cidr(v) {
                errs.push(format!("bad CIDR range ({v})"));
            }
        } else if !is_ip(v) {
            errs.push(format!("bad IP address ({v})"));
        }
    }
    errs
}

fn validate_ports(ports: &[String]) -> Vec<String> {
    ports
        .iter()
        .filter(|p| {
            !(p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u32>().is_ok_and(|n| n <= 65535))
        })
        .map(|p| format!("bad port ({p})"))
        .collect()
}

/// `a[b]` keys (request.headers[x], request.auth.claims[x]).
fn validate_map_key(key: &str) -> Result<(), String> {
    match key.find('[') {
        Some(open) if key.ends_with(']') && open > 0 && open < key.len() - 2 => Ok(()),
        _ => Err(format!("bad key ({key}): should have format a[b]")),
    }
}

/// The condition keys Istio knows, and what their values must look like.
fn validate_attribute(key: &str, values: &[String]) -> Result<(), String> {
    check_empty_values(key, values)?;
    match key {
        k if k.starts_with("request.headers") => validate_map_key(k),
        "source.ip" | "remote.ip" | "destination.ip" => match validate_ips(values).first() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        },
        "source.serviceAccount" => check_service_accounts(key, values),
        "source.trustDomain" => check_wildcard_values(key, values),
        "source.namespace"
        | "source.principal"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => Ok(()),
        k if k.starts_with("request.auth.claims") => validate_map_key(k),
        "destination.port" => match validate_ports(values).first() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        },
        k if k.starts_with("experimental.envoy.filters.") => validate_map_key(k),
        "destination.namespace" => Err(format!(
            "attribute {key} is replaced by the metadata.namespace"
        )),
        k if k.starts_with("destination.labels") => Err(format!(
            "attribute {key} is replaced by the workload selector"
        )),
        "destination.name" | "destination.user" => Err(format!(
            "deprecated attribute {key}: only supported in v1alpha1"
        )),
        _ => Err(format!("unknown attribute: {key}")),
    }
}

pub(crate) fn validate_request_authentication(r: &mut Report, ra: &RequestAuthentication) {
    check_targeting(
        r,
        ra.selector.as_ref(),
        ra.target_ref.as_ref(),
        &ra.target_refs,
    );
    for (i, rule) in ra.jwt_rules.iter().enumerate() {
        validate_jwt_rule(r, &idx("spec", "jwtRules", i), rule);
    }
}

fn validate_jwt_rule(r: &mut Report, p: &str, rule: &JwtRule) {
    if rule.audiences.iter().any(String::is_empty) {
        r.error(&at(p, "audiences"), "audience must be non-empty string");
    }
    if rule.issuer.is_empty() && rule.jwks_uri.is_empty() {
        r.error(p, "issuer or jwksUri must be non-empty string");
    }
    if !rule.jwks_uri.is_empty() {
        r.check(&at(p, "jwksUri"), check_jwks_uri(&rule.jwks_uri));
    }
    if !rule.jwks.is_empty() {
        match check_jwks(&rule.jwks) {
            Err(e) => r.error(&at(p, "jwks"), format!("jwks parse error: {e}")),
            Ok(private) => {
                for i in private {
                    r.warn(
                        &at(p, "jwks"),
                        format!(
                            "jwks key at index {i} contains private key material; only public keys are used for verification"
                        ),
                    );
                }
            }
        }
    }
    for (i, h) in rule.from_headers.iter().enumerate() {
        if h.name.is_empty() {
            r.error(
                &idx(p, "fromHeaders", i),
                "location header name must be non-empty string",
            );
        }
    }
    if rule.from_params.iter().any(String::is_empty) {
        r.error(
            &at(p, "fromParams"),
            "location query must be non-empty string",
        );
    }
    if rule.from_cookies.iter().any(String::is_empty) {
        r.error(
            &at(p, "fromCookies"),
            "cookie name must be non-empty string",
        );
    }
    for (i, c) in rule.output_claim_to_headers.iter().enumerate() {
        let cp = idx(p, "outputClaimToHeaders", i);
        if c.claim.is_empty() || c.header.is_empty() {
            r.error(
                &cp,
                "outputClaimToHeaders header and claim value must be non-empty string",
            );
            continue;
        }
        r.check(&cp, common::validate_strict_header_name(&c.header));
    }
    if let Some(t) = &rule.timeout {
        r.check(&at(p, "timeout"), common::validate_duration(t));
    }
    if rule.space_delimited_claims.iter().any(String::is_empty) {
        r.error(
            &at(p, "spaceDelimitedClaims"),
            "space delimited claim must be non-empty string",
        );
    }
}

/// An `http://` or `https://` URL (Go's `url.Parse` leniency: any well-formed URL whose
/// scheme is one of the two).
fn check_jwks_uri(uri: &str) -> Result<(), String> {
    if uri.bytes().any(|b| b < 0x20 || b == 0x7f || b == b' ') {
        return Err(format!("parse {uri:?}: invalid character in URL"));
    }
    let scheme = match uri.split_once(':') {
        Some((s, _))
            if s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            s.to_ascii_lowercase()
        }
        Some(("", _)) => return Err(format!("parse {uri:?}: missing protocol scheme")),
        _ => String::new(),
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("URI scheme {scheme:?} is not supported"));
    }
    let rest = &uri[scheme.len() + 1..];
    if let Some(authority) = rest.strip_prefix("//") {
        let host_port = authority.split(['/', '?', '#']).next().unwrap_or_default();
        let host_port = host_port.rsplit('@').next().unwrap_or_default();
        let port = if let Some(end) = host_port.strip_prefix('[') {
            end.split_once(']').map(|(_, p)| p).unwrap_or_default()
        } else {
            host_port.split_once(':').map_or("", |(_, p)| p)
        };
        let port = port.strip_prefix(':').unwrap_or(port);
        if !port.is_empty() && !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("parse {uri:?}: invalid port {port:?} after host"));
        }
    }
    Ok(())
}

/// Parses an inline JWKS (a key set or a single key); returns the indexes of keys that
/// carry private material.
fn check_jwks(jwks: &str) -> Result<Vec<usize>, String> {
    let value: serde_json::Value = serde_json::from_str(jwks).map_err(|e| e.to_string())?;
    let keys: Vec<&serde_json::Value> = match value.get("keys") {
        Some(serde_json::Value::Array(keys)) => keys.iter().collect(),
        Some(_) => return Err("\"keys\" must be an array".to_string()),
        None => vec![&value],
    };
    let mut private = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let kty = k
            .get("kty")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("key at index {i} has no \"kty\""))?;
        if !matches!(kty, "RSA" | "EC" | "OKP" | "oct") {
            return Err(format!("invalid key type {kty:?}"));
        }
        if kty == "oct" || k.get("d").is_some() {
            private.push(i);
        }
    }
    Ok(private)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_templates() {
        assert!(check_path_templates("Paths", &["/foo/{*}/bar/{**}".into()]).is_ok());
        assert!(check_path_templates("Paths", &["/foo/{**}/bar/{*}".into()]).is_err());
        assert!(check_path_templates("Paths", &["/foo/{bar}".into()]).is_err());
    }

    #[test]
    fn service_accounts() {
        assert!(check_service_accounts("k", &["ns/sa".into(), "sa".into()]).is_ok());
        assert!(check_service_accounts("k", &["a/b/c".into()]).is_err());
        assert!(check_service_accounts("k", &["/sa".into()]).is_err());
        assert!(check_service_accounts("k", &["ns/*".into()]).is_err());
    }

    #[test]
    fn jwks_uris() {
        assert!(check_jwks_uri("https://example.com/jwks").is_ok());
        assert!(check_jwks_uri("example.com/jwks").is_err());
        assert!(check_jwks_uri("https://example.com:abc/jwks").is_err());
    }
}
