//! The Kubernetes CRD schema constraints of Istio's resources, checked on the raw spec.
//!
//! Istio's CRDs carry OpenAPI constraints (`minLength`, `maxItems`, `minProperties`,
//! `minimum`, `pattern`...) that the API server checks before Istio's webhook ever sees an
//! object. They come from `+kubebuilder:validation:*` markers (and
//! `+protoc-gen-crd:{list,map}-value-validation:*` for list items and map values) in the
//! comments of Istio's `.proto` files; `tools/gen_istio_types.py` turns them into the table
//! in `istio_schema.rs`. Typed decoding cannot see most of them, because proto3 reads an
//! empty string or an empty map as "unset": `imagePullSecret: ""` and `portLevelMtls: {}`
//! decode like absent fields, yet the API server rejects them. So [`check`] walks the raw
//! JSON value along the table and reports every violation with the API server's wording.
//!
//! CEL rules (`XValidation`) are not checked here; Istio's webhook rules, which cover most
//! of them, live in `trellis-config`'s validation.

use regex::{Regex, RegexBuilder};
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::OnceLock;

use crate::Kind;
use crate::istio_schema::{MESSAGES, PATTERNS};

/// One constraint of the CRD schema on a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rule {
    /// A string has at least this many characters.
    MinLength(u64),
    /// A string has at most this many characters.
    MaxLength(u64),
    /// A list has at least this many items.
    MinItems(u64),
    /// A list has at most this many items.
    MaxItems(u64),
    /// A map (object) has at least this many keys.
    MinProperties(u64),
    /// A map (object) has at most this many keys.
    MaxProperties(u64),
    /// A number is at least this.
    Minimum(f64),
    /// A number is at most this.
    Maximum(f64),
    /// A string matches `PATTERNS[i]` (searched, not anchored, as Go's `MatchString`).
    Pattern(usize),
}

/// How a field holds its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Single,
    /// `repeated`: a JSON list.
    List,
    /// `map<K, V>`: a JSON object.
    Map,
}

/// A field of a message that carries constraints, or leads to a message that does.
#[derive(Debug)]
pub(crate) struct Field {
    /// lowerCamelCase name.
    pub json: &'static str,
    /// The proto (snake_case) name, accepted too.
    pub proto: &'static str,
    pub shape: Shape,
    /// Index in `MESSAGES` of the message the field (its items, its map values) holds.
    pub message: Option<usize>,
    /// Constraints on the field's value as a whole.
    pub rules: &'static [Rule],
    /// Constraints on each list item or map value.
    pub items: &'static [Rule],
}

/// A message of Istio's API, as far as its schema constraints go.
#[derive(Debug)]
pub(crate) struct Message {
    /// Full proto name, such as `istio.security.v1beta1.PeerAuthentication`.
    pub name: &'static str,
    /// Constraints on the message's object itself.
    pub rules: &'static [Rule],
    pub fields: &'static [Field],
}

/// At most this many violations are listed for one object; one more line says that
/// others were left out.
pub const MAX_VIOLATIONS: usize = 32;

/// Deeper than this, the walk stops (no Istio message nests nearly this deep).
const MAX_DEPTH: usize = 64;

/// Regular expressions are bounded in size; a pattern that does not compile within it is
/// not checked.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The full proto name of the spec message of a kind, for Istio's kinds.
fn root(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::VirtualService => "istio.networking.v1alpha3.VirtualService",
        Kind::DestinationRule => "istio.networking.v1alpha3.DestinationRule",
        Kind::Gateway => "istio.networking.v1alpha3.Gateway",
        Kind::ServiceEntry => "istio.networking.v1alpha3.ServiceEntry",
        Kind::WorkloadEntry => "istio.networking.v1alpha3.WorkloadEntry",
        Kind::WorkloadGroup => "istio.networking.v1alpha3.WorkloadGroup",
        Kind::Sidecar => "istio.networking.v1alpha3.Sidecar",
        Kind::EnvoyFilter => "istio.networking.v1alpha3.EnvoyFilter",
        Kind::ProxyConfig => "istio.networking.v1beta1.ProxyConfig",
        Kind::PeerAuthentication => "istio.security.v1beta1.PeerAuthentication",
        Kind::AuthorizationPolicy => "istio.security.v1beta1.AuthorizationPolicy",
        Kind::RequestAuthentication => "istio.security.v1beta1.RequestAuthentication",
        Kind::Telemetry => "istio.telemetry.v1alpha1.Telemetry",
        Kind::WasmPlugin => "istio.extensions.v1alpha1.WasmPlugin",
        Kind::TrafficExtension => "istio.extensions.v1alpha1.TrafficExtension",
        Kind::Namespace
        | Kind::Service
        | Kind::Pod
        | Kind::Deployment
        | Kind::ConfigMap
        | Kind::Secret => return None,
    })
}

/// The table entry of a message, by full proto name; `None` when nothing in it (or under
/// it) is constrained.
pub(crate) fn message(name: &str) -> Option<&'static Message> {
    MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .map(|i| &MESSAGES[i])
}

/// The CRD schema violations of an object's raw `spec`: `(path, message)` pairs such as
/// `("spec.portLevelMtls", "Invalid value: 0: spec.portLevelMtls in body should have at
/// least 1 properties")`, in the API server's words. Values of the wrong JSON type are left
/// to typed decoding, which reports them. Never panics.
pub fn check(kind: Kind, spec: &Value) -> Vec<(String, String)> {
    let Some(root) = root(kind).and_then(message) else {
        return Vec::new();
    };
    let mut walker = Walker::default();
    let mut path = String::from("spec");
    walker.message(root, spec, &mut path, 0);
    if walker.left_out > 0 {
        walker.found.push((
            "spec".to_string(),
            format!("{} more schema violations not listed", walker.left_out),
        ));
    }
    walker.found
}

#[derive(Default)]
struct Walker {
    found: Vec<(String, String)>,
    left_out: usize,
}

impl Walker {
    fn message(&mut self, message: &Message, value: &Value, path: &mut String, depth: usize) {
        let Value::Object(map) = value else { return };
        if depth > MAX_DEPTH {
            return;
        }
        self.rules(message.rules, value, path);
        for field in message.fields {
            let names: &[&str] = if field.json == field.proto {
                &[field.json]
            } else {
                &[field.json, field.proto]
            };
            for name in names {
                if let Some(v) = map.get(*name) {
                    let len = path.len();
                    path.push('.');
                    path.push_str(name);
                    self.field(field, v, path, depth);
                    path.truncate(len);
                }
            }
        }
    }

    fn field(&mut self, field: &Field, value: &Value, path: &mut String, depth: usize) {
        if value.is_null() {
            return;
        }
        self.rules(field.rules, value, path);
        let message = field.message.and_then(|i| MESSAGES.get(i));
        match (field.shape, value) {
            (Shape::Single, _) => {
                if let Some(m) = message {
                    self.message(m, value, path, depth + 1);
                }
            }
            (Shape::List, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    self.item(field.items, message, item, path, depth);
                    path.truncate(len);
                }
            }
            (Shape::Map, Value::Object(entries)) => {
                for (key, item) in entries {
                    let len = path.len();
                    path.push('.');
                    path.push_str(key);
                    self.item(field.items, message, item, path, depth);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    fn item(
        &mut self,
        rules: &[Rule],
        message: Option<&Message>,
        value: &Value,
        path: &mut String,
        depth: usize,
    ) {
        if value.is_null() {
            return;
        }
        self.rules(rules, value, path);
        if let Some(m) = message {
            self.message(m, value, path, depth + 1);
        }
    }

    fn rules(&mut self, rules: &[Rule], value: &Value, path: &str) {
        for rule in rules {
            if let Some(message) = violation(*rule, value, path) {
                if self.found.len() < MAX_VIOLATIONS {
                    self.found.push((path.to_string(), message));
                } else {
                    self.left_out += 1;
                }
            }
        }
    }
}

/// The API server's message when `value` breaks `rule`. kube-openapi's wording, as the
/// apiextensions server turns it into field errors: `maxLength` becomes "Too long",
/// `maxItems` and `maxProperties` "Too many", everything else "Invalid value".
fn violation(rule: Rule, value: &Value, path: &str) -> Option<String> {
    let invalid = |shown: String, detail: String| Some(format!("Invalid value: {shown}: {detail}"));
    match (rule, value) {
        (Rule::MinLength(min), Value::String(s)) if (s.chars().count() as u64) < min => invalid(
            go_quote(s),
            format!("{path} in body should be at least {min} chars long"),
        ),
        (Rule::MaxLength(max), Value::String(s)) if s.chars().count() as u64 > max => {
            Some(format!("Too long: may not be more than {max} bytes"))
        }
        (Rule::MinItems(min), Value::Array(items)) if (items.len() as u64) < min => invalid(
            items.len().to_string(),
            format!("{path} in body should have at least {min} items"),
        ),
        (Rule::MaxItems(max), Value::Array(items)) if items.len() as u64 > max => Some(format!(
            "Too many: {}: must have at most {max} items",
            items.len()
        )),
        (Rule::MinProperties(min), Value::Object(map)) if (map.len() as u64) < min => invalid(
            map.len().to_string(),
            format!("{path} in body should have at least {min} properties"),
        ),
        (Rule::MaxProperties(max), Value::Object(map)) if map.len() as u64 > max => Some(format!(
            "Too many: {}: must have at most {max} items",
            map.len()
        )),
        (Rule::Minimum(min), Value::Number(n)) if n.as_f64().is_some_and(|x| x < min) => invalid(
            go_number(n),
            format!(
                "{path} in body should be greater than or equal to {}",
                go_float(min)
            ),
        ),
        (Rule::Maximum(max), Value::Number(n)) if n.as_f64().is_some_and(|x| x > max) => invalid(
            go_number(n),
            format!(
                "{path} in body should be less than or equal to {}",
                go_float(max)
            ),
        ),
        (Rule::Pattern(i), Value::String(s)) => {
            let regex = compiled().get(i)?.as_ref()?;
            if regex.is_match(s) {
                return None;
            }
            invalid(
                go_quote(s),
                format!("{path} in body should match '{}'", PATTERNS[i]),
            )
        }
        _ => None,
    }
}

/// The `Pattern` regular expressions, compiled once; `None` for one that does not compile
/// within the size limit. Istio's patterns use only explicit ASCII classes, anchors and
/// groups, which mean the same in Go's RE2 and in the `regex` crate (the two differ on
/// `\d`, `\w`, `\s`, `\b`, which are Unicode-aware here and ASCII in Go; none is used).
fn compiled() -> &'static [Option<Regex>] {
    static COMPILED: OnceLock<Vec<Option<Regex>>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        PATTERNS
            .iter()
            .map(|p| {
                RegexBuilder::new(p)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .ok()
            })
            .collect()
    })
}

/// A string as Go's `%q` shows it (close enough: JSON quoting).
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// A number as Go's `%v` shows an int64 or float64 decoded from JSON.
fn go_number(n: &serde_json::Number) -> String {
    if n.is_f64() {
        n.as_f64().map(go_float).unwrap_or_else(|| n.to_string())
    } else {
        n.to_string()
    }
}

/// A float64 as Go's `%v` shows it: integral values without a fraction.
fn go_float(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e21 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(kind: Kind, spec: Value) -> (String, String) {
        let mut found = check(kind, &spec);
        assert_eq!(found.len(), 1, "{found:?}");
        found.remove(0)
    }

    #[test]
    fn the_table_is_sorted_and_its_links_and_patterns_resolve() {
        assert!(MESSAGES.windows(2).all(|w| w[0].name < w[1].name));
        for m in MESSAGES {
            assert_eq!(message(m.name).map(|found| found.name), Some(m.name));
            for f in m.fields {
                assert!(f.message.is_none_or(|i| i < MESSAGES.len()), "{}", f.json);
            }
        }
        assert!(compiled().iter().all(Option::is_some), "{PATTERNS:?}");
    }

    #[test]
    fn every_istio_kind_has_a_root_in_the_protos_or_nothing_to_check() {
        for kind in Kind::ALL {
            if kind.is_istio() {
                assert!(root(*kind).is_some(), "{kind}");
            } else {
                assert!(root(*kind).is_none(), "{kind}");
            }
        }
        assert!(message("istio.security.v1beta1.PeerAuthentication").is_some());
        assert!(message("istio.extensions.v1alpha1.WasmPlugin").is_some());
    }

    #[test]
    fn empty_map_breaks_min_properties() {
        let (path, message) = one(
            Kind::PeerAuthentication,
            json!({"selector": {"matchLabels": {"foo": "bar"}}, "portLevelMtls": {}}),
        );
        assert_eq!(path, "spec.portLevelMtls");
        assert_eq!(
            message,
            "Invalid value: 0: spec.portLevelMtls in body should have at least 1 properties"
        );
        let ok = json!({"selector": {"matchLabels": {"a": "b"}}, "portLevelMtls": {"80": {"mode": "STRICT"}}});
        assert!(check(Kind::PeerAuthentication, &ok).is_empty());
    }

    #[test]
    fn empty_strings_break_min_length() {
        let (path, message) = one(
            Kind::WasmPlugin,
            json!({"url": "oci://x", "imagePullSecret": ""}),
        );
        assert_eq!(path, "spec.imagePullSecret");
        assert!(
            message.ends_with("spec.imagePullSecret in body should be at least 1 chars long"),
            "{message}"
        );
        // The proto name is read too, under the name written.
        let (path, _) = one(Kind::WasmPlugin, json!({"url": "x", "plugin_name": ""}));
        assert_eq!(path, "spec.plugin_name");
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let name = "é".repeat(63);
        let spec = json!({"selector": {"matchLabels": {"app": name}}, "url": "x"});
        assert!(check(Kind::WasmPlugin, &spec).is_empty());
        let spec = json!({"selector": {"matchLabels": {"app": format!("{name}x")}}, "url": "x"});
        let (path, message) = one(Kind::WasmPlugin, spec);
        assert_eq!(path, "spec.selector.matchLabels.app");
        assert_eq!(message, "Too long: may not be more than 63 bytes");
    }

    #[test]
    fn list_items_and_nested_messages_are_walked() {
        let spec = json!({"jwtRules": [
            {"issuer": "a", "audiences": ["x", ""], "fromHeaders": [{"name": ""}]},
        ]});
        let found = check(Kind::RequestAuthentication, &spec);
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.jwtRules[0].audiences[1]",
                "spec.jwtRules[0].fromHeaders[0].name"
            ]
        );
        assert!(
            found[0]
                .1
                .contains("spec.jwtRules[0].audiences[1] in body should be at least 1 chars long")
        );
    }

    #[test]
    fn numbers_are_held_to_their_bounds_in_go_s_wording() {
        let spec = json!({"host": "r", "trafficPolicy": {"loadBalancer": {"warmup": {"duration": "1s", "minimumPercent": 150.0}}}});
        let (path, message) = one(Kind::DestinationRule, spec);
        assert_eq!(
            path,
            "spec.trafficPolicy.loadBalancer.warmup.minimumPercent"
        );
        assert_eq!(
            message,
            "Invalid value: 150: spec.trafficPolicy.loadBalancer.warmup.minimumPercent in body should be less than or equal to 100"
        );
        let (_, message) = one(Kind::ProxyConfig, json!({"concurrency": -1}));
        assert!(message.ends_with("spec.concurrency in body should be greater than or equal to 0"));
        let spec = json!({"trafficPolicy": {"loadBalancer": {"warmup": {"aggression": -0.1}}}});
        let (_, message) = one(Kind::DestinationRule, spec);
        assert!(message.starts_with("Invalid value: -0.1: "), "{message}");
    }

    #[test]
    fn too_many_items_and_patterns() {
        let refs: Vec<Value> = (0..17)
            .map(|i| json!({"kind": "Service", "name": format!("s{i}")}))
            .collect();
        let (path, message) = one(Kind::AuthorizationPolicy, json!({"targetRefs": refs}));
        assert_eq!(path, "spec.targetRefs");
        assert_eq!(message, "Too many: 17: must have at most 16 items");
        let spec = json!({"targetRef": {"group": "Bad_Group", "kind": "Gateway", "name": "gw"}});
        let (path, message) = one(Kind::RequestAuthentication, spec);
        assert_eq!(path, "spec.targetRef.group");
        assert!(
            message.contains("spec.targetRef.group in body should match '^$|^[a-z0-9]"),
            "{message}"
        );
        let ok = json!({"targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}});
        assert!(check(Kind::RequestAuthentication, &ok).is_empty());
    }

    #[test]
    fn wrong_types_nulls_and_unknown_fields_are_left_to_typed_decoding() {
        for spec in [
            json!(null),
            json!([]),
            json!({"portLevelMtls": null}),
            json!({"portLevelMtls": "x"}),
            json!({"portLevelMtls": []}),
            json!({"nosuch": {}}),
        ] {
            assert!(check(Kind::PeerAuthentication, &spec).is_empty(), "{spec}");
        }
        assert!(check(Kind::ConfigMap, &json!({"data": {}})).is_empty());
    }

    #[test]
    fn any_shape_under_any_field_is_walked_without_panicking() {
        let long = "x".repeat(70_000);
        let leaves = [
            json!(null),
            json!(true),
            json!(-1),
            json!(0),
            json!(1.5),
            json!(u64::MAX),
            json!(-1e300),
            json!(""),
            json!("ünïcödé"),
            json!(long),
            json!([]),
            json!({}),
        ];
        let mut shapes: Vec<Value> = leaves.to_vec();
        shapes.push(Value::Array(leaves.to_vec()));
        shapes.push(Value::Object(
            leaves
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v.clone()))
                .collect(),
        ));
        for kind in Kind::ALL {
            for m in MESSAGES {
                for f in m.fields {
                    for shape in &shapes {
                        let spec = json!({ f.json: shape, f.proto: [shape, {f.json: shape}] });
                        let found = check(*kind, &spec);
                        assert!(found.len() <= MAX_VIOLATIONS + 1);
                    }
                }
            }
        }
    }

    #[test]
    fn violations_are_capped() {
        let claims: Vec<Value> = (0..100).map(|_| json!("")).collect();
        let spec = json!({"jwtRules": [{"issuer": "a", "fromParams": claims}]});
        let found = check(Kind::RequestAuthentication, &spec);
        assert_eq!(found.len(), MAX_VIOLATIONS + 1);
        assert_eq!(
            found.last().map(|(_, m)| m.as_str()),
            Some("68 more schema violations not listed")
        );
    }
}
