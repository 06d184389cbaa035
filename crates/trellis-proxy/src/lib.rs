//! The Trellis proxy: an engine for Envoy's xDS. It joins a control plane over ADS
//! ([`xds`]), converts Listener / RouteConfiguration / Cluster / ClusterLoadAssignment into
//! its own immutable configuration at the edge ([`convert`] → [`config`]), swaps it in
//! atomically, and carries connections through it ([`listeners`] → [`sniff`] → [`chains`]
//! → [`http`] or [`tcp`], with [`routing`], [`lb`] and [`upstream`]). It depends on no Istio type.
//!
//! Threads and state: one tokio runtime; the config is an `ArcSwap<Snapshot>` read without
//! locks on every request; the xDS task is its only writer. Counters live in [`stats`],
//! local failures and their response flags in [`flags`], the admin interface in [`admin`],
//! Istio's standard metrics, metadata exchange and access logs in [`telemetry`].
//!
//! Capture: `virtualOutbound` (15001) and `virtualInbound` (15006) are bound like any
//! listener; each accepted connection's original destination ([`original_dst`]) becomes its
//! local address, and `virtualOutbound` hands it to the `bind_to_port: false` listener of
//! that destination ([`chains::handoff`]). The proxy itself needs no privilege for capture:
//! iptables skips its own traffic by owner (`-m owner --uid-owner 1337 -j RETURN`, Istio's
//! default), so it must run as that user. Lifecycle: readiness in [`status`], draining and
//! exit in [`drain`].

pub mod admin;
pub mod authz;
pub mod chains;
pub mod config;
pub mod convert;
pub mod cors;
pub mod drain;
pub mod flags;
pub mod hash;
pub mod http;
pub mod jwt;
pub mod lb;
pub mod limits;
pub mod listeners;
pub mod original_dst;
pub mod outlier;
pub mod rbac;
pub mod routing;
pub mod sniff;
pub mod stats;
pub mod status;
pub mod tcp;
pub mod telemetry;
pub mod tls;
pub mod upgrade;
pub mod upstream;
pub mod xds;
pub mod xfcc;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::json;
use tokio::sync::watch;

pub use xds::NodeIdentity;
use xds::state::XdsType;

/// How to run a proxy.
#[derive(Debug, Clone)]
pub struct Options {
    pub node: NodeIdentity,
    /// The control plane, `host:port`.
    pub xds_address: String,
    pub admin: SocketAddr,
    /// Istio's standard metrics on `/stats/prometheus` (Istio's 15090).
    pub stats: Option<SocketAddr>,
    /// The proxy's and the application's metrics merged (Istio's 15020).
    pub merged_metrics: Option<SocketAddr>,
    /// Where the application's own metrics are scraped for the merged endpoint.
    pub app_metrics_url: Option<hyper::Uri>,
    /// The log level control `/logging` drives; absent, `/logging` answers 501.
    pub logging: Option<Arc<dyn telemetry::logging::LogLevel>>,
    /// The status port's address (`/healthz/ready`); `None`: not served.
    pub status: Option<SocketAddr>,
    /// How long draining may last before the process exits anyway.
    pub drain_duration: Duration,
    /// The workload identity, kept fresh by the binary; `None`: no mTLS. With one, the
    /// proxy joins the control plane only once the first identity is there (readiness
    /// stays 503 until then) and every renewal reaches the TLS contexts.
    pub identity: Option<watch::Receiver<Option<Arc<tls::secrets::Identity>>>>,
    /// Answer the workload's DNS here (Istio's `127.0.0.1:15053`) from the control plane's
    /// name table; `None`: no DNS proxy.
    pub dns: Option<SocketAddr>,
}

/// What the xDS client last did per type, for `/config_dump`.
#[derive(Debug, Clone, Default)]
struct TypeRecord {
    version_seen: String,
    version_accepted: String,
    last_rejection: Option<String>,
}

/// The proxy's shared state.
#[derive(Debug)]
pub struct Proxy {
    pub config: ArcSwap<config::Snapshot>,
    pub stats: stats::Stats,
    pub listeners: listeners::Listeners,
    pub telemetry: telemetry::Telemetry,
    /// The workload identity TLS contexts use (SDS `default` and `ROOTCA`).
    pub secrets: tls::secrets::Secrets,
    /// Set by `/quitquitquit`: drain, then exit.
    pub shutdown: watch::Sender<bool>,
    pub drain: drain::Drain,
    /// The names the DNS proxy answers, when it runs; the xDS client subscribes to NDS
    /// for them.
    pub dns: Option<Arc<trellis_dns::Names>>,
    ready: AtomicBool,
    records: Mutex<BTreeMap<XdsType, TypeRecord>>,
}

impl Proxy {
    pub fn new(telemetry: telemetry::Telemetry) -> Arc<Proxy> {
        Self::with_dns(telemetry, None)
    }

    /// A proxy whose xDS client also keeps `dns` up to date.
    pub fn with_dns(
        telemetry: telemetry::Telemetry,
        dns: Option<Arc<trellis_dns::Names>>,
    ) -> Arc<Proxy> {
        Arc::new(Proxy {
            config: ArcSwap::from_pointee(config::Snapshot::default()),
            stats: stats::Stats::default(),
            listeners: listeners::Listeners::default(),
            telemetry,
            secrets: tls::secrets::Secrets::default(),
            shutdown: watch::channel(false).0,
            drain: drain::Drain::default(),
            dns,
            ready: AtomicBool::new(false),
            records: Mutex::default(),
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    fn record(&self, t: XdsType, version: &str, rejection: Option<&str>) {
        let counter = if rejection.is_some() {
            &self.stats.update_rejected
        } else {
            &self.stats.update_success
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let r = records.entry(t).or_default();
        r.version_seen = version.to_string();
        match rejection {
            None => r.version_accepted = version.to_string(),
            Some(d) => r.last_rejection = Some(d.to_string()),
        }
    }

    fn xds_status(&self) -> serde_json::Value {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records
            .iter()
            .map(|(t, r)| {
                (
                    t.short().to_string(),
                    json!({
                        "version_seen": r.version_seen,
                        "version_accepted": r.version_accepted,
                        "last_rejection": r.last_rejection,
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// Runs the proxy until SIGTERM, SIGINT or `/quitquitquit`, then drains (see [`drain`])
/// and returns.
pub async fn run(mut options: Options) -> std::io::Result<()> {
    let stop = drain::stop_signals()?;
    tokio::pin!(stop);
    let mut telemetry = telemetry::Telemetry::new(&options.node.id, &options.node.metadata);
    telemetry.logging = options.logging;
    let dns = match options.dns {
        Some(address) => Some(start_dns(address, &mut options.node).await?),
        None => None,
    };
    let proxy = Proxy::with_dns(telemetry, dns);
    let admin = tokio::net::TcpListener::bind(options.admin).await?;
    if let Some(address) = options.status {
        let status = tokio::net::TcpListener::bind(address).await?;
        tokio::spawn(status::serve(proxy.clone(), status));
    }
    tokio::spawn(admin::serve(proxy.clone(), admin));
    tokio::spawn(flush_access_logs(proxy.clone()));
    // The metrics ports are best effort: a proxy without them still carries traffic.
    if let Some(listener) = bind_metrics(options.stats).await {
        tokio::spawn(telemetry::server::serve_stats(proxy.clone(), listener));
    }
    if let Some(listener) = bind_metrics(options.merged_metrics).await {
        let merged = Arc::new(telemetry::server::Merged::new(options.app_metrics_url));
        tokio::spawn(telemetry::server::serve_merged(
            proxy.clone(),
            merged,
            listener,
        ));
    }
    let mut shutdown = proxy.shutdown.subscribe();
    if let Some(identity) = options.identity {
        tokio::select! {
            followed = follow_identity(proxy.clone(), identity) => followed?,
            why = &mut stop => {
                tracing::info!(why, "stopped before the workload identity arrived");
                return Ok(());
            }
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
    }
    tokio::spawn(xds::run(proxy.clone(), options.xds_address, options.node));
    let why = tokio::select! {
        why = &mut stop => why,
        _ = shutdown.wait_for(|stop| *stop) => "/quitquitquit",
    };
    proxy.drain.start();
    tracing::info!(why, open = proxy.drain.open(), drain_duration = ?options.drain_duration, "draining");
    let finished = proxy.drain.finish(options.drain_duration).await;
    proxy.telemetry.sinks.flush();
    tracing::info!(?finished, "drained, exiting");
    Ok(())
}

/// Envoy's `access_log_flush_interval`: buffered access log lines reach their file within it.
async fn flush_access_logs(proxy: Arc<Proxy>) {
    let mut every = tokio::time::interval(telemetry::access_log::FLUSH_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        proxy.telemetry.sinks.flush();
    }
}

/// Waits for the first identity, then keeps copying renewals into the proxy's secrets in
/// the background.
async fn follow_identity(
    proxy: Arc<Proxy>,
    mut identity: watch::Receiver<Option<Arc<tls::secrets::Identity>>>,
) -> std::io::Result<()> {
    let first = identity
        .wait_for(Option::is_some)
        .await
        .map(|i| i.clone())
        .map_err(|_| std::io::Error::other("no workload identity: its source ended"))?;
    if let Some(first) = first {
        proxy.secrets.set(first);
    }
    tokio::spawn(async move {
        while identity.changed().await.is_ok() {
            let next = identity.borrow_and_update().clone();
            if let Some(next) = next {
                tracing::info!("workload certificate renewed: new connections use it");
                proxy.secrets.set(next);
            }
        }
    });
    Ok(())
}

/// Binds the DNS proxy and marks the node as one that proxies DNS, so that the control
/// plane sends it a name table.
async fn start_dns(
    address: SocketAddr,
    node: &mut NodeIdentity,
) -> std::io::Result<Arc<trellis_dns::Names>> {
    let scope = trellis_dns::ProxyScope::from_node_id(&node.id).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("node id {:?}: no namespace for the DNS proxy", node.id),
        )
    })?;
    let names = trellis_dns::Names::new(scope);
    trellis_dns::spawn(address, names.clone()).await?;
    node.metadata.insert(
        trellis_dns::client::DNS_CAPTURE.to_string(),
        serde_json::Value::String("true".into()),
    );
    Ok(names)
}

async fn bind_metrics(address: Option<SocketAddr>) -> Option<tokio::net::TcpListener> {
    let address = address?;
    match tokio::net::TcpListener::bind(address).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(%address, error = %e, "metrics port not served");
            None
        }
    }
}
