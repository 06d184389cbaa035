//! Upstream state that outlives config updates: endpoints with their in-flight counts (for
//! least request), and per cluster the balancer position, the circuit-breaker counters and
//! the connection pool (hyper-util's pooled client: HTTP/1.1 keep-alive reuse, or HTTP/2
//! multiplexing when the cluster says so). The pool is shared by all worker threads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use http_body_util::combinators::BoxBody;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::Limits;
use crate::convert::cluster::PoolSettings;
use crate::tls::client::{ClientContext, Connector};
use crate::tls::secrets::Secrets;

pub type Body = BoxBody<Bytes, hyper::Error>;

/// One endpoint.
#[derive(Debug)]
pub struct Host {
    pub address: SocketAddr,
    pub weight: u32,
    /// Requests in flight to it.
    pub active: AtomicU64,
    /// The workload behind it, from Istio's `istio.workload` endpoint metadata: a mesh
    /// endpoint (metadata exchange headers go to it) and telemetry's destination.
    pub workload: Option<std::sync::Arc<crate::telemetry::peer::Peer>>,
    /// Its `envoy.transport_socket_match` metadata (`tlsMode: istio`...), which decides
    /// whether connections to it use the cluster's TLS context.
    pub socket_match: std::collections::BTreeMap<String, String>,
}

impl Host {
    pub fn new(address: SocketAddr, weight: u32) -> Host {
        Host {
            address,
            weight,
            active: AtomicU64::new(0),
            workload: None,
            socket_match: Default::default(),
        }
    }
}

impl PartialEq for Host {
    fn eq(&self, other: &Self) -> bool {
        self.address == other.address
            && self.weight == other.weight
            && self.workload == other.workload
            && self.socket_match == other.socket_match
    }
}

/// A cluster's live state.
#[derive(Debug)]
pub struct ClusterRuntime {
    pub settings: PoolSettings,
    pub client: Client<Connector, Body>,
    /// The TLS context of the cluster, for TCP proxy connections (HTTP goes through
    /// `client`, whose connector holds it with the ALPN of HTTP requests:
    /// [`crate::tls::config::UpstreamTls::for_http`]).
    pub tls: Option<std::sync::Arc<ClientContext>>,
    pub secrets: Secrets,
    pub next: AtomicUsize,
    pub active_requests: AtomicU64,
    pub active_retries: AtomicU64,
    pub stats: ClusterStats,
    /// Outlier detection's per-host state (by address, so it survives EDS updates).
    pub outlier: crate::outlier::Detector,
    /// The consistent-hash table of the last host set seen, rebuilt when it changes.
    hash_table: std::sync::Mutex<Option<HashTable>>,
}

type HashTable = (
    crate::config::LbPolicy,
    Vec<(SocketAddr, u32)>,
    std::sync::Arc<crate::hash::Table>,
);

/// A cluster's counters, by Envoy's names (`cluster.<name>.<counter>` in `/stats`).
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub upstream_rq_total: AtomicU64,
    pub upstream_rq_retry: AtomicU64,
    pub upstream_rq_pending_overflow: AtomicU64,
    pub upstream_rq_timeout: AtomicU64,
    pub upstream_cx_total: AtomicU64,
    pub upstream_cx_connect_fail: AtomicU64,
    pub upstream_cx_none_healthy: AtomicU64,
    pub upstream_cx_overflow: AtomicU64,
    pub upstream_cx_rx_bytes_total: AtomicU64,
    pub upstream_cx_tx_bytes_total: AtomicU64,
}

impl ClusterStats {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter with its Envoy name.
    fn counters(&self) -> [(&'static str, &AtomicU64); 10] {
        [
            ("upstream_rq_total", &self.upstream_rq_total),
            ("upstream_rq_retry", &self.upstream_rq_retry),
            (
                "upstream_rq_pending_overflow",
                &self.upstream_rq_pending_overflow,
            ),
            ("upstream_rq_timeout", &self.upstream_rq_timeout),
            ("upstream_cx_total", &self.upstream_cx_total),
            ("upstream_cx_connect_fail", &self.upstream_cx_connect_fail),
            ("upstream_cx_none_healthy", &self.upstream_cx_none_healthy),
            ("upstream_cx_overflow", &self.upstream_cx_overflow),
            (
                "upstream_cx_rx_bytes_total",
                &self.upstream_cx_rx_bytes_total,
            ),
            (
                "upstream_cx_tx_bytes_total",
                &self.upstream_cx_tx_bytes_total,
            ),
        ]
    }

    pub fn render(&self, cluster: &str, out: &mut String) {
        for (n, v) in self.counters() {
            out.push_str(&format!(
                "cluster.{cluster}.{n}: {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
    }

    /// The counters of all clusters in Prometheus form, as an Istio sidecar's Envoy
    /// exposes them: `envoy_cluster_upstream_rq_retry{cluster_name="..."} 0`.
    pub fn render_prometheus<'a>(
        clusters: impl Iterator<Item = (&'a str, &'a ClusterStats)> + Clone,
        out: &mut String,
    ) {
        for i in 0..ClusterStats::default().counters().len() {
            let mut first = true;
            for (cluster, stats) in clusters.clone() {
                let Some((name, value)) = stats.counters().get(i).copied() else {
                    continue;
                };
                if first {
                    out.push_str(&format!("# TYPE envoy_cluster_{name} counter\n"));
                    first = false;
                }
                out.push_str(&format!(
                    "envoy_cluster_{name}{{cluster_name=\"{}\"}} {}\n",
                    cluster.replace('\\', "\\\\").replace('"', "\\\""),
                    value.load(Ordering::Relaxed)
                ));
            }
        }
    }
}

impl ClusterRuntime {
    pub fn new(settings: PoolSettings, secrets: &Secrets) -> ClusterRuntime {
        let tls = settings
            .tls
            .clone()
            .map(|spec| std::sync::Arc::new(ClientContext::new(spec)));
        let http_tls = settings
            .tls
            .as_ref()
            .map(|spec| std::sync::Arc::new(ClientContext::new(spec.for_http(settings.http2))));
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(settings.keepalive);
        connector.set_local_address(settings.source);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .http2_only(settings.http2)
            .pool_idle_timeout(
                settings
                    .idle_timeout
                    .unwrap_or(std::time::Duration::from_secs(3600)),
            )
            .set_host(false);
        if settings.one_request_per_connection {
            builder.pool_max_idle_per_host(0);
        }
        ClusterRuntime {
            settings,
            client: builder.build(Connector::new(connector, http_tls, secrets.clone())),
            tls,
            secrets: secrets.clone(),
            next: AtomicUsize::new(0),
            active_requests: AtomicU64::new(0),
            active_retries: AtomicU64::new(0),
            stats: ClusterStats::default(),
            outlier: crate::outlier::Detector::default(),
            hash_table: std::sync::Mutex::new(None),
        }
    }

    /// The host for a consistent-hash key, avoiding `exclude` unless every host is in it.
    pub fn choose_hashed(
        &self,
        policy: crate::config::LbPolicy,
        hosts: &[std::sync::Arc<Host>],
        key: u64,
        exclude: &[SocketAddr],
    ) -> Option<std::sync::Arc<Host>> {
        let set: Vec<(SocketAddr, u32)> = hosts.iter().map(|h| (h.address, h.weight)).collect();
        let table = {
            let mut cached = self.hash_table.lock().unwrap_or_else(|e| e.into_inner());
            match &*cached {
                Some((p, s, t)) if *p == policy && *s == set => t.clone(),
                _ => {
                    let t = std::sync::Arc::new(match policy {
                        crate::config::LbPolicy::Maglev(size) => crate::hash::maglev(hosts, size),
                        crate::config::LbPolicy::RingHash(min, max) => {
                            crate::hash::ring(hosts, min, max)
                        }
                        _ => return None,
                    });
                    *cached = Some((policy, set, t.clone()));
                    t
                }
            }
        };
        let i = table
            .lookup(key, |i| !exclude.contains(&hosts[i].address))
            .or_else(|| table.lookup(key, |_| true))?;
        Some(hosts[i].clone())
    }

    /// Takes a request slot unless a circuit breaker is open. Over HTTP/1.1 a request in
    /// flight holds a connection, so requests beyond `max_connections` are the pending
    /// ones: the limit is connections + pending (and `max_requests`).
    pub fn admit(&self, limits: &Limits) -> Option<Slot<'_>> {
        let active = self.active_requests.fetch_add(1, Ordering::AcqRel);
        let cap = if self.settings.http2 {
            limits.max_requests
        } else {
            limits.max_requests.min(
                limits
                    .max_connections
                    .saturating_add(limits.max_pending_requests),
            )
        };
        let slot = Slot(&self.active_requests);
        (active < cap).then_some(slot)
    }

    /// Takes a connection slot for a TCP proxy connection unless `max_connections` are open.
    pub fn admit_connection(&self, limits: &Limits) -> Option<Slot<'_>> {
        let active = self.active_requests.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(&self.active_requests);
        (active < limits.max_connections).then_some(slot)
    }

    /// Takes a retry slot unless `max_retries` retries are already in flight.
    pub fn admit_retry(&self, limits: &Limits) -> Option<Slot<'_>> {
        let active = self.active_retries.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(&self.active_retries);
        (active < limits.max_retries).then_some(slot)
    }
}

/// A counted slot, released on drop.
#[derive(Debug)]
pub struct Slot<'a>(&'a AtomicU64);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts a request in flight to a host, for least request.
#[derive(Debug)]
pub struct HostGuard(pub std::sync::Arc<Host>);

impl HostGuard {
    pub fn new(host: std::sync::Arc<Host>) -> HostGuard {
        host.active.fetch_add(1, Ordering::AcqRel);
        HostGuard(host)
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}
