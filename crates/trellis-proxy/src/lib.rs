//! The Trellis proxy: an engine for Envoy's xDS. It joins a control plane over ADS
//! ([`xds`]), converts Listener / RouteConfiguration / Cluster / ClusterLoadAssignment into
//! its own immutable configuration at the edge ([`convert`] → [`config`]), swaps it in
//! atomically, and carries connections through it ([`listeners`] → [`sniff`] → [`chains`]
//! → [`http`] or [`tcp`], with [`routing`], [`lb`] and [`upstream`]). It depends on no Istio type.
//!
//! Threads and state: one tokio runtime; the config is an `ArcSwap<Snapshot>` read without
//! locks on every request; the xDS task is its only writer. Counters live in [`stats`],
//! local failures and their response flags in [`flags`], the admin interface in [`admin`].

pub mod admin;
pub mod authz;
pub mod chains;
pub mod config;
pub mod convert;
pub mod flags;
pub mod hash;
pub mod http;
pub mod jwt;
pub mod lb;
pub mod listeners;
pub mod outlier;
pub mod rbac;
pub mod routing;
pub mod sniff;
pub mod stats;
pub mod tcp;
pub mod upstream;
pub mod xds;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

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
    /// One line per request on stdout.
    pub access_log: bool,
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
    pub access_log: bool,
    pub shutdown: watch::Sender<bool>,
    ready: AtomicBool,
    records: Mutex<BTreeMap<XdsType, TypeRecord>>,
}

impl Proxy {
    pub fn new(access_log: bool) -> Arc<Proxy> {
        Arc::new(Proxy {
            config: ArcSwap::from_pointee(config::Snapshot::default()),
            stats: stats::Stats::default(),
            listeners: listeners::Listeners::default(),
            access_log,
            shutdown: watch::channel(false).0,
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

/// Runs the proxy until `/quitquitquit` (or the future is dropped).
pub async fn run(options: Options) -> std::io::Result<()> {
    let proxy = Proxy::new(options.access_log);
    let admin = tokio::net::TcpListener::bind(options.admin).await?;
    tokio::spawn(admin::serve(proxy.clone(), admin));
    tokio::spawn(xds::run(proxy.clone(), options.xds_address, options.node));
    let mut shutdown = proxy.shutdown.subscribe();
    let _ = shutdown.wait_for(|stop| *stop).await;
    Ok(())
}
