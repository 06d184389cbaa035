//! An ADS stream that asks for the name table only — what `trellis agent` runs beside a
//! stock Envoy (Istio's agent proxies Envoy's own stream instead; a second stream keeps
//! Envoy's untouched). The node it sends carries the proxy's id, so the control plane
//! scopes the table to that proxy, but none of the workload metadata (addresses, labels):
//! the stream registers no workload and cannot disturb Envoy's registration.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc::Status;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::nds::{self, TYPE_URL};
use crate::server::Names;

/// The node metadata key Istio's agent sets when it captures DNS
/// (`ISTIO_META_DNS_CAPTURE`); the control plane builds name tables only for such nodes.
pub const DNS_CAPTURE: &str = "DNS_CAPTURE";

/// The node of the name-table stream for the proxy `id`.
pub fn node(id: &str, cluster: &str) -> Node {
    Node {
        id: id.to_string(),
        cluster: cluster.to_string(),
        metadata: Some(Struct {
            fields: [(
                DNS_CAPTURE.to_string(),
                Value {
                    kind: Some(Kind::StringValue("true".into())),
                },
            )]
            .into(),
        }),
        user_agent_name: "trellis-agent-dns".into(),
        ..Default::default()
    }
}

/// Keeps `names` up to date from the control plane at `xds_address` (`host:port`),
/// reconnecting with jittered backoff; never returns.
pub async fn watch(xds_address: String, node: Node, names: Arc<Names>) {
    let mut attempt: u32 = 0;
    loop {
        let started = std::time::Instant::now();
        match session(&xds_address, &node, &names).await {
            Ok(()) => tracing::info!("name table stream closed by the control plane"),
            Err(error) => tracing::warn!(%error, "name table stream failed"),
        }
        if started.elapsed() > Duration::from_secs(30) {
            attempt = 0;
        }
        attempt = attempt.saturating_add(1);
        let cap = 100u64.saturating_mul(1 << attempt.min(10)).min(5_000);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(50..=cap.max(50)))).await;
    }
}

async fn session(address: &str, node: &Node, names: &Names) -> Result<(), String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let (tx, rx) = mpsc::channel::<DiscoveryRequest>(4);
    let mut version = String::new();
    tx.send(request(Some(node.clone()), &version, "", None))
        .await
        .map_err(|e| e.to_string())?;
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    while let Some(response) = responses.message().await.map_err(|e| e.to_string())? {
        let error = apply(names, &response).err();
        if error.is_none() {
            version = response.version_info.clone();
        }
        tx.send(request(None, &version, &response.nonce, error))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn apply(names: &Names, response: &DiscoveryResponse) -> Result<(), String> {
    if response.type_url != TYPE_URL {
        return Err(format!("unexpected type {}", response.type_url));
    }
    let table = nds::decode(&response.resources).inspect_err(|e| {
        tracing::warn!(version = %response.version_info, error = %e, "name table rejected (NACK)");
    })?;
    names.update(&table);
    Ok(())
}

fn request(
    node: Option<Node>,
    version: &str,
    nonce: &str,
    error: Option<String>,
) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.to_string(),
        node,
        type_url: TYPE_URL.to_string(),
        response_nonce: nonce.to_string(),
        error_detail: error.map(|message| Status {
            code: tonic::Code::InvalidArgument as i32,
            message,
            details: Vec::new(),
        }),
        ..Default::default()
    }
}
