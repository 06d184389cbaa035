//! Pieces of Istio's validation shared by several kinds: DNS names and wildcard hosts,
//! `namespace/host` entries, ports and protocols, IPs and CIDRs, label maps and selectors,
//! durations and percentages, header names and values, `exportTo`, policy target references.
//!
//! Each check is a small pure function returning `Result<(), String>` (or a list of
//! messages) so that callers attach the field path; messages keep Istio's key words so that
//! operators who know Istio's errors recognise them.

mod headers;
mod labels;
mod names;
mod net;

pub use headers::{
    is_authority_header, is_http_token, is_jwt_claim_route, validate_header_name_or_jwt_claim,
    validate_header_operation_name, validate_header_set_name, validate_header_value,
    validate_regex, validate_strict_header_name,
};
pub(crate) use labels::{
    check_one_selector_type, check_selector_labels, check_target_ref, check_target_refs,
    check_workload_selector,
};
pub use labels::{validate_label_key, validate_labels};
pub use names::{
    is_dns1123_label, is_wildcard_dns1123_label, validate_dns1123_labels, validate_fqdn,
    validate_namespace_slash_host, validate_partial_wildcard, validate_wildcard_domain,
    validate_wildcard_domain_for_gateway_vs,
};
pub use net::{
    Protocol, UNIX_ADDRESS_PREFIX, is_cidr, is_ip, validate_ip_address, validate_ip_subnet,
    validate_port, validate_port_name, validate_protocol, validate_unix_address,
};
use regex::Regex;
use std::sync::OnceLock;

use trellis_api::{Duration, Kind, OneofGroups, Resource};

use super::Report;

fn regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|_| unreachable_regex()))
}

/// Patterns are constants written here; a typo would be caught by the unit tests. Falling
/// back to a never-matching pattern keeps this module free of `unwrap` on any path.
fn unreachable_regex() -> Regex {
    Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!("constant pattern"))
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
