//! Istio's standard telemetry, as Istio's sidecars report it: the standard metrics with
//! their full label set ([`metrics`], [`labels`]), who the peer is ([`peer`]: the proxy's
//! own node metadata, Istio's `istio.workload` endpoint metadata, and HTTP metadata
//! exchange in [`exchange`]), the access logs the xDS configures ([`access_log`], in
//! Envoy's format strings: [`format`]), and the Prometheus endpoints ([`server`]). Stock
//! Envoy has none of this: Istio adds it with its own filters (`istio.stats`,
//! `peer_metadata`); this module is their counterpart, the one place of the proxy that
//! reads Istio conventions.
//!
//! Peer principals and `connection_security_policy` come from mTLS: `peer_principal` and
//! `mutual_tls` on the reports, the verified peer certificate's identity ([`crate::tls`]);
//! `unknown` / `none` in plain text.

pub mod access_log;
pub mod body;
pub mod cel;
pub mod exchange;
pub mod format;
pub mod labels;
pub mod log_context;
pub mod logging;
pub mod metrics;
pub mod peer;
pub mod server;
pub mod sink;

use std::sync::Arc;

use labels::{Inputs, Protocol, Reporter, Security, Service};
use metrics::{HttpSeries, Key, Metrics, TcpSeries};
use peer::{Peer, UNKNOWN};

use crate::flags::Flags;

/// The proxy's telemetry state; one per proxy, passed around, never global.
#[derive(Debug)]
pub struct Telemetry {
    /// This proxy's workload.
    pub local: Arc<Peer>,
    /// This proxy's metadata-exchange headers.
    pub own: exchange::Own,
    pub peers: exchange::PeerCache,
    pub metrics: Metrics,
    /// The access logs' open files.
    pub sinks: sink::Sinks,
    /// The log filter `/logging` changes, when the binary lends one.
    pub logging: Option<Arc<dyn logging::LogLevel>>,
}

/// What one report is about: enough to find (or make) its series.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    pub reporter: Reporter,
    /// The other side's workload, when known.
    pub peer: Option<Arc<Peer>>,
    /// The other side's SPIFFE identity, once mTLS tells it (shared by the connection).
    pub peer_principal: Option<Arc<str>>,
    pub mutual_tls: bool,
    pub cluster: &'a str,
    pub authority: &'a str,
    pub protocol: Protocol,
    /// 0 for TCP.
    pub response_code: u16,
    pub grpc_status: Option<u32>,
    pub flags: Flags,
}

impl Telemetry {
    pub fn new(node_id: &str, metadata: &serde_json::Map<String, serde_json::Value>) -> Telemetry {
        Telemetry {
            local: Arc::new(Peer::from_node(metadata)),
            own: exchange::Own::new(node_id, metadata),
            peers: exchange::PeerCache::default(),
            metrics: Metrics::default(),
            sinks: sink::Sinks::default(),
            logging: None,
        }
    }

    /// The HTTP series of a request.
    pub fn http(&self, r: &Report<'_>) -> Arc<HttpSeries> {
        let scope = labels::host(r.cluster, r.authority);
        self.metrics.http.get(scope, &key(r), || HttpSeries {
            labels: self.labels(r, scope),
            ..Default::default()
        })
    }

    /// The TCP series of a connection.
    pub fn tcp(&self, r: &Report<'_>) -> Arc<TcpSeries> {
        let scope = labels::host(r.cluster, r.authority);
        self.metrics.tcp.get(scope, &key(r), || TcpSeries {
            labels: self.labels(r, scope),
            ..Default::default()
        })
    }

    /// Writes the access log lines `logs` ask for (none: nothing is done).
    pub fn log(&self, logs: &[Arc<access_log::AccessLog>], ctx: &format::Context<'_>) {
        if !logs.is_empty() {
            access_log::write(logs, ctx, &self.sinks);
        }
    }

    fn labels(&self, r: &Report<'_>, host: &str) -> String {
        let unknown = Peer::default();
        let other = r.peer.as_deref().unwrap_or(&unknown);
        let principal = r.peer_principal.as_deref().unwrap_or(UNKNOWN);
        let (source, destination) = match r.reporter {
            Reporter::Source => (&*self.local, other),
            Reporter::Destination => (other, &*self.local),
        };
        let grpc = r.grpc_status.map(|g| g.to_string());
        labels::render(&Inputs {
            reporter: r.reporter,
            source,
            // The proxy's own principal is its certificate's, unknown until mTLS.
            source_principal: if r.reporter == Reporter::Destination {
                principal
            } else {
                UNKNOWN
            },
            destination,
            destination_principal: if r.reporter == Reporter::Source {
                principal
            } else {
                UNKNOWN
            },
            service: &Service::from_host(host),
            protocol: r.protocol,
            response_code: (r.protocol != Protocol::Tcp).then_some(r.response_code),
            grpc_status: grpc.as_deref(),
            flags: &r.flags.render(),
            security: Security::reported(r.reporter, r.mutual_tls),
        })
    }
}

/// An unknown workload.
impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new("", &serde_json::Map::new())
    }
}

fn key(r: &Report<'_>) -> Key {
    Key {
        reporter: r.reporter,
        peer: r.peer.clone(),
        principal: r.peer_principal.clone(),
        protocol: r.protocol,
        response_code: r.response_code,
        grpc_status: r.grpc_status,
        flags: r.flags,
        security: Security::reported(r.reporter, r.mutual_tls),
    }
}
