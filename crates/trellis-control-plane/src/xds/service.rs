//! Envoy's `AggregatedDiscoveryService` as a gRPC service written by hand, so that
//! responses go out as [`Wire`] chunks (shared resource encodings, made as the transport
//! asks for them) instead of through a codec that encodes each message into a per-stream
//! buffer. Requests are decoded with tonic's own streaming decoder.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use tokio::sync::mpsc;
use tonic::Status;
use tonic::body::Body;
use tonic::codec::Streaming;
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic_prost::ProstDecoder;

use super::ads::Ads;
use super::wire::{Chunks, Wire};

const SOTW: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// Largest request accepted (tonic's default).
const MAX_REQUEST: usize = 4 * 1024 * 1024;

/// The ADS service, to add to a `tonic::transport::Server`.
#[derive(Debug, Clone)]
pub struct AdsService(Arc<Ads>);

impl AdsService {
    pub fn new(ads: Ads) -> AdsService {
        AdsService(Arc::new(ads))
    }
}

impl NamedService for AdsService {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
}

impl Service<Request<Body>> for AdsService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let response = match unsupported(request.headers()) {
            Some(status) => status.into_http(),
            None => match request.uri().path() {
                SOTW => {
                    let requests = decode::<DiscoveryRequest>(request.into_body());
                    respond(self.0.sotw(requests))
                }
                DELTA => {
                    let requests = decode::<DeltaDiscoveryRequest>(request.into_body());
                    respond(self.0.delta(requests))
                }
                path => Status::unimplemented(format!("no method {path}")).into_http(),
            },
        };
        ready(Ok(response))
    }
}

/// Compressed requests are refused, as tonic does without compression features.
fn unsupported(headers: &HeaderMap) -> Option<Status> {
    let encoding = headers.get("grpc-encoding")?;
    (encoding != "identity").then(|| {
        Status::unimplemented(format!("request compression {encoding:?} is not supported"))
    })
}

fn decode<M: prost::Message + Default + Send + 'static>(body: Body) -> Streaming<M> {
    Streaming::new_request(ProstDecoder::<M>::default(), body, None, Some(MAX_REQUEST))
}

fn respond(responses: mpsc::Receiver<Result<Wire, Status>>) -> Response<Body> {
    let mut response = Response::new(Body::new(ResponseBody {
        responses,
        sending: None,
        ended: false,
    }));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// A stream's responses as an HTTP body: each response's chunks, then the status in the
/// trailers when the stream's task ends.
struct ResponseBody {
    responses: mpsc::Receiver<Result<Wire, Status>>,
    sending: Option<Chunks>,
    ended: bool,
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            if let Some(chunk) = this.sending.as_mut().and_then(Iterator::next) {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            this.sending = None;
            let end = match std::task::ready!(this.responses.poll_recv(cx)) {
                Some(Ok(wire)) => match wire.chunks() {
                    Some(chunks) => {
                        this.sending = Some(chunks);
                        continue;
                    }
                    None => Status::resource_exhausted("response larger than a gRPC message"),
                },
                Some(Err(status)) => status,
                None => Status::ok(""),
            };
            this.ended = true;
            return Poll::Ready(Some(Ok(Frame::trailers(trailers(&end)))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

fn trailers(status: &Status) -> HeaderMap {
    let mut headers = HeaderMap::new();
    // `grpc-status` goes in first; only a message that cannot be a header value fails.
    let _ = status.add_header(&mut headers);
    headers
}
