//! The downstream connection's part of an access log [`Context`] (addresses, connection
//! id, what TLS proved), shared by HTTP requests, TCP connections and the listener's own
//! log of connections no filter chain takes.

use std::time::SystemTime;

use super::format::Context;
use crate::Proxy;
use crate::chains::Connection;
use crate::config::Listener;
use crate::flags::{Flag, Flags};
use crate::http::Downstream;

/// The fields every line of this connection shares; the caller fills in the rest.
pub fn downstream(d: &Downstream) -> Context<'_> {
    let tls = d.tls.as_deref();
    let cert = tls.and_then(|t| t.client_cert.as_ref());
    Context {
        downstream_local: Some(d.local),
        downstream_remote: Some(d.remote),
        connection_id: Some(d.id),
        server_name: d.server_name().unwrap_or_default(),
        downstream_peer_uri_san: cert
            .and_then(|c| c.sans.uris.first())
            .map_or("", String::as_str),
        downstream_local_uri_san: cert
            .and_then(|c| c.local_uris.first())
            .map_or("", String::as_str),
        downstream_peer_subject: cert.map_or("", |c| c.subject.as_str()),
        downstream_tls_version: tls.and_then(|t| t.version).unwrap_or_default(),
        ..Context::default()
    }
}

/// Envoy's listener `access_log`: a connection no filter chain took, flagged `NR`.
pub fn no_chain(proxy: &Proxy, listener: &Listener, d: &Downstream, conn: &Connection) {
    if listener.access_logs.is_empty() {
        return;
    }
    let mut flags = Flags::default();
    flags.insert(Flag::NoRoute);
    let ctx = Context {
        start: Some(SystemTime::now()),
        flags,
        server_name: conn.server_name.as_deref().unwrap_or_default(),
        ..downstream(d)
    };
    proxy.telemetry.log(&listener.access_logs, &ctx);
}
