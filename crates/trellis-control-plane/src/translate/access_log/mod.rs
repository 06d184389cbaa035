//! Access logs, as istiod configures them: the same loggers on every HTTP connection
//! manager and every `tcp_proxy` of a listener, and on the listener itself behind a
//! response-flag filter `NR` (Envoy writes a listener's log when no filter chain matched,
//! which no filter would log).
//!
//! Which loggers a listener gets depends on its side: a sidecar's inbound listeners log as
//! the SERVER, its outbound ones and every gateway listener as the CLIENT (Istio's
//! `workloadMode`). Without Telemetry access logging ([`telemetry`]), meshConfig
//! `accessLogFile` (empty: off) with `accessLogEncoding` and `accessLogFormat` gives one
//! file logger on both sides; an invalid format (reported by validation) falls back to
//! Istio's default, as istiod does for a JSON format that does not parse, because Envoy
//! would reject the whole listener.
//!
//! Loggers are appended to the already packed HCM and `tcp_proxy` configurations as extra
//! elements of their repeated `access_log` field (protobuf concatenates repeated fields),
//! so the rest of their bytes stays as the listener builders made it.

pub mod file;
pub mod telemetry;

use envoy_types::pb::envoy::config::accesslog::v3::access_log_filter::FilterSpecifier;
use envoy_types::pb::envoy::config::accesslog::v3::{
    AccessLog, AccessLogFilter, ResponseFlagFilter,
};
use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener};
use trellis_api::istio::mesh::{MeshConfig, MeshConfigAccessLogEncoding};
use trellis_config::validate::access_log::{check_format_string, parse_json_format};

use self::file::{LogFormat, file_access_log};
use super::listeners::http::HCM;
use super::listeners::tcp::TCP_PROXY;
use crate::mesh::MeshSnapshot;
use crate::proxy::{ProxyKind, ProxyNode};

/// `HttpConnectionManager.access_log`'s field number.
const HCM_ACCESS_LOG: u32 = 13;
/// `TcpProxy.access_log`'s field number.
const TCP_PROXY_ACCESS_LOG: u32 = 5;
/// The response flag of "no filter chain matched", the one a listener log is for.
const NO_ROUTE: &str = "NR";

/// The side of the traffic a listener serves, for Telemetry's `match.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Client,
    Server,
}

/// Adds the access logs that apply to `proxy` to its listeners and their HCMs and
/// `tcp_proxy` filters.
pub fn apply(mesh: &MeshSnapshot, proxy: &ProxyNode, listeners: &mut [Listener]) {
    let client = loggers(mesh, proxy, Mode::Client);
    let server = match proxy.kind {
        ProxyKind::Sidecar => loggers(mesh, proxy, Mode::Server),
        ProxyKind::Router => Vec::new(),
    };
    for listener in listeners {
        let inbound = listener.traffic_direction == TrafficDirection::Inbound as i32;
        let logs = if inbound && proxy.kind == ProxyKind::Sidecar {
            &server
        } else {
            &client
        };
        if logs.is_empty() {
            continue;
        }
        if !mesh.mesh.disable_envoy_listener_log {
            listener.access_log = logs.iter().map(listener_log).collect();
        }
        let chains = listener
            .filter_chains
            .iter_mut()
            .chain(listener.default_filter_chain.as_mut());
        for filter in chains.flat_map(|c| c.filters.iter_mut()) {
            append(filter, logs);
        }
    }
}

/// The loggers of one side of `proxy`: Telemetry's, or else meshConfig's.
fn loggers(mesh: &MeshSnapshot, proxy: &ProxyNode, mode: Mode) -> Vec<AccessLog> {
    telemetry::logging(mesh, proxy, mode).unwrap_or_else(|| mesh_loggers(&mesh.mesh))
}

/// meshConfig's own logger: a file logger when `accessLogFile` is set.
pub fn mesh_loggers(mesh: &MeshConfig) -> Vec<AccessLog> {
    if mesh.access_log_file.is_empty() {
        return Vec::new();
    }
    vec![file_access_log(
        &mesh.access_log_file,
        &mesh_format(mesh),
        false,
    )]
}

/// The format meshConfig asks for (Istio's default where it is empty or invalid).
pub fn mesh_format(mesh: &MeshConfig) -> LogFormat {
    let format = &mesh.access_log_format;
    match mesh.access_log_encoding {
        MeshConfigAccessLogEncoding::Text => LogFormat::Text(
            check_format_string(format)
                .map(|()| format.clone())
                .unwrap_or_default(),
        ),
        MeshConfigAccessLogEncoding::Json if format.is_empty() => {
            LogFormat::Json(Default::default())
        }
        MeshConfigAccessLogEncoding::Json => {
            LogFormat::Json(parse_json_format(format).unwrap_or_default())
        }
    }
}

/// A listener's copy of `log`: written only for connections no filter chain took, and
/// only when the logger's own filter (if any) also agrees.
fn listener_log(log: &AccessLog) -> AccessLog {
    let no_route = AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::ResponseFlagFilter(ResponseFlagFilter {
            flags: vec![NO_ROUTE.to_string()],
        })),
    };
    let filter = match &log.filter {
        None => no_route,
        Some(own) => AccessLogFilter {
            filter_specifier: Some(FilterSpecifier::AndFilter(
                envoy_types::pb::envoy::config::accesslog::v3::AndFilter {
                    filters: vec![no_route, own.clone()],
                },
            )),
        },
    };
    AccessLog {
        filter: Some(filter),
        ..log.clone()
    }
}

/// Appends `logs` to a packed HCM or `tcp_proxy` filter; other filters are left alone.
fn append(filter: &mut Filter, logs: &[AccessLog]) {
    let tag = match filter.name.as_str() {
        HCM => HCM_ACCESS_LOG,
        TCP_PROXY => TCP_PROXY_ACCESS_LOG,
        _ => return,
    };
    let Some(ConfigType::TypedConfig(any)) = &mut filter.config_type else {
        return;
    };
    for log in logs {
        prost::encoding::message::encode(tag, log, &mut any.value);
    }
}

#[cfg(test)]
mod tests;
