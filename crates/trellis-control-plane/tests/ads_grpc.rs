//! The ADS server over a real gRPC connection on loopback: bad input gets an error status,
//! a good proxy gets its clusters, and a NACK is visible in the sync status.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use trellis_control_plane::mesh::MeshSnapshot;
use trellis_control_plane::metrics::Metrics;
use trellis_control_plane::xds::registration::Registrations;
use trellis_control_plane::xds::resources::XdsType;
use trellis_control_plane::xds::status::SyncStatus;
use trellis_control_plane::xds::{Ads, AdsContext, AdsService, MeshUpdate};

const TIMEOUT: Duration = Duration::from_secs(10);

struct Server {
    address: String,
    status: SyncStatus,
    _mesh: watch::Sender<Arc<MeshUpdate>>,
    _stop: watch::Sender<bool>,
}

async fn server() -> Server {
    let mesh = MeshSnapshot::new(Default::default(), &[], Default::default());
    let (mesh_tx, mesh_rx) = watch::channel(Arc::new(MeshUpdate {
        mesh: Arc::new(mesh),
        generation: 1,
        changed_at: tokio::time::Instant::now(),
        problems: Arc::new(vec![]),
        scope: trellis_control_plane::xds::push::PushScope::Full,
        views: Arc::default(),
    }));
    let (stop, stop_rx) = watch::channel(false);
    let status = SyncStatus::default();
    let ads = Ads::new(AdsContext {
        mesh: mesh_rx,
        registrations: Registrations::new(Duration::from_secs(1)),
        status: status.clone(),
        metrics: Metrics::new(&mut Registry::default()),
        shutdown: stop_rx,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AdsService::new(ads))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Server {
        address,
        status,
        _mesh: mesh_tx,
        _stop: stop,
    }
}

fn request(node_id: &str, t: XdsType) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(Node {
            id: node_id.to_string(),
            ..Default::default()
        }),
        type_url: t.url().to_string(),
        ..Default::default()
    }
}

async fn open(
    server: &Server,
) -> (
    mpsc::Sender<DiscoveryRequest>,
    tonic::Streaming<DiscoveryResponse>,
) {
    let mut client = AggregatedDiscoveryServiceClient::connect(server.address.clone())
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    let responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, responses)
}

#[tokio::test]
async fn a_bad_node_gets_invalid_argument() {
    let server = server().await;
    let (tx, mut responses) = open(&server).await;
    tx.send(request("not-an-istio-node", XdsType::Cluster))
        .await
        .unwrap();
    let error = tokio::time::timeout(TIMEOUT, responses.message())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error}");
    assert!(error.message().contains("not-an-istio-node"));
}

#[tokio::test]
async fn a_proxy_gets_clusters_and_its_nack_is_reported() {
    let server = server().await;
    let (tx, mut responses) = open(&server).await;
    let id = "sidecar~127.0.0.5~client.default~default.svc.cluster.local";
    tx.send(request(id, XdsType::Cluster)).await.unwrap();
    let first = tokio::time::timeout(TIMEOUT, responses.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.type_url, XdsType::Cluster.url());
    assert!(!first.resources.is_empty());
    tx.send(DiscoveryRequest {
        type_url: XdsType::Cluster.url().to_string(),
        response_nonce: first.nonce.clone(),
        error_detail: Some(RpcStatus {
            code: 3,
            message: "test rejection".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let synced = server.status.snapshot();
        let nack = synced
            .iter()
            .find(|p| p.proxy == id)
            .and_then(|p| p.types.get("cds")?.last_nack.clone());
        if let Some(nack) = nack {
            assert_eq!(nack.detail, "test rejection");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{synced:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
