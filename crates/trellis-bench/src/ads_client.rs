//! A lightweight ADS client that behaves like Envoy on the wire (state of the world):
//! subscribes to clusters and listeners by wildcard, then to the endpoints of its EDS
//! clusters and the route configurations its listeners name, and ACKs every response
//! with its version and nonce. It reports every response it receives, for timing.

use std::collections::BTreeSet;
use std::time::Instant;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use prost::{Message, Name};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use trellis_control_plane::proxy::ProxyNode;
use trellis_control_plane::xds::resources::XdsType;

/// One response received (and ACKed) by one client.
#[derive(Debug, Clone)]
pub struct Received {
    pub client: usize,
    pub xds_type: XdsType,
    pub at: Instant,
    pub bytes: usize,
}

/// The node Istio's agent would send, without the fields that make the control plane
/// register a workload (the mesh stays as generated).
fn node(proxy: &ProxyNode) -> Node {
    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.to_string())),
    };
    let labels = Struct {
        fields: proxy
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), string(v)))
            .collect(),
    };
    let mut metadata = Struct::default();
    metadata
        .fields
        .insert("NAMESPACE".into(), string(&proxy.namespace));
    metadata.fields.insert(
        "LABELS".into(),
        Value {
            kind: Some(Kind::StructValue(labels)),
        },
    );
    Node {
        id: proxy.id.clone(),
        cluster: format!("{}.{}", proxy.workload_name, proxy.namespace),
        metadata: Some(metadata),
        ..Default::default()
    }
}

#[derive(Default)]
struct TypeState {
    names: BTreeSet<String>,
    version: String,
    nonce: String,
}

/// Runs one client until the stream ends; every response is reported on `events`.
pub async fn run(
    client: usize,
    channel: Channel,
    proxy: ProxyNode,
    events: mpsc::UnboundedSender<Received>,
) -> Result<(), tonic::Status> {
    let mut ads =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(256 << 20);
    let (tx, rx) = mpsc::channel::<DiscoveryRequest>(16);
    let node = node(&proxy);
    for t in [XdsType::Cluster, XdsType::Listener] {
        let _ = tx
            .send(DiscoveryRequest {
                node: Some(node.clone()),
                type_url: t.url().to_string(),
                ..Default::default()
            })
            .await;
    }
    let mut responses = ads
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut states: [TypeState; 4] = Default::default();
    let index = |t: XdsType| XdsType::ORDER.iter().position(|o| *o == t).unwrap_or(0);
    while let Some(response) = responses.message().await? {
        let at = Instant::now();
        let Some(t) = XdsType::from_url(&response.type_url) else {
            continue;
        };
        let bytes = response.encoded_len();
        // Follow-up subscriptions first, as Envoy asks for endpoints while warming clusters.
        let follow = match t {
            XdsType::Cluster => Some((XdsType::Endpoint, eds_clusters(&response))),
            XdsType::Listener => Some((XdsType::Route, rds_names(&response))),
            _ => None,
        };
        if let Some((ft, names)) = follow {
            let state = &mut states[index(ft)];
            if names != state.names {
                state.names = names;
                let _ = tx
                    .send(DiscoveryRequest {
                        type_url: ft.url().to_string(),
                        version_info: state.version.clone(),
                        response_nonce: state.nonce.clone(),
                        resource_names: state.names.iter().cloned().collect(),
                        ..Default::default()
                    })
                    .await;
            }
        }
        let state = &mut states[index(t)];
        state.version = response.version_info.clone();
        state.nonce = response.nonce.clone();
        let ack = DiscoveryRequest {
            type_url: response.type_url.clone(),
            version_info: response.version_info.clone(),
            response_nonce: response.nonce.clone(),
            resource_names: if t.is_wildcard() {
                vec![]
            } else {
                state.names.iter().cloned().collect()
            },
            ..Default::default()
        };
        if tx.send(ack).await.is_err() {
            break;
        }
        let _ = events.send(Received {
            client,
            xds_type: t,
            at,
            bytes,
        });
    }
    Ok(())
}

fn eds_clusters(response: &DiscoveryResponse) -> BTreeSet<String> {
    response
        .resources
        .iter()
        .filter_map(|any| Cluster::decode(any.value.as_slice()).ok())
        .filter(|c| {
            matches!(c.cluster_discovery_type,
                Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32)
        })
        .map(|c| {
            c.eds_cluster_config
                .map(|e| e.service_name)
                .filter(|s| !s.is_empty())
                .unwrap_or(c.name)
        })
        .collect()
}

fn rds_names(response: &DiscoveryResponse) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for any in &response.resources {
        let Ok(listener) = Listener::decode(any.value.as_slice()) else {
            continue;
        };
        for chain in listener
            .filter_chains
            .iter()
            .chain(&listener.default_filter_chain)
        {
            for filter in &chain.filters {
                if let Some(ConfigType::TypedConfig(any)) = &filter.config_type
                    && any.type_url == HttpConnectionManager::type_url()
                    && let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice())
                    && let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier
                {
                    names.insert(rds.route_config_name);
                }
            }
        }
    }
    names
}
