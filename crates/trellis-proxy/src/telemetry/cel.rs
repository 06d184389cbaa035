//! The CEL access-log filters Istio's Telemetry API sends (`filter.expression`, Envoy's
//! `envoy.access_loggers.extension_filters.cel`), for the shape Istio's documentation
//! uses: comparisons of `response.code` with integers joined by `&&` and `||` (`&&` binds
//! tighter, no parentheses). Anything else is not understood (`None`): the caller warns
//! and logs every request.

use super::access_log::{Compare, Filter};

/// The filter of `expression`, when it has the supported shape.
pub fn filter(expression: &str) -> Option<Filter> {
    let any: Vec<Filter> = expression
        .split("||")
        .map(|conj| {
            conj.split("&&")
                .map(comparison)
                .collect::<Option<Vec<_>>>()
                .map(Filter::And)
        })
        .collect::<Option<_>>()?;
    Some(Filter::Or(any))
}

/// `response.code OP N`.
fn comparison(s: &str) -> Option<Filter> {
    let rest = s.trim().strip_prefix("response.code")?.trim_start();
    let (op, n) = [">=", "<=", "==", "!=", ">", "<"]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|n| (*op, n.trim())))?;
    let n: u64 = n.parse().ok()?;
    let (compare, value) = match op {
        ">=" => (Compare::Ge, n),
        "<=" => (Compare::Le, n),
        "==" => (Compare::Eq, n),
        "!=" => (Compare::Ne, n),
        ">" => (Compare::Ge, n.checked_add(1)?),
        // `< 0` holds for no status code: an empty `or`.
        _ => match n.checked_sub(1) {
            Some(v) => (Compare::Le, v),
            None => return Some(Filter::Or(Vec::new())),
        },
    };
    Some(Filter::StatusCode(compare, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::format::Context;

    fn admits(expression: &str, code: u16) -> bool {
        let ctx = Context {
            response_code: code,
            ..Context::default()
        };
        filter(expression).unwrap().admits(&ctx)
    }

    #[test]
    fn istios_status_code_expressions() {
        assert!(admits("response.code >= 400", 503));
        assert!(!admits("response.code >= 400", 200));
        assert!(admits("response.code > 399", 400));
        assert!(!admits("response.code < 400", 400));
        assert!(admits("response.code == 200 || response.code >= 500", 200));
        assert!(admits("response.code == 200 || response.code >= 500", 503));
        assert!(!admits("response.code == 200 || response.code >= 500", 404));
        assert!(!admits("response.code >= 400 && response.code != 404", 404));
        assert!(!admits("response.code < 0", 0));
    }

    #[test]
    fn other_expressions_are_not_understood() {
        for e in [
            "connection.mtls",
            "response.code >= x",
            "(response.code >= 400)",
            "request.headers['x'] == 'y'",
            "",
        ] {
            assert_eq!(filter(e), None, "{e}");
        }
    }
}
