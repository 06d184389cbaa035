use envoy_types::pb::envoy::config::accesslog::v3::AndFilter;
use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::file_access_log::AccessLogFormat;
use prost::Message;

use super::super::tests::{MESH, file_config, filter_logs, mesh_with, node, server};
use super::*;
use crate::proxy::ProxyKind;
use crate::translate::translate;

fn telemetry(name: &str, namespace: &str, spec: &str) -> String {
    format!(
        "---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: {name}, namespace: {namespace}}}
spec:
{spec}"
    )
}

const ROOT_ENVOY: &str = "  accessLogging:\n  - providers: [{name: envoy}]\n";

fn client() -> ProxyNode {
    node(ProxyKind::Sidecar, "127.0.0.50", &[("app", "client")])
}

/// The paths the loggers of each HCM/`tcp_proxy` write to, by listener direction.
fn paths(listeners: &[Listener], inbound: bool) -> Vec<Vec<String>> {
    let wanted: Vec<String> = listeners
        .iter()
        .filter(|l| (l.traffic_direction == 1) == inbound)
        .map(|l| l.name.clone())
        .collect();
    filter_logs(listeners)
        .into_iter()
        .filter(|(l, _, _)| wanted.contains(l))
        .map(|(_, _, logs)| logs.iter().map(|l| file_config(l).path).collect())
        .collect()
}

fn all_write(listeners: &[Listener], inbound: bool, expected: &[&str]) -> bool {
    let p = paths(listeners, inbound);
    !p.is_empty() && p.iter().all(|v| v == expected)
}

#[test]
fn the_root_namespace_turns_the_builtin_provider_on_for_everyone() {
    let objects = format!("{MESH}{}", telemetry("mesh", "istio-system", ROOT_ENVOY));
    let mesh = mesh_with("{}", &objects);
    for proxy in [server(), client()] {
        let out = translate(&mesh, &proxy).listeners;
        assert!(all_write(&out, false, &["/dev/stdout"]), "{}", proxy.id);
        assert!(out.iter().all(|l| l.access_log.len() == 1));
    }
    let out = translate(&mesh, &server()).listeners;
    assert!(all_write(&out, true, &["/dev/stdout"]));
}

#[test]
fn a_workload_telemetry_disables_logging_for_its_workload_only() {
    let objects = format!(
        "{MESH}{}{}",
        telemetry("mesh", "istio-system", ROOT_ENVOY),
        telemetry(
            "quiet",
            "default",
            "  selector: {matchLabels: {app: web}}\n  accessLogging:\n  - disabled: true\n"
        )
    );
    // Also with meshConfig's file set: a disabled provider does not fall back to it.
    let mesh = mesh_with(r#"{"accessLogFile": "/tmp/mesh.log"}"#, &objects);
    let quiet = translate(&mesh, &server()).listeners;
    assert!(filter_logs(&quiet).iter().all(|(_, _, l)| l.is_empty()));
    assert!(quiet.iter().all(|l| l.access_log.is_empty()));
    let loud = translate(&mesh, &client()).listeners;
    assert!(all_write(&loud, false, &["/dev/stdout"]));
}

#[test]
fn match_mode_keeps_a_provider_to_one_side() {
    let objects = format!(
        "{MESH}{}",
        telemetry(
            "server-only",
            "default",
            "  accessLogging:\n  - providers: [{name: envoy}]\n    match: {mode: SERVER}\n"
        )
    );
    let out = translate(&mesh_with("{}", &objects), &server()).listeners;
    assert!(all_write(&out, true, &["/dev/stdout"]));
    assert!(paths(&out, false).iter().all(Vec::is_empty));
}

#[test]
fn file_providers_bring_their_format_and_a_cel_filter() {
    let config = r#"{"extensionProviders": [
        {"name": "json", "envoyFileAccessLog": {"path": "/tmp/json.log",
            "logFormat": {"labels": {"code": "%RESPONSE_CODE%"}}}},
        {"name": "text", "envoyFileAccessLog": {"path": "/tmp/text.log",
            "logFormat": {"text": "%PROTOCOL%"}}}]}"#;
    let spec = "  accessLogging:\n  - providers: [{name: text}, {name: json}]\n    filter: {expression: 'response.code >= 400'}\n";
    let objects = format!("{MESH}{}", telemetry("mesh", "istio-system", spec));
    let out = translate(&mesh_with(config, &objects), &server()).listeners;
    // Sorted by provider name: json, then text.
    assert!(all_write(&out, true, &["/tmp/json.log", "/tmp/text.log"]));
    let (_, _, logs) = &filter_logs(&out)[0];
    match file_config(&logs[0]).access_log_format {
        Some(AccessLogFormat::LogFormat(f)) => match f.format {
            Some(Format::JsonFormat(s)) => assert_eq!(s.fields.len(), 1),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    let cel = |f: &AccessLogFilter| match &f.filter_specifier {
        Some(FilterSpecifier::ExtensionFilter(e)) => {
            assert_eq!(e.name, CEL_FILTER);
            let Some(FilterConfig::TypedConfig(any)) = &e.config_type else {
                panic!("no config");
            };
            ExpressionFilter::decode(any.value.as_slice())
                .unwrap()
                .expression
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        cel(logs[1].filter.as_ref().unwrap()),
        "response.code >= 400"
    );
    // The listener's copy: NR and the CEL filter.
    let listener_filter = out[0].access_log[0].filter.clone().unwrap();
    let Some(FilterSpecifier::AndFilter(AndFilter { filters })) = listener_filter.filter_specifier
    else {
        panic!("not an AND filter");
    };
    assert_eq!(filters.len(), 2);
    assert_eq!(cel(&filters[1]), "response.code >= 400");
}

#[test]
fn default_providers_apply_without_telemetry_and_unknown_names_fall_back() {
    let mesh = mesh_with(
        r#"{"defaultProviders": {"accessLogging": ["envoy"]}}"#,
        MESH,
    );
    let out = translate(&mesh, &server()).listeners;
    assert!(all_write(&out, true, &["/dev/stdout"]));

    // A Telemetry naming no provider that exists: meshConfig's file applies.
    let objects = format!(
        "{MESH}{}",
        telemetry(
            "mesh",
            "istio-system",
            "  accessLogging:\n  - providers: [{name: nowhere}]\n"
        )
    );
    let mesh = mesh_with(r#"{"accessLogFile": "/tmp/mesh.log"}"#, &objects);
    let out = translate(&mesh, &server()).listeners;
    assert!(all_write(&out, true, &["/tmp/mesh.log"]));
}

#[test]
fn merge_follows_istios_scoping() {
    let entry = |providers: &[&str], mode: Option<WorkloadMode>, disabled: bool| AccessLogging {
        providers: providers
            .iter()
            .map(|n| trellis_api::istio::telemetry::ProviderRef {
                name: n.to_string(),
            })
            .collect(),
        r#match: mode.map(|mode| trellis_api::istio::telemetry::AccessLoggingLogSelector { mode }),
        disabled: disabled.then_some(true),
        filter: None,
    };
    let root = [entry(&["a", "b"], None, false)];
    // The namespace names only `a`: `b` goes out of scope.
    let ns = [entry(&["a"], None, false)];
    let merged = merge(&[&root, &ns], &[], Mode::Client);
    assert_eq!(merged.keys().collect::<Vec<_>>(), ["a"]);
    // An entry without providers inherits the previous one's and can disable them.
    let off = [entry(&[], None, true)];
    let merged = merge(&[&root, &off], &[], Mode::Server);
    assert!(merged.values().all(|s| s.disabled));
    assert_eq!(merged.len(), 2);
    // A CLIENT-only level leaves the server side with the root's providers.
    let client_only = [entry(&["c"], Some(WorkloadMode::Client), false)];
    let server_side = merge(&[&root, &client_only], &[], Mode::Server);
    assert_eq!(server_side.keys().collect::<Vec<_>>(), ["a", "b"]);
    let client_side = merge(&[&root, &client_only], &[], Mode::Client);
    assert_eq!(client_side.keys().collect::<Vec<_>>(), ["c"]);
}
