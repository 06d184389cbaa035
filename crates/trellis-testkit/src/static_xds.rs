//! A static ADS server (state of the world): it serves one fixed set of resources to every
//! client, so that Envoy and the Trellis proxy can be fed byte-identical configuration that
//! the control plane cannot produce yet (hand-written listeners in differential tests).
//! Each type is answered once per stream; ACKs are not answered again; NACKs are recorded.
//! Runs on its own thread; stops when dropped.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

type BoxStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

/// The running server.
pub struct StaticXds {
    pub address: SocketAddr,
    nacks: Arc<Mutex<Vec<String>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StaticXds {
    /// Serves `resources` (each an `Any` of its xDS type) on `address`.
    pub fn start(address: SocketAddr, resources: Vec<Any>) -> StaticXds {
        let listener = std::net::TcpListener::bind(address)
            .unwrap_or_else(|e| panic!("static xDS cannot listen on {address}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let nacks = Arc::new(Mutex::new(Vec::new()));
        let service = Fixture {
            resources: Arc::new(resources),
            nacks: nacks.clone(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("static xDS runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let server = tonic::transport::Server::builder()
                    .add_service(AggregatedDiscoveryServiceServer::new(service))
                    .serve_with_incoming(TcpListenerStream::new(listener));
                // Not a graceful shutdown: clients hold their streams open forever.
                tokio::select! {
                    _ = server => {}
                    _ = stopped => {}
                }
            });
        });
        StaticXds {
            address,
            nacks,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The `error_detail` of every NACK received so far.
    pub fn nacks(&self) -> Vec<String> {
        self.nacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for StaticXds {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Fixture {
    resources: Arc<Vec<Any>>,
    nacks: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Fixture {
    type StreamAggregatedResourcesStream = BoxStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = BoxStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        let resources = self.resources.clone();
        let nacks = self.nacks.clone();
        let mut inbound = request.into_inner();
        tokio::spawn(async move {
            let mut answered = HashSet::new();
            while let Ok(Some(r)) = inbound.message().await {
                if let Some(e) = &r.error_detail {
                    nacks
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(e.message.clone());
                }
                if !answered.insert(r.type_url.clone()) {
                    continue;
                }
                let response = DiscoveryResponse {
                    version_info: "1".into(),
                    resources: resources
                        .iter()
                        .filter(|a| a.type_url == r.type_url)
                        .cloned()
                        .collect(),
                    type_url: r.type_url,
                    nonce: "1".into(),
                    ..Default::default()
                };
                if tx.send(Ok(response)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "the static xDS server speaks state of the world only",
        ))
    }
}

/// An Envoy bootstrap (JSON) with ADS at `xds` for listeners and clusters, and the admin
/// listener at `admin`.
pub fn envoy_bootstrap(node_id: &str, xds: SocketAddr, admin: SocketAddr) -> String {
    let socket = |a: SocketAddr| {
        format!(
            r#"{{"socket_address": {{"address": "{}", "port_value": {}}}}}"#,
            a.ip(),
            a.port()
        )
    };
    format!(
        r#"{{
  "node": {{"id": "{node_id}", "cluster": "static-xds"}},
  "admin": {{"address": {admin}}},
  "dynamic_resources": {{
    "ads_config": {{"api_type": "GRPC", "transport_api_version": "V3",
      "grpc_services": [{{"envoy_grpc": {{"cluster_name": "xds"}}}}]}},
    "lds_config": {{"ads": {{}}, "resource_api_version": "V3"}},
    "cds_config": {{"ads": {{}}, "resource_api_version": "V3"}}
  }},
  "static_resources": {{"clusters": [{{
    "name": "xds", "type": "STATIC", "connect_timeout": "1s",
    "typed_extension_protocol_options": {{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {{
      "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
      "explicit_http_config": {{"http2_protocol_options": {{}}}}}}}},
    "load_assignment": {{"cluster_name": "xds", "endpoints": [{{"lb_endpoints": [{{"endpoint": {{"address": {xds}}}}}]}}]}}
  }}]}}
}}"#,
        admin = socket(admin),
        xds = socket(xds),
    )
}
