//! Label selectors: a `matchLabels` map selects the objects whose labels contain every pair.

use std::collections::BTreeMap;

/// True if `labels` carries every key/value of `selector` (an empty selector selects all).
pub fn matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Kubernetes' text form of a selector, `a=b,c=d` (keys sorted), as Istio prints it.
pub fn to_string(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_selector_selects_everything() {
        assert!(matches(&m(&[]), &m(&[("app", "a")])));
        assert!(matches(
            &m(&[("app", "a")]),
            &m(&[("app", "a"), ("v", "1")])
        ));
        assert!(!matches(&m(&[("app", "a")]), &m(&[("app", "b")])));
        assert_eq!(to_string(&m(&[("b", "2"), ("a", "1")])), "a=1,b=2");
    }
}
