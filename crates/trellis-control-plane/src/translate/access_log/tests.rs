use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::accesslog::v3::access_log::ConfigType as LogConfig;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::file_access_log::AccessLogFormat;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use prost::Message;
use trellis_api::istio::mesh::MeshConfig;

use super::file::ISTIO_TEXT_FORMAT;
use super::*;
use crate::testing::snapshot;
use crate::translate::translate;

pub(super) const MESH: &str = "
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 240.240.2.1
  selector: {app: web}
  ports:
  - {name: http, port: 9080}
  - {name: tcp, port: 3306}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1}
spec:
  address: 127.0.0.41
  labels: {app: web}
";

pub(super) fn mesh_with(config: &str, objects: &str) -> MeshSnapshot {
    let mesh: MeshConfig = trellis_api::decode_mesh_config("mesh.yaml", config.as_bytes()).unwrap();
    MeshSnapshot::new(snapshot(objects), &[], Arc::new(mesh))
}

pub(super) fn node(kind: ProxyKind, ip: &str, labels: &[(&str, &str)]) -> ProxyNode {
    let id = ProxyNode::node_id(kind, ip, "web-1", "default");
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ProxyNode::from_parts(&id, &BTreeMap::new(), labels).unwrap()
}

pub(super) fn server() -> ProxyNode {
    node(ProxyKind::Sidecar, "127.0.0.41", &[("app", "web")])
}

/// Every access log of every HCM and `tcp_proxy`, with the listener's direction and the
/// filter's name.
pub(super) fn filter_logs(listeners: &[Listener]) -> Vec<(String, String, Vec<AccessLog>)> {
    let mut out = Vec::new();
    for l in listeners {
        for chain in l.filter_chains.iter().chain(&l.default_filter_chain) {
            for f in &chain.filters {
                let Some(ConfigType::TypedConfig(any)) = &f.config_type else {
                    continue;
                };
                let logs = match f.name.as_str() {
                    HCM => {
                        HttpConnectionManager::decode(any.value.as_slice())
                            .unwrap()
                            .access_log
                    }
                    TCP_PROXY => TcpProxy::decode(any.value.as_slice()).unwrap().access_log,
                    _ => continue,
                };
                out.push((l.name.clone(), f.name.clone(), logs));
            }
        }
    }
    out
}

pub(super) fn file_config(log: &AccessLog) -> FileAccessLog {
    assert_eq!(log.name, file::FILE_ACCESS_LOG);
    let Some(LogConfig::TypedConfig(any)) = &log.config_type else {
        panic!("no typed config");
    };
    FileAccessLog::decode(any.value.as_slice()).unwrap()
}

fn text(log: &AccessLog) -> String {
    match file_config(log).access_log_format {
        Some(AccessLogFormat::LogFormat(f)) => match f.format {
            Some(Format::TextFormatSource(d)) => match d.specifier {
                Some(Specifier::InlineString(s)) => s,
                other => panic!("{other:?}"),
            },
            other => panic!("not text: {other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn without_access_log_file_nothing_is_logged() {
    let out = translate(&mesh_with("{}", MESH), &server()).listeners;
    assert!(out.iter().all(|l| l.access_log.is_empty()));
    let logs = filter_logs(&out);
    assert!(!logs.is_empty());
    assert!(logs.iter().all(|(_, _, l)| l.is_empty()), "{logs:?}");
}

#[test]
fn access_log_file_logs_on_every_hcm_tcp_proxy_and_listener() {
    let mesh = mesh_with(r#"{"accessLogFile": "/dev/stdout"}"#, MESH);
    let out = translate(&mesh, &server()).listeners;
    let logs = filter_logs(&out);
    for name in [HCM, TCP_PROXY] {
        assert!(logs.iter().any(|(_, f, _)| f == name), "no {name}");
    }
    for (listener, filter, logs) in &logs {
        assert_eq!(logs.len(), 1, "{listener} {filter}");
        assert!(logs[0].filter.is_none());
        assert_eq!(file_config(&logs[0]).path, "/dev/stdout");
        assert_eq!(text(&logs[0]), ISTIO_TEXT_FORMAT);
    }
    for l in &out {
        assert_eq!(l.access_log.len(), 1, "{}", l.name);
        let log = &l.access_log[0];
        assert_eq!(
            log.filter,
            Some(AccessLogFilter {
                filter_specifier: Some(FilterSpecifier::ResponseFlagFilter(ResponseFlagFilter {
                    flags: vec!["NR".into()],
                })),
            })
        );
        assert_eq!(text(log), ISTIO_TEXT_FORMAT);
    }
    // Inbound and outbound both log.
    assert!(out.iter().any(|l| l.name == "virtualInbound"));
    assert!(out.iter().any(|l| l.name == "virtualOutbound"));
}

#[test]
fn gateways_log_too_and_the_listener_log_can_be_disabled() {
    let objects = format!(
        "{MESH}---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 8080, name: http, protocol: HTTP}}
    hosts: ['*']
"
    );
    let mesh = mesh_with(
        r#"{"accessLogFile": "/tmp/gw.log", "disableEnvoyListenerLog": true}"#,
        &objects,
    );
    let gateway = node(
        ProxyKind::Router,
        "127.0.0.42",
        &[("istio", "ingressgateway")],
    );
    let out = translate(&mesh, &gateway).listeners;
    assert!(!out.is_empty());
    assert!(out.iter().all(|l| l.access_log.is_empty()));
    let logs = filter_logs(&out);
    assert!(!logs.is_empty());
    for (_, _, l) in logs {
        assert_eq!(file_config(&l[0]).path, "/tmp/gw.log");
    }
}

#[test]
fn mesh_formats_follow_the_encoding_and_fall_back_when_invalid() {
    let custom = r#"{"accessLogFile": "/dev/stdout", "accessLogFormat": "%PROTOCOL% %DOWNSTREAM_PEER_URI_SAN%"}"#;
    let logs = mesh_loggers(&mesh_with(custom, "").mesh);
    assert_eq!(text(&logs[0]), "%PROTOCOL% %DOWNSTREAM_PEER_URI_SAN%\n");
    let broken = r#"{"accessLogFile": "/dev/stdout", "accessLogFormat": "%PROTOCOL"}"#;
    let logs = mesh_loggers(&mesh_with(broken, "").mesh);
    assert_eq!(text(&logs[0]), ISTIO_TEXT_FORMAT);

    let json = r#"{"accessLogFile": "/dev/stdout", "accessLogEncoding": "JSON",
        "accessLogFormat": "{\"code\": \"%RESPONSE_CODE%\"}"}"#;
    let mut expected = serde_json::Map::new();
    expected.insert("code".into(), "%RESPONSE_CODE%".into());
    assert_eq!(
        mesh_format(&mesh_with(json, "").mesh),
        LogFormat::Json(expected)
    );
    let not_object = r#"{"accessLogFile": "/dev/stdout", "accessLogEncoding": "JSON",
        "accessLogFormat": "%RESPONSE_CODE%"}"#;
    assert_eq!(
        mesh_format(&mesh_with(not_object, "").mesh),
        LogFormat::Json(Default::default())
    );
    // Empty JSON format: Istio's default JSON labels.
    let default_json = r#"{"accessLogFile": "/dev/stdout", "accessLogEncoding": "JSON"}"#;
    let log = file_config(&mesh_loggers(&mesh_with(default_json, "").mesh)[0]);
    match log.access_log_format {
        Some(AccessLogFormat::LogFormat(f)) => match f.format {
            Some(Format::JsonFormat(s)) => assert!(s.fields.contains_key("upstream_cluster")),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}
