//! The ADS streams behind [`super::service::AdsService`]. Each stream runs in its own task
//! with a bounded outgoing channel: a proxy that reads slowly, sends garbage or never ACKs blocks only its
//! own task. A stream ends with an error status, never a panic, on bad input.
//!
//! A queued response refers to the shared encodings of its resources and is framed in
//! small chunks only as the proxy reads ([`super::wire`]), so a stream costs next to no
//! memory while it sends and none after. Thousands of proxies are still not sent to at
//! once: a connection sends only while it holds one of [`SENDERS`] permits, until the
//! proxy's stream has taken its last response (the transport takes a response only when
//! the proxy has read most of the one before), or for [`HOLD`] at most, so a stuck proxy
//! delays the others only briefly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{Duration, Instant, timeout_at};
use tonic::{Status, Streaming};

use super::push::PushScope;
use super::resources::{ProxyResources, XdsType};
use super::state::{Delta, Event, Outcome, Sotw, TypeStatus};
use super::status::SyncStatus;
use super::wire::Wire;
use super::{MeshUpdate, node, registration::Registrations};
use crate::metrics::Metrics;
use crate::proxy::ProxyNode;

/// Responses queued per stream before the stream's task waits for the proxy to read.
const OUTBOUND_QUEUE: usize = 1;

/// Connections sending at once.
pub const SENDERS: usize = 32;

/// The longest a connection holds its permit to send.
pub const HOLD: Duration = Duration::from_secs(2);

/// What every stream shares.
#[derive(Debug, Clone)]
pub struct AdsContext {
    pub mesh: watch::Receiver<Arc<MeshUpdate>>,
    pub registrations: Registrations,
    pub status: SyncStatus,
    pub metrics: Metrics,
    /// Becomes true when the server shuts down; streams then end.
    pub shutdown: watch::Receiver<bool>,
}

/// The ADS service.
#[derive(Debug)]
pub struct Ads {
    ctx: AdsContext,
    connections: AtomicU64,
    senders: Arc<Semaphore>,
}

impl Ads {
    pub fn new(ctx: AdsContext) -> Self {
        Ads {
            ctx,
            connections: AtomicU64::new(0),
            senders: Arc::new(Semaphore::new(SENDERS)),
        }
    }

    /// Serves a state-of-the-world stream; its responses come out of the receiver.
    pub(super) fn sotw(&self, requests: Streaming<DiscoveryRequest>) -> Responses {
        self.spawn::<Sotw>(requests)
    }

    /// Serves an incremental stream; its responses come out of the receiver.
    pub(super) fn delta(&self, requests: Streaming<DeltaDiscoveryRequest>) -> Responses {
        self.spawn::<Delta>(requests)
    }

    fn spawn<V: Variant>(&self, stream: Streaming<V::Request>) -> Responses {
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let ctx = self.ctx.clone();
        let id = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let senders = self.senders.clone();
        tokio::spawn(async move {
            if let Err(status) = serve::<V>(ctx, id, stream, &tx, senders).await {
                let _ = tx.send(Err(status)).await;
            }
        });
        rx
    }
}

/// A stream's outgoing responses, or the status that ends it.
pub(super) type Responses = mpsc::Receiver<Result<Wire, Status>>;

/// The two variants of the protocol, as the stream loop sees them.
trait Variant: Send + Sync + 'static {
    type Request: prost::Message + Default + Send + Sync + 'static;
    const NAME: &'static str;
    fn new(resources: Arc<ProxyResources>) -> Self;
    fn node(request: &Self::Request) -> Option<&Node>;
    fn on_request(&mut self, request: &Self::Request) -> Outcome;
    fn on_push(&mut self, resources: Arc<ProxyResources>) -> Vec<(XdsType, Wire)>;
    fn status(&self) -> BTreeMap<XdsType, TypeStatus>;
}

impl Variant for Sotw {
    type Request = DiscoveryRequest;
    const NAME: &'static str = "sotw";
    fn new(resources: Arc<ProxyResources>) -> Self {
        Sotw::new(resources)
    }
    fn node(request: &DiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }
    fn on_request(&mut self, request: &DiscoveryRequest) -> Outcome {
        Sotw::on_request(self, request)
    }
    fn on_push(&mut self, resources: Arc<ProxyResources>) -> Vec<(XdsType, Wire)> {
        Sotw::on_push(self, resources)
    }
    fn status(&self) -> BTreeMap<XdsType, TypeStatus> {
        Sotw::status(self)
    }
}

impl Variant for Delta {
    type Request = DeltaDiscoveryRequest;
    const NAME: &'static str = "delta";
    fn new(resources: Arc<ProxyResources>) -> Self {
        Delta::new(resources)
    }
    fn node(request: &DeltaDiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }
    fn on_request(&mut self, request: &DeltaDiscoveryRequest) -> Outcome {
        Delta::on_request(self, request)
    }
    fn on_push(&mut self, resources: Arc<ProxyResources>) -> Vec<(XdsType, Wire)> {
        Delta::on_push(self, resources)
    }
    fn status(&self) -> BTreeMap<XdsType, TypeStatus> {
        Delta::status(self)
    }
}

/// Removes a connection from the gauge and the sync status however its task ends.
struct Connected {
    ctx: AdsContext,
    id: u64,
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.ctx.metrics.connected.dec();
        self.ctx.status.remove(self.id);
    }
}

/// One stream: identify the proxy, answer its requests, push on mesh updates.
async fn serve<V: Variant>(
    ctx: AdsContext,
    id: u64,
    mut stream: Streaming<V::Request>,
    tx: &mpsc::Sender<Result<Wire, Status>>,
    senders: Arc<Semaphore>,
) -> Result<(), Status> {
    let first = stream
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("stream ended before its first request"))?;
    let node = V::node(&first)
        .ok_or_else(|| Status::invalid_argument("the first request must carry a node"))?;
    let (proxy, workload) =
        node::parse(node).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let proxy = Arc::new(proxy);
    tracing::info!(proxy = %proxy.id, variant = V::NAME, connection = id, "proxy connected");
    let _registration = workload.map(|w| ctx.registrations.register(w));
    ctx.metrics.connected.inc();
    let _connected = Connected {
        ctx: ctx.clone(),
        id,
    };
    let mut mesh_rx = ctx.mesh.clone();
    let mut shutdown = ctx.shutdown.clone();
    let mut current = mesh_rx.borrow_and_update().clone();
    let resources = resources_for(&current, &proxy).await;
    let mut state = V::new(resources.clone());
    let mut conn = Conn {
        ctx: &ctx,
        id,
        proxy: &proxy,
        tx,
        senders,
        resources,
    };
    conn.answer(&mut state, &first, current.generation).await?;
    loop {
        tokio::select! {
            message = stream.message() => match message {
                Ok(Some(request)) => conn.answer(&mut state, &request, current.generation).await?,
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(proxy = %proxy.id, %status, "stream error");
                    break;
                }
            },
            changed = mesh_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let next = mesh_rx.borrow_and_update().clone();
                // A scope describes one step; after a skipped update only a full
                // translation is right.
                let scope = if next.generation == current.generation + 1 {
                    &next.scope
                } else {
                    &PushScope::Full
                };
                conn.push(&mut state, &next, scope).await?;
                current = next;
            },
            () = stopping(&mut shutdown) => break,
        }
    }
    tracing::info!(proxy = %proxy.id, connection = id, "proxy disconnected");
    Ok(())
}

/// Completes when the server starts shutting down (or is gone).
pub(crate) async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn resources_for(update: &MeshUpdate, proxy: &ProxyNode) -> Arc<ProxyResources> {
    update
        .views
        .resources(&update.mesh, proxy, None)
        .await
        .resources
}

struct Conn<'a> {
    ctx: &'a AdsContext,
    id: u64,
    proxy: &'a Arc<ProxyNode>,
    tx: &'a mpsc::Sender<Result<Wire, Status>>,
    senders: Arc<Semaphore>,
    /// The proxy's resources for the update last handled.
    resources: Arc<ProxyResources>,
}

impl Conn<'_> {
    async fn answer<V: Variant>(
        &mut self,
        state: &mut V,
        request: &V::Request,
        generation: u64,
    ) -> Result<(), Status> {
        let outcome = state.on_request(request);
        match &outcome.event {
            Event::Nack(t, nack) => {
                tracing::warn!(proxy = %self.proxy.id, r#type = t.short(), version = %nack.version, detail = %nack.detail, "proxy rejected config (NACK)");
                self.ctx.metrics.reject(t.short());
            }
            Event::UnknownType(url) => {
                tracing::debug!(proxy = %self.proxy.id, type_url = %url, "request for a type this server does not serve");
            }
            Event::Stale(t) => {
                tracing::trace!(proxy = %self.proxy.id, r#type = t.short(), "stale request ignored");
            }
            Event::Subscribed(_) | Event::Ack(..) => {}
        }
        self.send(outcome.responses).await?;
        self.record(state, generation);
        Ok(())
    }

    async fn push<V: Variant>(
        &mut self,
        state: &mut V,
        update: &MeshUpdate,
        scope: &PushScope,
    ) -> Result<(), Status> {
        let started = std::time::Instant::now();
        let view = update
            .views
            .resources(&update.mesh, self.proxy, Some((&self.resources, scope)))
            .await;
        self.ctx.metrics.proxy_push(view.plan);
        let responses = if Arc::ptr_eq(&view.resources, &self.resources) {
            Vec::new()
        } else {
            self.resources = view.resources.clone();
            state.on_push(view.resources)
        };
        let pushed = !responses.is_empty();
        self.send(responses).await?;
        if pushed {
            self.ctx
                .metrics
                .push_time
                .observe(started.elapsed().as_secs_f64());
            self.ctx
                .metrics
                .convergence_time
                .observe(update.changed_at.elapsed().as_secs_f64());
        }
        self.record(state, update.generation);
        Ok(())
    }

    async fn send(&mut self, responses: Vec<(XdsType, Wire)>) -> Result<(), Status> {
        if responses.is_empty() {
            return Ok(());
        }
        let gone = |_| Status::cancelled("proxy went away");
        let deadline = Instant::now() + HOLD;
        let mut permit = self.senders.clone().acquire_owned().await.ok();
        for (t, response) in responses {
            self.ctx.metrics.push(t.short());
            self.ctx.metrics.resources_sent(t.short(), response.count());
            let slot = match timeout_at(deadline, self.tx.reserve()).await {
                Ok(slot) => slot.map_err(gone)?,
                Err(_) => {
                    permit = None;
                    self.tx.reserve().await.map_err(gone)?
                }
            };
            slot.send(Ok(response));
        }
        if permit.is_some() {
            // The queue holds one response: a free slot means the last one was taken.
            let _ = timeout_at(deadline, self.tx.reserve()).await;
        }
        Ok(())
    }

    fn record<V: Variant>(&self, state: &V, generation: u64) {
        self.ctx
            .status
            .update(self.id, self.proxy, V::NAME, generation, state.status());
    }
}
