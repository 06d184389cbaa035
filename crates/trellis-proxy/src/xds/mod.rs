//! The ADS client (state of the world): one gRPC stream to the control plane; CDS and LDS
//! as wildcards, EDS and RDS for the names the accepted clusters and listeners need. Each
//! response is converted ([`state`]), swapped in as a new snapshot, its listeners bound,
//! and ACKed — or NACKed with every rejection in `error_detail` (the rest still applies).
//! When the stream breaks the proxy keeps serving what it has and reconnects with jittered
//! exponential backoff. A proxy that serves DNS also asks for Istio's name table (NDS,
//! [`names`]) on the same stream.

mod names;
pub mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};
use envoy_types::pb::google::rpc::Status;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::Proxy;
use state::{XdsState, XdsType};

/// Who the proxy is, as the control plane sees it (Istio's node id and metadata).
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub id: String,
    pub cluster: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// Per type: the last accepted version and the last nonce, and the names asked for.
#[derive(Debug, Default, Clone)]
struct Subscription {
    version: String,
    nonce: String,
    names: BTreeSet<String>,
    /// Asked for on this stream.
    requested: bool,
    /// A response arrived (on any stream).
    answered: bool,
}

pub async fn run(proxy: Arc<Proxy>, address: String, node: NodeIdentity) {
    let mut state = XdsState {
        secrets: proxy.secrets.clone(),
        ..XdsState::default()
    };
    let mut attempt: u32 = 0;
    loop {
        let started = std::time::Instant::now();
        match session(&proxy, &address, &node, &mut state).await {
            Ok(()) => tracing::info!("xDS stream closed by the control plane"),
            Err(e) => tracing::warn!(error = %e, "xDS stream failed"),
        }
        if started.elapsed() > Duration::from_secs(30) {
            attempt = 0;
        }
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(backoff(attempt, &mut fastrand::Rng::new())).await;
    }
}

/// Full jitter: uniform in [0, min(5 s, 100 ms × 2^attempt)], at least 50 ms.
pub fn backoff(attempt: u32, rng: &mut fastrand::Rng) -> Duration {
    let cap = 100u64.saturating_mul(1 << attempt.min(10)).min(5_000);
    Duration::from_millis(rng.u64(50..=cap.max(50)))
}

async fn session(
    proxy: &Arc<Proxy>,
    address: &str,
    node: &NodeIdentity,
    state: &mut XdsState,
) -> Result<(), String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(30));
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let (tx, rx) = mpsc::channel::<DiscoveryRequest>(16);
    let mut subs: BTreeMap<XdsType, Subscription> = BTreeMap::new();
    // Resubscribe to everything held, at the versions held; the node goes on the first.
    let mut first = true;
    for t in XdsType::ALL {
        if !t.wildcard() && state.wanted(t).is_empty() {
            continue;
        }
        let sub = subs.entry(t).or_default();
        sub.names = state.wanted(t);
        sub.requested = true;
        let mut req = request(t, sub, None);
        if first {
            req.node = Some(node_pb(node));
            first = false;
        }
        tx.send(req).await.map_err(|e| e.to_string())?;
    }
    let mut names_sub = Subscription::default();
    if proxy.dns.is_some() {
        let node = first.then(|| node_pb(node));
        tx.send(names::request(&names_sub, node, None))
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    proxy
        .stats
        .xds_connected
        .store(1, std::sync::atomic::Ordering::Relaxed);
    let result = loop {
        let response = match responses.message().await {
            Ok(Some(r)) => r,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e.to_string()),
        };
        let handled = if names::is_name_table(&response) {
            names::handle(proxy, &mut names_sub, &tx, response).await
        } else {
            handle(proxy, state, &mut subs, &tx, response).await
        };
        if let Err(e) = handled {
            break Err(e);
        }
        if !proxy.is_ready() && ready(state, &subs) && names::ready(proxy) {
            proxy.set_ready();
        }
    };
    proxy
        .stats
        .xds_connected
        .store(0, std::sync::atomic::Ordering::Relaxed);
    result
}

async fn handle(
    proxy: &Arc<Proxy>,
    state: &mut XdsState,
    subs: &mut BTreeMap<XdsType, Subscription>,
    tx: &mpsc::Sender<DiscoveryRequest>,
    response: DiscoveryResponse,
) -> Result<(), String> {
    let Some(t) = XdsType::from_url(&response.type_url) else {
        tracing::warn!(type_url = %response.type_url, "ignoring an xDS type the proxy does not consume");
        return Ok(());
    };
    let mut errors = state.apply(t, &response.resources);
    let snapshot = Arc::new(state.snapshot());
    proxy.config.store(snapshot.clone());
    if t == XdsType::Listener {
        errors.extend(proxy.listeners.reconcile(proxy, &snapshot));
    }
    let detail = (!errors.is_empty()).then(|| errors.join("; "));
    {
        let sub = subs.entry(t).or_default();
        sub.nonce = response.nonce.clone();
        sub.answered = true;
        if detail.is_none() {
            sub.version = response.version_info.clone();
        }
    }
    proxy.record(t, &response.version_info, detail.as_deref());
    match &detail {
        None => {
            tracing::info!(r#type = t.short(), version = %response.version_info, resources = response.resources.len(), "ACK")
        }
        Some(d) => {
            tracing::warn!(r#type = t.short(), version = %response.version_info, detail = %d, "NACK")
        }
    }
    let ack = request(t, &subs[&t], detail);
    tx.send(ack).await.map_err(|e| e.to_string())?;
    // New clusters or listeners may need other endpoints or routes.
    for dependent in [XdsType::Endpoint, XdsType::Route] {
        let wanted = state.wanted(dependent);
        let sub = subs.entry(dependent).or_default();
        if sub.names != wanted || (!sub.requested && !wanted.is_empty()) {
            sub.names = wanted;
            sub.requested = true;
            tx.send(request(dependent, sub, None))
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Ready once clusters and listeners arrived and every route and endpoint set they name.
fn ready(state: &XdsState, subs: &BTreeMap<XdsType, Subscription>) -> bool {
    let answered = |t: XdsType| subs.get(&t).is_some_and(|s| s.answered);
    answered(XdsType::Cluster)
        && answered(XdsType::Listener)
        && (state.wanted(XdsType::Route).is_empty() || answered(XdsType::Route))
        && (state.wanted(XdsType::Endpoint).is_empty() || answered(XdsType::Endpoint))
}

fn request(t: XdsType, sub: &Subscription, error: Option<String>) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: sub.version.clone(),
        node: None,
        resource_names: if t.wildcard() {
            Vec::new()
        } else {
            sub.names.iter().cloned().collect()
        },
        type_url: t.type_url(),
        response_nonce: sub.nonce.clone(),
        error_detail: error.map(|message| Status {
            code: tonic::Code::InvalidArgument as i32,
            message,
            details: Vec::new(),
        }),
        ..Default::default()
    }
}

fn node_pb(node: &NodeIdentity) -> Node {
    Node {
        id: node.id.clone(),
        cluster: node.cluster.clone(),
        metadata: Some(json_struct(&node.metadata)),
        user_agent_name: "trellis-proxy".into(),
        ..Default::default()
    }
}

/// Node metadata (JSON) as the `google.protobuf.Struct` Envoy sends; also what metadata
/// exchange carries.
pub(crate) fn json_struct(map: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_value(v)))
            .collect(),
    }
}

fn json_value(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(*b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(json_value).collect(),
        }),
        J::Object(o) => Kind::StructValue(json_struct(o)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_jittered_and_capped() {
        let mut rng = fastrand::Rng::with_seed(9);
        for attempt in 0..40 {
            let d = backoff(attempt, &mut rng);
            assert!(
                d >= Duration::from_millis(50) && d <= Duration::from_secs(5),
                "{d:?}"
            );
        }
        let early: Vec<Duration> = (0..50).map(|_| backoff(1, &mut rng)).collect();
        assert!(early.iter().all(|d| *d <= Duration::from_millis(200)));
        assert!(early.iter().any(|d| *d != early[0]), "jittered");
    }
}
