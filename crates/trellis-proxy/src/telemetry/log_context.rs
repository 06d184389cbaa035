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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::access_log::AccessLog;
    use std::sync::Arc;

    /// A connection no chain takes is written to the listener's log with `NR` and its SNI.
    #[test]
    fn unmatched_connections_reach_the_listener_log() {
        let dir = std::env::temp_dir().join(format!("trellis-nr-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("listener.log");
        let format =
            "%RESPONSE_FLAGS% %REQUESTED_SERVER_NAME% %DOWNSTREAM_LOCAL_ADDRESS% %CONNECTION_ID%\n";
        let listener = Listener {
            name: "l".into(),
            address: "127.0.0.1:15001".parse().unwrap(),
            bind: true,
            capture: true,
            handoff: true,
            reuse_port: true,
            inbound: false,
            inspect_tls: true,
            inspect_http: false,
            inspect_timeout: None,
            continue_on_timeout: false,
            chains: Vec::new(),
            default_chain: None,
            access_logs: vec![Arc::new(AccessLog::text_file(&path, format, None))],
        };
        let proxy = Proxy::new(Default::default());
        let d = Downstream {
            local: "10.0.0.1:443".parse().unwrap(),
            remote: "10.0.0.2:50000".parse().unwrap(),
            inbound: false,
            tls: None,
            id: 42,
        };
        let mut conn = Connection::raw(d.local);
        conn.server_name = Some("example.com".into());
        no_chain(&proxy, &listener, &d, &conn);
        proxy.telemetry.sinks.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(text, "NR example.com 10.0.0.1:443 42\n");
    }
}
