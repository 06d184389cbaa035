//! Envoy's proto3 JSON mapping for the RBAC and JWT filter messages Trellis emits, to
//! compare with Istio's expected YAML (camelCase names, defaults left out, enums by name).

#![allow(deprecated, dead_code)]

use envoy_types::pb::envoy::config::core::v3::{CidrRange, TypedExtensionConfig};
use envoy_types::pb::envoy::config::rbac::v3::principal::Identifier;
use envoy_types::pb::envoy::config::rbac::v3::{Permission, Policy, Principal, permission};
use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::path_segment::Segment;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, PathMatcher, StringMatcher, ValueMatcher, list_matcher, path_matcher,
    value_matcher,
};
use prost::Message;
use serde_json::{Map, Value, json};
use trellis_control_plane::translate::authz::rbac::{HttpRbac, NetworkRbac, SortedRbac};

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Map<String, Value>>(),
    )
}

fn non_empty(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { json!(s) }
}

pub fn http_rbac(bytes: &[u8]) -> Value {
    let m = HttpRbac::decode(bytes).unwrap();
    obj(vec![
        (
            "@type",
            json!("type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"),
        ),
        ("rules", m.rules.as_ref().map_or(Value::Null, rbac)),
        (
            "shadowRules",
            m.shadow_rules.as_ref().map_or(Value::Null, rbac),
        ),
        (
            "shadowRulesStatPrefix",
            non_empty(&m.shadow_rules_stat_prefix),
        ),
    ])
}

pub fn network_rbac(bytes: &[u8]) -> Value {
    let m = NetworkRbac::decode(bytes).unwrap();
    obj(vec![
        (
            "@type",
            json!("type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"),
        ),
        ("rules", m.rules.as_ref().map_or(Value::Null, rbac)),
        (
            "shadowRules",
            m.shadow_rules.as_ref().map_or(Value::Null, rbac),
        ),
        ("statPrefix", non_empty(&m.stat_prefix)),
        (
            "shadowRulesStatPrefix",
            non_empty(&m.shadow_rules_stat_prefix),
        ),
    ])
}

fn rbac(r: &SortedRbac) -> Value {
    let action = match r.action {
        0 => Value::Null,
        1 => json!("DENY"),
        _ => json!("LOG"),
    };
    let policies = if r.policies.is_empty() {
        Value::Null
    } else {
        Value::Object(
            r.policies
                .iter()
                .map(|(k, p)| (k.clone(), policy(p)))
                .collect(),
        )
    };
    obj(vec![("action", action), ("policies", policies)])
}

fn policy(p: &Policy) -> Value {
    obj(vec![
        (
            "permissions",
            Value::Array(p.permissions.iter().map(perm).collect()),
        ),
        (
            "principals",
            Value::Array(p.principals.iter().map(princ).collect()),
        ),
    ])
}

fn perm(p: &Permission) -> Value {
    use permission::Rule;
    match &p.rule {
        Some(Rule::AndRules(s)) => {
            json!({"andRules": {"rules": s.rules.iter().map(perm).collect::<Vec<_>>()}})
        }
        Some(Rule::OrRules(s)) => {
            json!({"orRules": {"rules": s.rules.iter().map(perm).collect::<Vec<_>>()}})
        }
        Some(Rule::Any(b)) => json!({ "any": b }),
        Some(Rule::Header(h)) => json!({ "header": header(h) }),
        Some(Rule::UrlPath(p)) => json!({ "urlPath": path(p) }),
        Some(Rule::DestinationIp(c)) => json!({ "destinationIp": cidr(c) }),
        Some(Rule::DestinationPort(n)) => json!({ "destinationPort": n }),
        Some(Rule::Metadata(m)) => json!({ "metadata": metadata(m) }),
        Some(Rule::NotRule(n)) => json!({ "notRule": perm(n) }),
        Some(Rule::RequestedServerName(s)) => json!({ "requestedServerName": string(s) }),
        Some(Rule::UriTemplate(t)) => json!({ "uriTemplate": template(t) }),
        other => json!({ "unsupported": format!("{other:?}") }),
    }
}

fn princ(p: &Principal) -> Value {
    match &p.identifier {
        Some(Identifier::AndIds(s)) => {
            json!({"andIds": {"ids": s.ids.iter().map(princ).collect::<Vec<_>>()}})
        }
        Some(Identifier::OrIds(s)) => {
            json!({"orIds": {"ids": s.ids.iter().map(princ).collect::<Vec<_>>()}})
        }
        Some(Identifier::Any(b)) => json!({ "any": b }),
        Some(Identifier::Authenticated(a)) => {
            json!({"authenticated": {"principalName": a.principal_name.as_ref().map_or(Value::Null, string)}})
        }
        Some(Identifier::DirectRemoteIp(c)) => json!({ "directRemoteIp": cidr(c) }),
        Some(Identifier::RemoteIp(c)) => json!({ "remoteIp": cidr(c) }),
        Some(Identifier::Header(h)) => json!({ "header": header(h) }),
        Some(Identifier::Metadata(m)) => json!({ "metadata": metadata(m) }),
        Some(Identifier::NotId(n)) => json!({ "notId": princ(n) }),
        other => json!({ "unsupported": format!("{other:?}") }),
    }
}

fn string(s: &StringMatcher) -> Value {
    let (k, v) = match &s.match_pattern {
        Some(MatchPattern::Exact(v)) => ("exact", json!(v)),
        Some(MatchPattern::Prefix(v)) => ("prefix", json!(v)),
        Some(MatchPattern::Suffix(v)) => ("suffix", json!(v)),
        Some(MatchPattern::Contains(v)) => ("contains", json!(v)),
        Some(MatchPattern::SafeRegex(r)) => ("safeRegex", json!({ "regex": r.regex })),
        other => ("unsupported", json!(format!("{other:?}"))),
    };
    obj(vec![
        (k, v),
        (
            "ignoreCase",
            if s.ignore_case {
                json!(true)
            } else {
                Value::Null
            },
        ),
    ])
}

fn header(h: &HeaderMatcher) -> Value {
    let (k, v) = match &h.header_match_specifier {
        Some(HeaderMatchSpecifier::StringMatch(s)) => ("stringMatch", string(s)),
        Some(HeaderMatchSpecifier::PresentMatch(b)) => ("presentMatch", json!(b)),
        other => ("unsupported", json!(format!("{other:?}"))),
    };
    obj(vec![("name", json!(h.name)), (k, v)])
}

fn path(p: &PathMatcher) -> Value {
    match &p.rule {
        Some(path_matcher::Rule::Path(s)) => json!({ "path": string(s) }),
        None => Value::Null,
    }
}

fn cidr(c: &CidrRange) -> Value {
    obj(vec![
        ("addressPrefix", json!(c.address_prefix)),
        (
            "prefixLen",
            c.prefix_len.map_or(Value::Null, |p| json!(p.value)),
        ),
    ])
}

fn template(t: &TypedExtensionConfig) -> Value {
    let any = t.typed_config.as_ref().unwrap();
    let config = UriTemplateMatchConfig::decode(any.value.as_slice()).unwrap();
    json!({"name": t.name, "typedConfig": {"@type": any.type_url, "pathTemplate": config.path_template}})
}

fn metadata(m: &MetadataMatcher) -> Value {
    let path: Vec<Value> = m
        .path
        .iter()
        .map(|s| match &s.segment {
            Some(Segment::Key(k)) => json!({ "key": k }),
            None => Value::Null,
        })
        .collect();
    obj(vec![
        ("filter", json!(m.filter)),
        ("path", Value::Array(path)),
        ("value", m.value.as_ref().map_or(Value::Null, value)),
    ])
}

fn value(v: &ValueMatcher) -> Value {
    use value_matcher::MatchPattern as P;
    match &v.match_pattern {
        Some(P::StringMatch(s)) => json!({ "stringMatch": string(s) }),
        Some(P::ListMatch(l)) => match &l.match_pattern {
            Some(list_matcher::MatchPattern::OneOf(one)) => {
                json!({"listMatch": {"oneOf": value(one)}})
            }
            None => Value::Null,
        },
        Some(P::OrMatch(o)) => {
            json!({"orMatch": {"valueMatchers": o.value_matchers.iter().map(value).collect::<Vec<_>>()}})
        }
        other => json!({ "unsupported": format!("{other:?}") }),
    }
}
