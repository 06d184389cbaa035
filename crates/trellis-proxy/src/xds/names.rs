//! Istio's name table (NDS) on the proxy's ADS stream, for its DNS proxy: asked for by
//! wildcard once the stream opens, each response swapped into the DNS server's names
//! whole and ACKed, or NACKed when it does not decode (the last good table stays). The
//! proxy is ready only once a table arrived, so its app never meets a DNS proxy that
//! answers SERVFAIL.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status;
use tokio::sync::mpsc;
use trellis_dns::nds;

use super::Subscription;
use crate::Proxy;

/// True for a response carrying the name table.
pub(super) fn is_name_table(response: &DiscoveryResponse) -> bool {
    response.type_url == nds::TYPE_URL
}

/// The wildcard request for the name table, at the version and nonce of `sub`.
pub(super) fn request(
    sub: &Subscription,
    node: Option<Node>,
    error: Option<String>,
) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: sub.version.clone(),
        node,
        type_url: nds::TYPE_URL.to_string(),
        response_nonce: sub.nonce.clone(),
        error_detail: error.map(|message| Status {
            code: tonic::Code::InvalidArgument as i32,
            message,
            details: Vec::new(),
        }),
        ..Default::default()
    }
}

/// Applies a name-table response and answers it.
pub(super) async fn handle(
    proxy: &Proxy,
    sub: &mut Subscription,
    tx: &mpsc::Sender<DiscoveryRequest>,
    response: DiscoveryResponse,
) -> Result<(), String> {
    sub.nonce = response.nonce.clone();
    let error = match (&proxy.dns, nds::decode(&response.resources)) {
        (Some(names), Ok(table)) => {
            names.update(&table);
            sub.version = response.version_info.clone();
            sub.answered = true;
            tracing::info!(r#type = "nds", version = %response.version_info, hosts = table.table.len(), "ACK");
            None
        }
        (None, _) => Some("this proxy serves no DNS".to_string()),
        (Some(_), Err(e)) => {
            tracing::warn!(r#type = "nds", version = %response.version_info, detail = %e, "NACK");
            Some(e)
        }
    };
    tx.send(request(sub, None, error))
        .await
        .map_err(|e| e.to_string())
}

/// The DNS proxy, if any, has a table to answer from.
pub(super) fn ready(proxy: &Proxy) -> bool {
    proxy
        .dns
        .as_ref()
        .is_none_or(|names| names.lookup().is_some())
}
