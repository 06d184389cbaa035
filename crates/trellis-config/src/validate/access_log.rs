//! Envoy access-log formats as Istio hands them to Envoy (meshConfig `accessLogFormat` and
//! `accessLogEncoding`, and the `envoyFileAccessLog` extension providers' `logFormat`).
//!
//! Istio passes format strings to Envoy unchecked, and Envoy rejects the whole listener
//! when one does not parse, so a typo would leave a proxy without listeners. These checks
//! follow Envoy's substitution-format parser: `%%` is a literal `%`; any other `%` opens a
//! command `%NAME(ARGUMENT):LENGTH%` whose name is upper-case letters, digits and `_`, whose
//! argument holds no `)`, and which a `%` closes. The translation uses the same functions
//! and falls back to Istio's default format where they fail, as istiod does for a JSON
//! format that does not parse.

use serde_json::{Map, Value};
use trellis_api::istio::mesh::{MeshConfig, MeshConfigAccessLogEncoding};

use super::Report;
use super::report::idx;

/// Checks an Envoy format string's `%` commands (see the module docs).
pub fn check_format_string(format: &str) -> Result<(), String> {
    let bytes = format.as_bytes();
    let mut pos = 0;
    while let Some(offset) = bytes
        .get(pos..)
        .and_then(|b| b.iter().position(|c| *c == b'%'))
    {
        let start = pos + offset;
        if bytes.get(start + 1) == Some(&b'%') {
            pos = start + 2;
            continue;
        }
        match command_len(bytes.get(start..).unwrap_or_default()) {
            Some(len) => pos = start + len,
            None => {
                return Err(format!(
                    "invalid access log format {format:?}: no valid %COMMAND% at position {start} \
                     (write %% for a literal %)"
                ));
            }
        }
    }
    Ok(())
}

/// The length of the command at the start of `s` (which starts with `%`), closing `%`
/// included, or `None` when none is there.
fn command_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    let name = |c: &u8| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_';
    while s.get(i).is_some_and(name) {
        i += 1;
    }
    if i == 1 {
        return None;
    }
    if s.get(i) == Some(&b'(') {
        i += s.get(i..)?.iter().position(|c| *c == b')')? + 1;
    }
    if s.get(i) == Some(&b':') && s.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    (s.get(i) == Some(&b'%')).then_some(i + 1)
}

/// Parses a JSON access-log format: a JSON object whose string values (at any depth) are
/// format strings.
pub fn parse_json_format(format: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(format) {
        Ok(Value::Object(map)) => {
            check_json_values(&Value::Object(map.clone()))?;
            Ok(map)
        }
        Ok(_) => Err("a JSON access log format must be a JSON object".to_string()),
        Err(e) => Err(format!("invalid JSON access log format: {e}")),
    }
}

/// Checks every string inside a JSON format (an object of labels).
pub fn check_json_values(value: &Value) -> Result<(), String> {
    match value {
        Value::String(s) => check_format_string(s),
        Value::Object(map) => map.values().try_for_each(check_json_values),
        Value::Array(items) => items.iter().try_for_each(check_json_values),
        _ => Ok(()),
    }
}

/// The access-log fields of a mesh config: the format must suit the encoding.
pub(crate) fn check_mesh_access_log(r: &mut Report, mesh: &MeshConfig) {
    if mesh.access_log_format.is_empty() {
        return;
    }
    let result = match mesh.access_log_encoding {
        MeshConfigAccessLogEncoding::Text => check_format_string(&mesh.access_log_format),
        MeshConfigAccessLogEncoding::Json => parse_json_format(&mesh.access_log_format).map(|_| ()),
    };
    r.check("accessLogFormat", result);
}

/// The `logFormat` of every `envoyFileAccessLog` extension provider.
pub(crate) fn check_provider_formats(r: &mut Report, mesh: &MeshConfig) {
    for (i, p) in mesh.extension_providers.iter().enumerate() {
        let Some(format) = p
            .envoy_file_access_log
            .as_ref()
            .and_then(|f| f.log_format.as_ref())
        else {
            continue;
        };
        let base = format!(
            "{}.envoyFileAccessLog.logFormat",
            idx("", "extensionProviders", i)
        );
        if let Some(text) = &format.text {
            r.check(&format!("{base}.text"), check_format_string(text));
        }
        if let Some(labels) = &format.labels {
            let result = match labels {
                Value::Object(_) => check_json_values(labels),
                _ => Err("labels must be a JSON object".to_string()),
            };
            r.check(&format!("{base}.labels"), result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_commands_parse_and_broken_ones_do_not() {
        for good in [
            "",
            "plain text\n",
            "[%START_TIME%] %REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%\n",
            "%REQ(:PATH):10% 100%% sure %DOWNSTREAM_PEER_URI_SAN%",
            "%START_TIME(%s.%3f)%",
        ] {
            assert_eq!(check_format_string(good), Ok(()), "{good}");
        }
        for (bad, position) in [
            ("a %START_TIME b", 2),
            ("%", 0),
            ("x %start_time%", 2),
            ("%REQ(:PATH%", 0),
            ("ok %PROTOCOL% then 50% off", 21),
        ] {
            let e = check_format_string(bad).unwrap_err();
            assert!(e.contains(&format!("position {position}")), "{bad}: {e}");
        }
    }

    #[test]
    fn a_json_format_is_an_object_of_format_strings() {
        let map =
            parse_json_format(r#"{"code": "%RESPONSE_CODE%", "n": {"p": "%PROTOCOL%"}}"#).unwrap();
        assert_eq!(map.len(), 2);
        assert!(
            parse_json_format("[1]")
                .unwrap_err()
                .contains("JSON object")
        );
        assert!(
            parse_json_format("%START_TIME%")
                .unwrap_err()
                .contains("invalid JSON")
        );
        assert!(
            parse_json_format(r#"{"a": "%BROKEN"}"#)
                .unwrap_err()
                .contains("position 0")
        );
    }

    #[test]
    fn mesh_findings_name_the_field() {
        let mut r = Report::default();
        let mesh: MeshConfig = trellis_api::decode_mesh_config(
            "mesh.yaml",
            br#"{"accessLogEncoding": "JSON", "accessLogFormat": "not json",
                "extensionProviders": [{"name": "f", "envoyFileAccessLog":
                    {"path": "/dev/stdout", "logFormat": {"text": "%OOPS"}}}]}"#,
        )
        .unwrap();
        check_mesh_access_log(&mut r, &mesh);
        check_provider_formats(&mut r, &mesh);
        let paths: Vec<String> = r.into_findings().into_iter().map(|f| f.path).collect();
        assert_eq!(
            paths,
            [
                "accessLogFormat",
                "extensionProviders[0].envoyFileAccessLog.logFormat.text"
            ]
        );
    }
}
