//! Telemetry: providers, metric overrides, tracing tags and access-log filters.
//!
//! Access-log filters are CEL expressions; Istio parses them with a CEL parser. Trellis
//! checks their lexical shape (balanced brackets and quotes, no dangling operator), which
//! catches the typos operators make without embedding a CEL implementation.

use trellis_api::istio::telemetry::{
    AccessLoggingFilter, MetricsOverridesTagOverrideOperation as Op, ProviderRef, Telemetry,
};

use super::Report;
use super::common;
use super::report::{at, idx, key};

pub(crate) fn validate_telemetry(r: &mut Report, t: &Telemetry) {
    common::check_one_selector_type(
        r,
        t.selector.is_some(),
        t.target_ref.is_some(),
        !t.target_refs.is_empty(),
    );
    common::check_workload_selector(r, "spec.selector", t.selector.as_ref());
    if let Some(tr) = &t.target_ref {
        common::check_target_ref(r, "spec.targetRef", tr);
    }
    common::check_target_refs(r, "spec.targetRefs", &t.target_refs);

    for (i, m) in t.metrics.iter().enumerate() {
        let p = idx("spec", "metrics", i);
        check_providers(r, &p, &m.providers);
        for (j, o) in m.overrides.iter().enumerate() {
            let op = idx(&p, "overrides", j);
            for (name, to) in &o.tag_overrides {
                let tp = key(&op, "tagOverrides", name);
                if name.is_empty() {
                    r.warn(&tp, "tagOverrides.name may not be empty");
                }
                match to.operation {
                    Op::Upsert if to.value.is_empty() => {
                        r.error(
                            &tp,
                            "tagOverrides.value must be set when operation is UPSERT",
                        );
                    }
                    Op::Remove if !to.value.is_empty() => {
                        r.error(
                            &tp,
                            "tagOverrides.value may only be set when operation is UPSERT",
                        );
                    }
                    _ => {}
                }
            }
            if let Some(sel) = &o.r#match {
                common::check_oneofs(r, &at(&op, "match"), sel);
                if sel.custom_metric.as_deref() == Some("") {
                    r.error(
                        &at(&op, "match.customMetric"),
                        "customMetric may not be empty",
                    );
                }
            }
        }
    }
    if t.tracing.len() > 1 {
        r.warn(
            "spec.tracing",
            "multiple tracing is not currently supported",
        );
    }
    for (i, tr) in t.tracing.iter().enumerate() {
        let p = idx("spec", "tracing", i);
        if tr.providers.len() > 1 {
            r.warn(&p, "multiple providers is not currently supported");
        }
        check_providers(r, &p, &tr.providers);
        let pct = tr.random_sampling_percentage.unwrap_or(0.0);
        if !(0.0..=100.0).contains(&pct) {
            r.error(
                &at(&p, "randomSamplingPercentage"),
                "randomSamplingPercentage must be in range [0.0, 100.0]",
            );
        }
        for (name, tag) in &tr.custom_tags {
            let tp = key(&p, "customTags", name);
            if name.is_empty() {
                r.error(&tp, "tag name may not be empty");
            }
            common::check_oneofs(r, &tp, tag);
            if tag.literal.as_ref().is_some_and(|l| l.value.is_empty()) {
                r.error(&tp, "literal tag value may not be empty");
            }
            if tag.header.as_ref().is_some_and(|h| h.name.is_empty()) {
                r.error(&tp, "header tag name may not be empty");
            }
            if tag.environment.as_ref().is_some_and(|e| e.name.is_empty()) {
                r.error(&tp, "environment tag name may not be empty");
            }
        }
    }
    for (i, al) in t.access_logging.iter().enumerate() {
        let p = idx("spec", "accessLogging", i);
        if let Some(f) = &al.filter {
            validate_filter(r, &at(&p, "filter"), f);
        }
        check_providers(r, &p, &al.providers);
    }
}

fn check_providers(r: &mut Report, path: &str, providers: &[ProviderRef]) {
    if providers.iter().any(|p| p.name.is_empty()) {
        r.error(&at(path, "providers"), "providers.name may not be empty");
    }
}

pub(crate) fn validate_filter(r: &mut Report, path: &str, f: &AccessLoggingFilter) {
    if let Err(e) = check_cel_shape(&f.expression) {
        r.error(
            &at(path, "expression"),
            format!("must be a valid CEL expression, {e}"),
        );
    }
}

/// A lexical check of a CEL expression: brackets balance, strings close, the expression
/// neither starts nor ends with a binary operator.
fn check_cel_shape(expr: &str) -> Result<(), String> {
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err("empty expression".to_string());
    }
    let mut stack = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in trimmed.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(open) {
                    return Err(format!("Syntax error: mismatched input '{c}'"));
                }
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err("Syntax error: unterminated string".to_string());
    }
    if !stack.is_empty() {
        return Err("Syntax error: missing closing bracket".to_string());
    }
    const BINARY: &[&str] = &[
        "&&", "||", "==", "!=", ">=", "<=", "+", "*", "/", "%", ">", "<", ".",
    ];
    for op in BINARY {
        if trimmed.ends_with(op) || (trimmed.starts_with(op) && *op != "-") {
            return Err(format!("Syntax error: dangling operator '{op}'"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_cel_shape;

    #[test]
    fn cel_shapes() {
        assert!(check_cel_shape("response.code >= 400").is_ok());
        assert!(check_cel_shape("connection.mtls && request.url_path.contains('v1beta3')").is_ok());
        assert!(check_cel_shape(")++++").is_err());
        assert!(check_cel_shape("a &&").is_err());
    }
}
