//! Istio header operations (`headers.request/response.set/add/remove`) → Envoy header
//! options. `set` overwrites, `add` appends; pseudo-headers and `host` cannot be set this
//! way in Envoy, so a `:authority`/`host` value becomes a host rewrite instead (the caller
//! applies [`HeaderOperations::authority`]).

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use trellis_api::istio::networking::Headers;

/// The Envoy side of one `headers` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct HeaderOperations {
    pub request_add: Vec<HeaderValueOption>,
    pub response_add: Vec<HeaderValueOption>,
    pub request_remove: Vec<String>,
    pub response_remove: Vec<String>,
    /// The authority a request `set` (preferred) or `add` of `:authority`/`host` asks for.
    pub authority: String,
}

pub(super) fn operations(headers: &Headers) -> HeaderOperations {
    let req = headers.request.clone().unwrap_or_default();
    let resp = headers.response.clone().unwrap_or_default();
    let (mut request_add, set_authority) =
        options(&req.set, HeaderAppendAction::OverwriteIfExistsOrAdd);
    let (added, add_authority) = options(&req.add, HeaderAppendAction::AppendIfExistsOrAdd);
    request_add.extend(added);
    let (mut response_add, _) = options(&resp.set, HeaderAppendAction::OverwriteIfExistsOrAdd);
    response_add.extend(options(&resp.add, HeaderAppendAction::AppendIfExistsOrAdd).0);
    HeaderOperations {
        request_add,
        response_add,
        request_remove: drop_internal(&req.remove),
        response_remove: drop_internal(&resp.remove),
        authority: if set_authority.is_empty() {
            add_authority
        } else {
            set_authority
        },
    }
}

/// Header options sorted by name (the map is), without internal headers, and the
/// authority value if one was given.
fn options(
    headers: &BTreeMap<String, String>,
    action: HeaderAppendAction,
) -> (Vec<HeaderValueOption>, String) {
    let mut authority = String::new();
    let mut out = Vec::new();
    for (key, value) in headers {
        if is_authority(key) {
            authority = value.clone();
        }
        if is_internal(key) {
            continue;
        }
        out.push(HeaderValueOption {
            header: Some(HeaderValue {
                key: key.clone(),
                value: value.clone(),
                ..Default::default()
            }),
            append_action: action as i32,
            ..Default::default()
        });
    }
    (out, authority)
}

fn is_internal(key: &str) -> bool {
    key.starts_with(':') || key.eq_ignore_ascii_case("host")
}

fn is_authority(key: &str) -> bool {
    key.eq_ignore_ascii_case(":authority") || key.eq_ignore_ascii_case("host")
}

fn drop_internal(keys: &[String]) -> Vec<String> {
    keys.iter().filter(|k| !is_internal(k)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use trellis_api::istio::networking::HeadersHeaderOperations;

    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn set_overwrites_add_appends_internal_dropped() {
        let h = Headers {
            request: Some(HeadersHeaderOperations {
                set: map(&[("x-b", "1"), ("x-a", "2"), ("host", "set.example")]),
                add: map(&[("x-c", "3"), (":authority", "add.example")]),
                remove: vec!["x-d".into(), ":path".into()],
            }),
            response: Some(HeadersHeaderOperations {
                add: map(&[("x-served-by", "v1")]),
                ..Default::default()
            }),
        };
        let ops = operations(&h);
        let keys: Vec<(&str, i32)> = ops
            .request_add
            .iter()
            .map(|o| (o.header.as_ref().unwrap().key.as_str(), o.append_action))
            .collect();
        assert_eq!(
            keys,
            [
                ("x-a", HeaderAppendAction::OverwriteIfExistsOrAdd as i32),
                ("x-b", HeaderAppendAction::OverwriteIfExistsOrAdd as i32),
                ("x-c", HeaderAppendAction::AppendIfExistsOrAdd as i32),
            ]
        );
        assert_eq!(ops.authority, "set.example");
        assert_eq!(ops.request_remove, ["x-d"]);
        assert_eq!(ops.response_add.len(), 1);
    }
}
