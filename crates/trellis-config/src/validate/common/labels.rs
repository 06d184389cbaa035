//! Label maps, label keys and values, workload selectors and policy target references.

use regex::Regex;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use trellis_api::istio::type_v1beta1::{PolicyTargetReference, WorkloadSelector};

use super::names::DNS1123_LABEL_MAX;
use super::regex;
use crate::validate::Report;
use crate::validate::report::at;

/// Kubernetes label keys and values: `[prefix/]name` keys, qualified-name values.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        if let Err(e) = validate_label_key(k) {
            errs.push(e);
        }
        if !is_label_value(v) {
            errs.push(format!("invalid tag value: {v:?}"));
        }
    }
    errs
}

pub(super) const QUALIFIED_NAME: &str = "(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";

pub(super) fn is_label_value(v: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(&RE, &format!("^({QUALIFIED_NAME})?$")).is_match(v)
}

/// A label key: an optional DNS-name prefix and `/`, then a qualified name of at most 63.
pub fn validate_label_key(k: &str) -> Result<(), String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let label = "[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?";
    let re = regex(
        &RE,
        &format!(r"^({label}(?:\.{label})*/)?({QUALIFIED_NAME})$"),
    );
    let Some(caps) = re.captures(k) else {
        return Err(format!("invalid tag key: {k:?}"));
    };
    if let Some(prefix) = caps.get(1)
        && prefix.as_str().len() - 1 > 253
    {
        return Err(format!("invalid tag key: {k:?} (DNS prefix is too long)"));
    }
    if caps
        .get(2)
        .is_some_and(|n| n.as_str().len() > DNS1123_LABEL_MAX)
    {
        return Err(format!("invalid tag key: {k:?} (name is too long)"));
    }
    Ok(())
}

/// A selector's labels: no empty key, no wildcard; an empty selector selects everything
/// (a warning, as it is most likely a mistake).
/// Checks a `workloadSelector`'s labels, warning when there are none (the object then
/// applies to every workload of its namespace). False when the labels are invalid.
pub(crate) fn check_selector_labels(
    r: &mut Report,
    labels: &BTreeMap<String, String>,
    what: &str,
) -> bool {
    let before = r.error_count();
    check_label_selector(r, "spec.workloadSelector.labels", labels);
    if r.error_count() > before {
        return false;
    }
    if labels.is_empty() {
        r.warn(
            "spec.workloadSelector",
            format!("{what}: workload selector specified without labels, will be applied to all services in namespace"),
        );
    }
    true
}

pub(crate) fn check_label_selector(r: &mut Report, path: &str, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        if k.is_empty() {
            r.error(
                path,
                format!("empty key is not supported in selector: \"{k}={v}\""),
            );
        }
        if k.contains('*') || v.contains('*') {
            r.error(
                path,
                format!("wildcard is not supported in selector: \"{k}={v}\""),
            );
        }
    }
}

/// `selector: {matchLabels: ...}` of the security, telemetry and extension kinds.
pub(crate) fn check_workload_selector(
    r: &mut Report,
    path: &str,
    selector: Option<&WorkloadSelector>,
) {
    let Some(selector) = selector else {
        return;
    };
    let labels_path = at(path, "matchLabels");
    check_label_selector(r, &labels_path, &selector.match_labels);
    for e in validate_labels(&selector.match_labels) {
        r.error(&labels_path, e);
    }
    if selector.match_labels.is_empty() {
        r.warn(path, "workload selector specified without labels");
    }
}

/// Only one way of choosing the workloads: `selector`, `targetRef` or `targetRefs`.
pub(crate) fn check_one_selector_type(
    r: &mut Report,
    selector: bool,
    target_ref: bool,
    target_refs: bool,
) {
    if [selector, target_ref, target_refs]
        .iter()
        .filter(|b| **b)
        .count()
        > 1
    {
        r.error(
            "spec",
            "only one of targetRefs or workloadSelector can be set",
        );
    }
}

/// Policies attach to a Service, ServiceEntry, Gateway or GatewayClass in their own
/// namespace, by name.
pub(crate) fn check_target_ref(r: &mut Report, path: &str, t: &PolicyTargetReference) {
    if t.name.is_empty() {
        r.error(&at(path, "name"), "targetRef name must be set");
    }
    if !t.namespace.is_empty() {
        r.error(
            &at(path, "namespace"),
            "targetRef namespace must not be set; cross namespace referencing is not supported",
        );
    }
    let group = if t.group.is_empty() {
        "core"
    } else {
        t.group.as_str()
    };
    let allowed = matches!(
        (group, t.kind.as_str()),
        ("core", "Service")
            | ("networking.istio.io", "ServiceEntry")
            | ("gateway.networking.k8s.io", "Gateway")
            | ("gateway.networking.k8s.io", "GatewayClass")
    );
    if !allowed {
        r.error(
            path,
            format!(
                "targetRef must be to one of [core/Service networking.istio.io/ServiceEntry gateway.networking.k8s.io/Gateway gateway.networking.k8s.io/GatewayClass] but was {}/{}",
                t.group, t.kind
            ),
        );
    }
}

/// Every entry of `targetRefs`.
pub(crate) fn check_target_refs(r: &mut Report, path: &str, refs: &[PolicyTargetReference]) {
    for (i, t) in refs.iter().enumerate() {
        check_target_ref(r, &format!("{path}[{i}]"), t);
    }
}
