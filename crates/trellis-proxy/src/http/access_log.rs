//! A request's access log lines: the [`Context`] of the request as the connection manager
//! saw it, rendered for each of the connection manager's loggers.

use std::sync::Arc;

use super::{Answered, Downstream, Outcome, Received, protocol_name};
use crate::Proxy;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::format::{Context, Request as LogRequest};

/// The request's access log lines.
pub(super) fn log(
    proxy: &Proxy,
    logs: &[Arc<AccessLog>],
    r: &Received,
    o: &Outcome,
    a: &Answered,
    sent: u64,
    downstream: &Downstream,
) {
    let Some(headers) = &r.headers else {
        return;
    };
    let scheme = if downstream.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let ctx = Context {
        start: Some(r.start_wall),
        duration: r.start.elapsed(),
        response_duration: Some(a.after),
        request: Some(LogRequest {
            method: r.method.as_str(),
            path: &r.path,
            authority: &r.authority,
            scheme,
            headers,
        }),
        response_headers: a.headers.as_ref(),
        protocol: Some(protocol_name(r.version)),
        response_code: a.status,
        flags: o.flags,
        details: &o.details,
        transport_failure: &o.transport_failure,
        bytes_received: o.request_body.bytes(),
        bytes_sent: sent,
        upstream_host: o.upstream,
        upstream_cluster: &o.cluster,
        upstream_peer_uri_san: o.upstream_principal.as_deref().unwrap_or_default(),
        route_name: &o.route,
        ..crate::telemetry::log_context::downstream(downstream)
    };
    proxy.telemetry.log(logs, &ctx);
}
