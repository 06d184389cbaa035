//! `envoy.access_loggers.file` as istiod builds it: `FileAccessLog{path, log_format}` with
//! Istio's default formats (`EnvoyTextLogFormat`, `EnvoyJSONLogFormatIstio`), a newline
//! appended to text formats that lack one, `json_format_options{sort_properties: false}`
//! on JSON ones, and the `req_without_query` formatter when a format uses
//! `%REQ_WITHOUT_QUERY`.
//!
//! Envoy's `FileAccessLog` holds a JSON format in a `google.protobuf.Struct`, a map that
//! prost encodes in `HashMap` order; the messages here are wire-compatible twins with
//! ordered maps, so that one format always gives the same bytes.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::accesslog::v3::access_log::ConfigType;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, JsonFormatOptions, TypedExtensionConfig,
};
use envoy_types::pb::envoy::extensions::formatter::req_without_query::v3::ReqWithoutQuery;
use envoy_types::util::pack_any;
use serde_json::{Map, Value};

/// The access logger's extension name.
pub const FILE_ACCESS_LOG: &str = "envoy.access_loggers.file";
const REQ_WITHOUT_QUERY: &str = "envoy.formatter.req_without_query";

/// Istio's default text format (`EnvoyTextLogFormat`).
pub const ISTIO_TEXT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% \
%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \
\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \
%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \
\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% \
%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% \
%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// Istio's default JSON format (`EnvoyJSONLogFormatIstio`), key → format string.
pub const ISTIO_JSON_FORMAT: [(&str, &str); 24] = [
    ("authority", "%REQ(:AUTHORITY)%"),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    (
        "connection_termination_details",
        "%CONNECTION_TERMINATION_DETAILS%",
    ),
    ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("duration", "%DURATION%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("route_name", "%ROUTE_NAME%"),
    ("start_time", "%START_TIME%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
    (
        "upstream_service_time",
        "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    ),
    (
        "upstream_transport_failure_reason",
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    ),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
];

/// What a file access log writes per entry.
#[derive(Debug, Clone, PartialEq)]
pub enum LogFormat {
    /// An Envoy format string (Istio's default when empty).
    Text(String),
    /// Key → format string (or nested object); Istio's default when empty.
    Json(Map<String, Value>),
}

/// Istio's default JSON format as a map.
pub fn istio_json_format() -> Map<String, Value> {
    ISTIO_JSON_FORMAT
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
        .collect()
}

/// The access log writing `format` to `path`, as istiod builds it.
pub fn file_access_log(path: &str, format: &LogFormat, omit_empty_values: bool) -> AccessLog {
    let mut log_format = SubstitutionFormat {
        omit_empty_values,
        ..Default::default()
    };
    let uses_req_without_query = match format {
        LogFormat::Text(text) => {
            let text = if text.is_empty() {
                ISTIO_TEXT_FORMAT.to_string()
            } else if text.ends_with('\n') {
                text.clone()
            } else {
                format!("{text}\n")
            };
            let uses = text.contains("%REQ_WITHOUT_QUERY");
            log_format.text_format_source = Some(DataSource {
                specifier: Some(Specifier::InlineString(text)),
                ..Default::default()
            });
            uses
        }
        LogFormat::Json(map) => {
            let map = if map.is_empty() {
                istio_json_format()
            } else {
                map.clone()
            };
            let uses = map
                .values()
                .any(|v| v.as_str().is_some_and(|s| s.contains("%REQ_WITHOUT_QUERY")));
            log_format.json_format = Some(SortedStruct::of(&map));
            log_format.json_format_options = Some(JsonFormatOptions::default());
            uses
        }
    };
    if uses_req_without_query {
        log_format.formatters.push(TypedExtensionConfig {
            name: REQ_WITHOUT_QUERY.to_string(),
            typed_config: Some(pack_any(ReqWithoutQuery::default())),
        });
    }
    let config = FileLog {
        path: path.to_string(),
        log_format: Some(log_format),
    };
    AccessLog {
        name: FILE_ACCESS_LOG.to_string(),
        config_type: Some(ConfigType::TypedConfig(pack_any(config))),
        ..Default::default()
    }
}

/// `envoy.extensions.access_loggers.file.v3.FileAccessLog` (the fields Istio sets).
#[derive(Clone, PartialEq, prost::Message)]
struct FileLog {
    #[prost(string, tag = "1")]
    path: String,
    #[prost(message, optional, tag = "5")]
    log_format: Option<SubstitutionFormat>,
}

impl prost::Name for FileLog {
    const NAME: &'static str = "FileAccessLog";
    const PACKAGE: &'static str = "envoy.extensions.access_loggers.file.v3";

    fn type_url() -> String {
        format!("type.googleapis.com/{}", Self::full_name())
    }
}

/// `envoy.config.core.v3.SubstitutionFormatString`; at most one of `json_format` and
/// `text_format_source` is set (they are a oneof in Envoy's message).
#[derive(Clone, PartialEq, prost::Message)]
struct SubstitutionFormat {
    #[prost(message, optional, tag = "2")]
    json_format: Option<SortedStruct>,
    #[prost(bool, tag = "3")]
    omit_empty_values: bool,
    #[prost(message, optional, tag = "5")]
    text_format_source: Option<DataSource>,
    #[prost(message, repeated, tag = "6")]
    formatters: Vec<TypedExtensionConfig>,
    #[prost(message, optional, tag = "7")]
    json_format_options: Option<JsonFormatOptions>,
}

/// `google.protobuf.Struct` with its fields in key order.
#[derive(Clone, PartialEq, prost::Message)]
struct SortedStruct {
    #[prost(btree_map = "string, message", tag = "1")]
    fields: BTreeMap<String, SortedValue>,
}

impl SortedStruct {
    fn of(map: &Map<String, Value>) -> SortedStruct {
        SortedStruct {
            fields: map
                .iter()
                .map(|(k, v)| (k.clone(), SortedValue::of(v)))
                .collect(),
        }
    }
}

/// `google.protobuf.Value`.
#[derive(Clone, PartialEq, prost::Message)]
struct SortedValue {
    #[prost(oneof = "Kind", tags = "1, 2, 3, 4, 5, 6")]
    kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(int32, tag = "1")]
    Null(i32),
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    String(String),
    #[prost(bool, tag = "4")]
    Bool(bool),
    #[prost(message, tag = "5")]
    Struct(SortedStruct),
    #[prost(message, tag = "6")]
    List(SortedList),
}

/// `google.protobuf.ListValue`.
#[derive(Clone, PartialEq, prost::Message)]
struct SortedList {
    #[prost(message, repeated, tag = "1")]
    values: Vec<SortedValue>,
}

impl SortedValue {
    fn of(value: &Value) -> SortedValue {
        let kind = match value {
            Value::Null => Kind::Null(0),
            Value::Bool(b) => Kind::Bool(*b),
            Value::Number(n) => Kind::Number(n.as_f64().unwrap_or_default()),
            Value::String(s) => Kind::String(s.clone()),
            Value::Array(items) => Kind::List(SortedList {
                values: items.iter().map(SortedValue::of).collect(),
            }),
            Value::Object(map) => Kind::Struct(SortedStruct::of(map)),
        };
        SortedValue { kind: Some(kind) }
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
    use envoy_types::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog;
    use envoy_types::pb::envoy::extensions::access_loggers::file::v3::file_access_log::AccessLogFormat;
    use envoy_types::pb::google::protobuf::value::Kind as PbKind;
    use prost::Message;

    use super::*;

    /// Decodes the logger with Envoy's own message types.
    pub fn decode(log: &AccessLog) -> FileAccessLog {
        assert_eq!(log.name, FILE_ACCESS_LOG);
        let Some(ConfigType::TypedConfig(any)) = &log.config_type else {
            panic!("no typed config");
        };
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
        );
        FileAccessLog::decode(any.value.as_slice()).unwrap()
    }

    fn text_of(log: &FileAccessLog) -> String {
        match &log.access_log_format {
            Some(AccessLogFormat::LogFormat(f)) => match &f.format {
                Some(Format::TextFormatSource(DataSource {
                    specifier: Some(Specifier::InlineString(s)),
                    ..
                })) => s.clone(),
                other => panic!("not text: {other:?}"),
            },
            other => panic!("no log_format: {other:?}"),
        }
    }

    #[test]
    fn an_empty_text_format_is_istios_and_a_custom_one_ends_in_a_newline() {
        let default = decode(&file_access_log(
            "/dev/stdout",
            &LogFormat::Text(String::new()),
            false,
        ));
        assert_eq!(default.path, "/dev/stdout");
        assert_eq!(text_of(&default), ISTIO_TEXT_FORMAT);
        let custom = decode(&file_access_log(
            "/tmp/a.log",
            &LogFormat::Text("%PROTOCOL%".into()),
            false,
        ));
        assert_eq!(text_of(&custom), "%PROTOCOL%\n");
    }

    #[test]
    fn a_json_format_decodes_as_envoys_struct_with_sorted_bytes() {
        let mut map = Map::new();
        map.insert("z".into(), Value::String("%PROTOCOL%".into()));
        map.insert("a".into(), serde_json::json!({"n": 1, "l": [true, null]}));
        let log = file_access_log("/dev/stdout", &LogFormat::Json(map.clone()), true);
        let decoded = decode(&log);
        let Some(AccessLogFormat::LogFormat(f)) = &decoded.access_log_format else {
            panic!("no log_format");
        };
        assert!(f.omit_empty_values);
        assert_eq!(f.json_format_options, Some(JsonFormatOptions::default()));
        let Some(Format::JsonFormat(s)) = &f.format else {
            panic!("not JSON: {:?}", f.format);
        };
        assert_eq!(
            s.fields["z"].kind,
            Some(PbKind::StringValue("%PROTOCOL%".into()))
        );
        assert!(matches!(s.fields["a"].kind, Some(PbKind::StructValue(_))));
        // Same input, same bytes.
        assert_eq!(
            log,
            file_access_log("/dev/stdout", &LogFormat::Json(map), true)
        );
        let default = decode(&file_access_log(
            "/dev/stdout",
            &LogFormat::Json(Map::new()),
            false,
        ));
        let Some(AccessLogFormat::LogFormat(f)) = &default.access_log_format else {
            panic!("no log_format");
        };
        let Some(Format::JsonFormat(s)) = &f.format else {
            panic!("not JSON");
        };
        assert_eq!(s.fields.len(), 24);
    }

    #[test]
    fn req_without_query_brings_its_formatter() {
        let log = decode(&file_access_log(
            "/dev/stdout",
            &LogFormat::Text("%REQ_WITHOUT_QUERY(:PATH)%".into()),
            false,
        ));
        let Some(AccessLogFormat::LogFormat(f)) = &log.access_log_format else {
            panic!("no log_format");
        };
        assert_eq!(f.formatters.len(), 1);
        assert_eq!(f.formatters[0].name, REQ_WITHOUT_QUERY);
    }
}
