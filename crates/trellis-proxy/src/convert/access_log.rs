//! `access_log` (`envoy.config.accesslog.v3.AccessLog`) → [`AccessLog`]: the file and
//! stdout/stderr loggers with their format and filter. As in Envoy, a format string Envoy
//! would reject rejects the resource; what Envoy has and the proxy does not (other logger
//! types, other filters, format extensions, operators) is warned about once and left out,
//! so that a listener is never lost for the sake of a log field.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use envoy_types::pb::envoy::config::accesslog::v3::access_log::ConfigType;
use envoy_types::pb::envoy::config::accesslog::v3::access_log_filter::FilterSpecifier;
use envoy_types::pb::envoy::config::accesslog::v3::comparison_filter::Op;
use envoy_types::pb::envoy::config::accesslog::v3::extension_filter::ConfigType as ExtensionConfig;
use envoy_types::pb::envoy::config::accesslog::v3::{
    AccessLog as PbAccessLog, AccessLogFilter, ComparisonFilter,
};
use envoy_types::pb::envoy::config::core::v3::SubstitutionFormatString;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format as PbFormat;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::file_access_log::AccessLogFormat;
use envoy_types::pb::envoy::extensions::access_loggers::filters::cel::v3::ExpressionFilter;
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::{
    StderrAccessLog, StdoutAccessLog, stderr_access_log, stdout_access_log,
};
use prost::Name;

use super::Result;
use super::listener::unpack;
use crate::flags::{Flag, Flags};
use crate::telemetry::access_log::{AccessLog, Compare, Filter};
use crate::telemetry::format::{Format, Kind, Template, json};
use crate::telemetry::sink::Target;

/// The formatter extension of `%REQ_WITHOUT_QUERY%`, which the proxy has built in.
const REQ_WITHOUT_QUERY: &str = "envoy.formatter.req_without_query";

/// The loggers of one `access_log` list; `p` is the owner's path for messages.
pub fn access_logs(logs: &[PbAccessLog], p: &str) -> Result<Vec<Arc<AccessLog>>> {
    let mut out = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        let p = format!("{p}.access_log[{i}]");
        if let Some(log) = access_log(log, &p)? {
            out.push(Arc::new(log));
        }
    }
    Ok(out)
}

fn access_log(log: &PbAccessLog, p: &str) -> Result<Option<AccessLog>> {
    let PbAccessLog {
        name,
        filter,
        config_type,
    } = log;
    let Some(ConfigType::TypedConfig(any)) = config_type else {
        warn_once(format!("{p} ({name}): no typed_config; not logged"));
        return Ok(None);
    };
    let (target, format) = if any.type_url == FileAccessLog::type_url() {
        let f: FileAccessLog = unpack(any, p)?;
        let format = match &f.access_log_format {
            None => Format::envoy_default(),
            Some(AccessLogFormat::LogFormat(s)) => substitution(s, p)?,
            Some(AccessLogFormat::Format(t)) => text(t, false, p)?,
            Some(AccessLogFormat::JsonFormat(s) | AccessLogFormat::TypedJsonFormat(s)) => Format {
                kind: Kind::Json(json::Node::from_struct(s).map_err(|e| format!("{p}: {e}"))?),
                omit_empty: false,
            },
        };
        (Target::from_path(&f.path), format)
    } else if any.type_url == StdoutAccessLog::type_url() {
        let s: StdoutAccessLog = unpack(any, p)?;
        let format = match &s.access_log_format {
            Some(stdout_access_log::AccessLogFormat::LogFormat(f)) => substitution(f, p)?,
            None => Format::envoy_default(),
        };
        (Target::Stdout, format)
    } else if any.type_url == StderrAccessLog::type_url() {
        let s: StderrAccessLog = unpack(any, p)?;
        let format = match &s.access_log_format {
            Some(stderr_access_log::AccessLogFormat::LogFormat(f)) => substitution(f, p)?,
            None => Format::envoy_default(),
        };
        (Target::Stderr, format)
    } else {
        warn_once(format!(
            "{p} ({name}): logger {} is not implemented; not logged",
            any.type_url
        ));
        return Ok(None);
    };
    let unimplemented = format.unimplemented();
    if !unimplemented.is_empty() {
        warn_once(format!(
            "{p} ({name}): operators {} are not implemented and log \"-\"",
            unimplemented.join(", ")
        ));
    }
    Ok(Some(AccessLog {
        target,
        format,
        filter: filter
            .as_ref()
            .and_then(|f| self::filter(f, &format!("{p}.filter"))),
    }))
}

/// `SubstitutionFormatString`: text (inline) or JSON.
fn substitution(s: &SubstitutionFormatString, p: &str) -> Result<Format> {
    let SubstitutionFormatString {
        omit_empty_values,
        content_type: _,
        formatters,
        json_format_options: _,
        format,
    } = s;
    let names: Vec<&str> = formatters
        .iter()
        .map(|f| f.name.as_str())
        .filter(|name| *name != REQ_WITHOUT_QUERY)
        .collect();
    if !names.is_empty() {
        warn_once(format!(
            "{p}.formatters: {} not implemented; their operators log \"-\"",
            names.join(", ")
        ));
    }
    match format {
        None => Ok(Format::envoy_default()),
        Some(PbFormat::TextFormat(t)) => text(t, *omit_empty_values, p),
        Some(PbFormat::TextFormatSource(source)) => match &source.specifier {
            Some(Specifier::InlineString(t)) => text(t, *omit_empty_values, p),
            Some(Specifier::InlineBytes(b)) => {
                text(&String::from_utf8_lossy(b), *omit_empty_values, p)
            }
            _ => Err(format!(
                "{p}.text_format_source: only inline_string and inline_bytes are implemented"
            )),
        },
        Some(PbFormat::JsonFormat(s)) => Ok(Format {
            kind: Kind::Json(json::Node::from_struct(s).map_err(|e| format!("{p}: {e}"))?),
            omit_empty: *omit_empty_values,
        }),
    }
}

fn text(t: &str, omit_empty: bool, p: &str) -> Result<Format> {
    Ok(Format {
        kind: Kind::Text(Template::parse(t).map_err(|e| format!("{p}: {e}"))?),
        omit_empty,
    })
}

/// The filter, or `None` (log everything) for one the proxy does not evaluate.
fn filter(f: &AccessLogFilter, p: &str) -> Option<Filter> {
    let skip = |what: &str| {
        warn_once(format!(
            "{p}: {what} is not implemented; this logger logs every request"
        ));
        None
    };
    match &f.filter_specifier {
        Some(FilterSpecifier::StatusCodeFilter(s)) => {
            comparison(s.comparison.as_ref()).map(|(op, v)| Filter::StatusCode(op, v))
        }
        Some(FilterSpecifier::DurationFilter(d)) => {
            comparison(d.comparison.as_ref()).map(|(op, v)| Filter::Duration(op, v))
        }
        Some(FilterSpecifier::ResponseFlagFilter(r)) => {
            let mut flags = Flags::default();
            for name in &r.flags {
                match Flag::from_short(name) {
                    Some(f) => flags.insert(f),
                    // A flag the proxy never sets never matches.
                    None => tracing::debug!(flag = %name, "response flag the proxy never sets"),
                }
            }
            if flags.is_empty() && !r.flags.is_empty() {
                // Only flags the proxy never sets: nothing is ever logged, as in Envoy.
                return Some(Filter::Or(Vec::new()));
            }
            Some(Filter::ResponseFlags(flags))
        }
        Some(FilterSpecifier::NotHealthCheckFilter(_)) => Some(Filter::NotHealthCheck),
        Some(FilterSpecifier::AndFilter(a)) => Some(Filter::And(
            a.filters.iter().filter_map(|f| filter(f, p)).collect(),
        )),
        Some(FilterSpecifier::OrFilter(o)) => {
            let all: Vec<Option<Filter>> = o.filters.iter().map(|f| filter(f, p)).collect();
            // One unevaluated branch admits everything.
            all.into_iter().collect::<Option<Vec<_>>>().map(Filter::Or)
        }
        Some(FilterSpecifier::ExtensionFilter(e)) => {
            let expression = match &e.config_type {
                Some(ExtensionConfig::TypedConfig(any))
                    if any.type_url == ExpressionFilter::type_url() =>
                {
                    unpack::<ExpressionFilter>(any, p)
                        .ok()
                        .map(|f| f.expression)
                }
                _ => None,
            };
            match expression
                .as_deref()
                .and_then(crate::telemetry::cel::filter)
            {
                Some(f) => Some(f),
                None => skip(&format!(
                    "extension filter {} ({})",
                    e.name,
                    expression.as_deref().unwrap_or("not CEL")
                )),
            }
        }
        Some(_) => skip("this filter"),
        None => None,
    }
}

fn comparison(c: Option<&ComparisonFilter>) -> Option<(Compare, u64)> {
    let c = c?;
    let op = match Op::try_from(c.op).ok()? {
        Op::Eq => Compare::Eq,
        Op::Ge => Compare::Ge,
        Op::Le => Compare::Le,
        Op::Ne => Compare::Ne,
    };
    Some((
        op,
        u64::from(c.value.as_ref().map_or(0, |v| v.default_value)),
    ))
}

/// Each distinct warning once per process: pushes repeat the same config.
fn warn_once(message: String) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    if seen
        .get_or_insert_with(HashSet::new)
        .insert(message.clone())
    {
        tracing::warn!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::accesslog::v3::ResponseFlagFilter;
    use envoy_types::pb::envoy::config::core::v3::DataSource;
    use envoy_types::pb::google::protobuf::Any;
    use prost::Message;

    fn any<T: Message + Name>(m: &T) -> Any {
        Any {
            type_url: T::type_url(),
            value: m.encode_to_vec(),
        }
    }

    /// What Istio emits for meshConfig `accessLogFile` + `accessLogFormat`.
    fn file_log(path: &str, format: &str, filter: Option<AccessLogFilter>) -> PbAccessLog {
        let file = FileAccessLog {
            path: path.into(),
            access_log_format: Some(AccessLogFormat::LogFormat(SubstitutionFormatString {
                format: Some(PbFormat::TextFormatSource(DataSource {
                    specifier: Some(Specifier::InlineString(format.into())),
                    ..Default::default()
                })),
                ..Default::default()
            })),
        };
        PbAccessLog {
            name: "envoy.access_loggers.file".into(),
            filter,
            config_type: Some(ConfigType::TypedConfig(any(&file))),
        }
    }

    #[test]
    fn file_loggers_become_targets_formats_and_filters() {
        let nr = AccessLogFilter {
            filter_specifier: Some(FilterSpecifier::ResponseFlagFilter(ResponseFlagFilter {
                flags: vec!["NR".into()],
            })),
        };
        let logs = access_logs(
            &[
                file_log("/dev/stdout", "%RESPONSE_CODE%\n", None),
                file_log("/tmp/x.log", "%CEL(x)%\n", Some(nr)),
            ],
            "listener l",
        )
        .unwrap();
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0].target, Target::Stdout);
        assert_eq!(logs[1].target, Target::File("/tmp/x.log".into()));
        assert_eq!(logs[1].format.unimplemented(), ["CEL"]);
        let mut flags = Flags::default();
        flags.insert(Flag::NoRoute);
        assert_eq!(logs[1].filter, Some(Filter::ResponseFlags(flags)));
    }

    #[test]
    fn a_bad_format_rejects_the_resource_naming_the_operator() {
        let err =
            access_logs(&[file_log("/dev/stdout", "%NOPE%", None)], "listener l").unwrap_err();
        assert_eq!(
            err,
            "listener l.access_log[0]: Not supported field in StreamInfo: NOPE"
        );
        let err = access_logs(&[file_log("/dev/stdout", "50%", None)], "l").unwrap_err();
        assert!(
            err.contains("Couldn't find valid command at position 2"),
            "{err}"
        );
    }

    #[test]
    fn other_loggers_and_filters_are_left_out_not_rejected() {
        let grpc = PbAccessLog {
            name: "envoy.access_loggers.http_grpc".into(),
            filter: None,
            config_type: Some(ConfigType::TypedConfig(Any {
                type_url: "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig".into(),
                value: Vec::new(),
            })),
        };
        let cel = AccessLogFilter {
            filter_specifier: Some(FilterSpecifier::ExtensionFilter(Default::default())),
        };
        let logs = access_logs(&[grpc, file_log("/dev/stderr", "x\n", Some(cel))], "l").unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].target, Target::Stderr);
        assert_eq!(logs[0].filter, None);
    }

    /// Istio's Telemetry `filter.expression` as Envoy's CEL extension filter.
    #[test]
    fn istios_cel_status_filters_are_evaluated() {
        let cel = AccessLogFilter {
            filter_specifier: Some(FilterSpecifier::ExtensionFilter(
                envoy_types::pb::envoy::config::accesslog::v3::ExtensionFilter {
                    name: "envoy.access_loggers.extension_filters.cel".into(),
                    config_type: Some(ExtensionConfig::TypedConfig(any(&ExpressionFilter {
                        expression: "response.code >= 400".into(),
                        cel_config: None,
                    }))),
                },
            )),
        };
        let logs = access_logs(&[file_log("/dev/stdout", "x\n", Some(cel))], "l").unwrap();
        assert_eq!(
            logs[0].filter,
            Some(Filter::Or(vec![Filter::And(vec![Filter::StatusCode(
                Compare::Ge,
                400
            )])]))
        );
    }

    #[test]
    fn json_and_the_default_format() {
        let file = FileAccessLog {
            path: "/dev/stdout".into(),
            access_log_format: None,
        };
        let log = PbAccessLog {
            name: String::new(),
            filter: None,
            config_type: Some(ConfigType::TypedConfig(any(&file))),
        };
        let logs = access_logs(&[log], "l").unwrap();
        assert_eq!(logs[0].format, Format::envoy_default());
        let stdout = StdoutAccessLog {
            access_log_format: Some(stdout_access_log::AccessLogFormat::LogFormat(
                SubstitutionFormatString {
                    format: Some(PbFormat::JsonFormat(Default::default())),
                    omit_empty_values: true,
                    ..Default::default()
                },
            )),
        };
        let log = PbAccessLog {
            name: String::new(),
            filter: None,
            config_type: Some(ConfigType::TypedConfig(any(&stdout))),
        };
        let logs = access_logs(&[log], "l").unwrap();
        assert!(matches!(logs[0].format.kind, Kind::Json(_)));
        assert!(logs[0].format.omit_empty);
    }
}
