//! Host and domain names: DNS-1123 labels, FQDNs, wildcard domains and
//! `namespace/host` entries.

use regex::Regex;
use std::sync::OnceLock;

use super::net::is_ip;
use super::regex;

pub(super) const DNS1123_LABEL_MAX: usize = 63;

/// A DNS-1123 label: lower or upper alphanumerics and `-`, not starting or ending with `-`.
pub fn is_dns1123_label(value: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    value.len() <= DNS1123_LABEL_MAX
        && regex(&RE, r"^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$").is_match(value)
}

/// A first label that may carry a wildcard: `*`, `*foo`, `*-foo` or a plain label.
pub fn is_wildcard_dns1123_label(value: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    value.len() <= DNS1123_LABEL_MAX
        && regex(
            &RE,
            r"^(\*|(\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)$",
        )
        .is_match(value)
}

pub(super) fn check_dns1123_preconditions(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!("domain name {name:?} too long (max 255)"));
    }
    if name.is_empty() {
        return Err("empty domain name not allowed".to_string());
    }
    Ok(())
}

/// Every dot-separated label is a DNS-1123 label and the top-level one is not all digits.
/// A trailing dot (`istio.io.`) is allowed.
pub fn validate_dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let tld = parts.last().copied().unwrap_or_default();
    if !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {tld:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// A fully qualified domain name (no wildcard).
pub fn validate_fqdn(fqdn: &str) -> Result<(), String> {
    check_dns1123_preconditions(fqdn)?;
    validate_dns1123_labels(fqdn)
}

/// A domain name whose first label may be a wildcard (`*.example.com`, `*`).
pub fn validate_wildcard_domain(domain: &str) -> Result<(), String> {
    check_dns1123_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (domain, None),
    };
    if !is_wildcard_dns1123_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(rest) => validate_dns1123_labels(rest),
        None => Ok(()),
    }
}

/// Hosts of a VirtualService bound to gateways: like [`validate_wildcard_domain`], but for
/// SNI hosts the names Istio generates for AUTO_PASSTHROUGH (`outbound_.80_._.host`) pass.
pub fn validate_wildcard_domain_for_gateway_vs(sni: bool, domain: &str) -> Result<(), String> {
    check_dns1123_preconditions(domain)?;
    if sni && domain.starts_with("outbound_") {
        let parts: Vec<&str> = domain.split('_').collect();
        if parts.len() < 4 {
            return Err(format!(
                "domain name {domain} invalid, should follow 'outbound_.<port>_._.<hostname>' format"
            ));
        }
        let port = parts[1].trim_matches('.');
        let host = parts[3].trim_matches('.');
        if parts[0] != "outbound" {
            return Err(format!(
                "domain name {domain:?} invalid (label {:?} invalid)",
                parts[0]
            ));
        }
        if !port.bytes().any(|b| b.is_ascii_digit()) {
            return Err(format!(
                "domain name {domain:?} invalid (label {port:?} invalid). should follow outbound_.<port>_._.<hostname> format"
            ));
        }
        if !host.bytes().any(|b| b.is_ascii_alphabetic()) {
            return Err(format!(
                "domain name {domain:?} invalid (label {host:?} invalid). should follow outbound_.<port>_._.<hostname> format"
            ));
        }
        return Ok(());
    }
    validate_wildcard_domain(domain)
}

/// A wildcard is only allowed as a whole first label (`*.example.com`) or alone (`*`).
pub fn validate_partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host.len() != 1 && !host.starts_with("*.") {
        return Err(format!("partial wildcard {host:?} not allowed"));
    }
    Ok(())
}

/// `namespace/host` entries of Sidecar egress listeners and Gateway servers (a Gateway also
/// accepts a bare host).
pub fn validate_namespace_slash_host(
    hostname: &str,
    is_gateway: bool,
    gateway_semantics: bool,
) -> Vec<String> {
    let mut errs = Vec::new();
    let Some((ns, host)) = hostname.split_once('/') else {
        if is_gateway {
            return validate_host_part(hostname, true);
        }
        errs.push("host must be of form namespace/dnsName".to_string());
        return errs;
    };
    if ns.is_empty() || host.is_empty() {
        errs.push("config namespace and dnsName in host entry cannot be empty".to_string());
    }
    if !is_gateway {
        let trimmed = ns.strip_prefix('~').unwrap_or(ns);
        if !trimmed.is_empty() && trimmed != "*" && trimmed != "." && !is_dns1123_label(trimmed) {
            errs.push(format!("invalid namespace value {ns:?} in sidecar"));
        }
    } else if ns != "*" && ns != "." && (ns != "~" || !gateway_semantics) && !is_dns1123_label(ns) {
        errs.push(format!("invalid namespace value {ns:?} in gateway"));
    }
    errs.extend(validate_host_part(host, is_gateway));
    errs
}

pub(super) fn validate_host_part(hostname: &str, is_gateway: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if hostname != "*" && !hostname.contains('.') {
        errs.push("short names (non FQDN) are not allowed".to_string());
    }
    if let Err(e) = validate_wildcard_domain(hostname) {
        // Gateways also accept an IP address as the host.
        if !is_gateway || !is_ip(hostname) {
            errs.push(e);
        }
    }
    if let Err(e) = validate_partial_wildcard(hostname) {
        errs.push(e);
    }
    errs
}
