//! The `trellis control-plane` process: the file store publishes configuration, connected
//! sidecars publish their registrations, a debouncer turns bursts of both into one new
//! [`MeshUpdate`], and the ADS and debug servers read the latest one.
//!
//! ```text
//! FileStore ──Update──► config watch ─┐
//!                                      ├─poke─► debounce ─► MeshSnapshot::new ─► mesh watch ─► ADS streams
//! ADS streams ──register──► workloads ┘                                                  └──► /debug
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::TcpListenerStream;
use trellis_api::istio::mesh::MeshConfig;
use trellis_config::store::{Change, FileStore, Problem, Snapshot, StoreError};

use crate::ca::metrics::CaMetrics;
use crate::ca::{self, Ca, CaOptions};
use crate::debug::{self, DebugState};
use crate::jwks::{self, JwksFetcher};
use crate::mesh::MeshSnapshot;
use crate::metrics::Metrics;
use crate::registry::Workload;
use crate::xds::debounce::Debounce;
use crate::xds::push::{self, PushScope};
use crate::xds::registration::{self, Registrations};
use crate::xds::status::SyncStatus;
use crate::xds::views::Views;
use crate::xds::{Ads, AdsContext, AdsService, MeshUpdate};

/// How long streams get to end on shutdown before the server stops waiting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How the control plane runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_dir: PathBuf,
    pub xds_address: SocketAddr,
    pub debug_address: SocketAddr,
    /// The namespace of objects that name none.
    pub namespace: String,
    pub mesh_config: Arc<MeshConfig>,
    pub debounce: Debounce,
    /// How long an auto-registered workload outlives its proxy's connection.
    pub registration_grace: Duration,
    /// Where the CA keeps its root and the bootstrap-token key.
    pub state_dir: PathBuf,
    /// A plugged-in CA in Istio's `cacerts` layout, instead of the self-signed root.
    pub cacerts: Option<PathBuf>,
    /// xDS + CA over TLS (Istio's 15012), with a serving certificate from the CA; off
    /// when absent.
    pub secure_xds_address: Option<SocketAddr>,
}

impl Options {
    /// Istio's defaults: xDS on 15010, debug on 15014, loopback only.
    pub fn new(config_dir: PathBuf) -> Self {
        Options {
            config_dir,
            xds_address: SocketAddr::from(([127, 0, 0, 1], 15010)),
            debug_address: SocketAddr::from(([127, 0, 0, 1], 15014)),
            namespace: "default".to_string(),
            mesh_config: Arc::new(MeshConfig::default()),
            debounce: Debounce::default(),
            registration_grace: registration::DEFAULT_GRACE,
            state_dir: ca::store::default_state_dir(),
            cacerts: None,
            secure_xds_address: None,
        }
    }
}

/// Why the control plane could not run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("certificate authority: {0}")]
    Ca(#[from] ca::store::StoreError),
    #[error("xDS server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("TLS for JWKS fetches: {0}")]
    JwksTls(#[from] rustls::Error),
}

/// The configuration in force and its problems, as the store last published them, with
/// the changes not yet turned into a mesh update. One lock, so that a snapshot is never
/// seen without its changes.
struct ConfigState {
    snapshot: Arc<Snapshot>,
    problems: Arc<Vec<Problem>>,
    changes: Vec<Change>,
}

/// Runs the control plane until `shutdown` completes.
pub async fn run(
    options: Options,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RuntimeError> {
    let xds_listener = bind(options.xds_address).await?;
    let debug_listener = bind(options.debug_address).await?;
    let secure_listener = match options.secure_xds_address {
        Some(address) => Some(bind(address).await?),
        None => None,
    };
    let ca = Ca::open(&CaOptions {
        state_dir: options.state_dir.clone(),
        cacerts: options.cacerts.clone(),
        trust_domain: ca::trust_domain(&options.mesh_config),
    })?;

    let (poke_tx, mut poke_rx) = mpsc::channel::<()>(1);
    let store = FileStore::open(vec![options.config_dir.clone()], &options.namespace);
    let config = Arc::new(Mutex::new(ConfigState {
        snapshot: store.snapshot(),
        problems: Arc::new(store.problems().to_vec()),
        changes: Vec::new(),
    }));
    let poke = poke_tx.clone();
    let published = config.clone();
    let _watch = store.watch(move |update| {
        let mut state = published.lock().unwrap_or_else(PoisonError::into_inner);
        state.snapshot = update.snapshot;
        state.problems = Arc::new(update.problems);
        state.changes.extend(update.changes);
        drop(state);
        // A full channel already holds a pending change.
        let _ = poke.try_send(());
    })?;

    let registrations = Registrations::new(options.registration_grace);
    let mut workloads_rx = registrations.subscribe();
    let poke = poke_tx.clone();
    let jwks = JwksFetcher::new(jwks::system_roots()?, move || {
        let _ = poke.try_send(());
    });
    let poke = poke_tx;
    tokio::spawn(async move {
        while workloads_rx.changed().await.is_ok() {
            let _ = poke.try_send(());
        }
    });

    let mut prometheus = Registry::default();
    let metrics = Metrics::new(&mut prometheus);
    let ca_service = ca.service(CaMetrics::new(&mut prometheus))?;
    let build = {
        let mesh_config = options.mesh_config.clone();
        let registrations = registrations.clone();
        move |previous: Option<&MeshUpdate>, generation: u64, changed_at: Instant| {
            let (snapshot, problems, changes) = {
                let mut state = config.lock().unwrap_or_else(PoisonError::into_inner);
                let changes = std::mem::take(&mut state.changes);
                (state.snapshot.clone(), state.problems.clone(), changes)
            };
            let workloads: Arc<Vec<Workload>> = registrations.current();
            let mesh = MeshSnapshot::new(snapshot, &workloads, mesh_config.clone())
                .with_jwks(jwks.cache());
            jwks.want(jwks::wanted(&mesh.config));
            let mesh = Arc::new(mesh);
            if previous.is_none_or(|p| p.mesh.config.revision != mesh.config.revision) {
                // Once per revision of the configuration, not per registration.
                for warning in debug::unsupported(&mesh) {
                    tracing::warn!(revision = mesh.config.revision, "{warning}");
                }
            }
            let scope = previous.map_or(PushScope::Full, |p| {
                push::classify(&p.mesh, &mesh, &changes)
            });
            Arc::new(MeshUpdate {
                mesh,
                generation,
                changed_at,
                problems,
                scope,
                views: Arc::new(Views::after(previous.map(|p| p.views.as_ref()))),
            })
        }
    };
    let (mesh_tx, mesh_rx) = watch::channel(build(None, 1, Instant::now()));
    metrics.mesh_updates.inc();
    let debounce = options.debounce;
    let update_metrics = metrics.clone();
    tokio::spawn(async move {
        let mut generation = 1;
        while let Some(first) = debounce.next_burst(&mut poke_rx).await {
            generation += 1;
            let previous = mesh_tx.borrow().clone();
            let update = build(Some(&previous), generation, first);
            tracing::info!(
                generation,
                revision = update.mesh.config.revision,
                services = update.mesh.registry.services.len(),
                scope = update.scope.label(),
                "mesh updated"
            );
            update_metrics.mesh_updates.inc();
            update_metrics.update_scope(update.scope.label());
            if mesh_tx.send(update).is_err() {
                return;
            }
        }
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let status = SyncStatus::default();
    let ads = Ads::new(AdsContext {
        mesh: mesh_rx.clone(),
        registrations,
        status: status.clone(),
        metrics,
        shutdown: stop_rx.clone(),
    });
    let debug_state = Arc::new(DebugState {
        mesh: mesh_rx,
        status,
        registry: prometheus,
    });
    let debug_task = tokio::spawn(debug::serve(debug_listener, debug_state, stop_rx.clone()));

    tracing::info!(xds = %options.xds_address, debug = %options.debug_address, config = %options.config_dir.display(), "control plane serving");
    let ads = AdsService::new(ads);
    let secure_task = match secure_listener {
        Some(listener) => {
            let tls = ca::tls::server_config(&ca)?;
            let mut stopped = stop_rx.clone();
            let server = tonic::transport::Server::builder()
                .tls_config(tls)?
                .http2_keepalive_interval(Some(Duration::from_secs(30)))
                .add_service(ads.clone())
                .add_service(ca_service.clone())
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                });
            Some(tokio::spawn(server))
        }
        None => None,
    };
    let mut stopped = stop_rx.clone();
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(ads)
        .add_service(ca_service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(xds_listener), async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        () = shutdown => {
            tracing::info!("shutting down");
            stop_tx.send_replace(true);
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.is_err() {
                tracing::warn!("streams did not end in time; stopping anyway");
            }
        }
    }
    stop_tx.send_replace(true);
    let _ = debug_task.await;
    if let Some(task) = secure_task {
        let _ = task.await;
    }
    Ok(())
}

async fn bind(address: SocketAddr) -> Result<TcpListener, RuntimeError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| RuntimeError::Bind { address, source })
}
