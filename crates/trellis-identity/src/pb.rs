//! Istio's certificate service, `istio.v1.auth.IstioCertificateService`
//! (security/v1alpha1/ca.proto), written by hand: two messages and one unary method do not
//! justify a protoc build step. Field numbers and names follow the proto, so Istio's agent
//! and Trellis interoperate on the wire.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{Body, BoxFuture, StdError, http};
use tonic::{Request, Response, Status};

/// The gRPC service name.
pub const SERVICE: &str = "istio.v1.auth.IstioCertificateService";
/// The path of `CreateCertificate`.
pub const CREATE_CERTIFICATE: &str = "/istio.v1.auth.IstioCertificateService/CreateCertificate";

/// A certificate signing request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateRequest {
    /// PEM-encoded PKCS#10 CSR.
    #[prost(string, tag = "1")]
    pub csr: String,
    /// Requested lifetime in seconds; zero or less means the CA's default.
    #[prost(int64, tag = "3")]
    pub validity_duration: i64,
    /// Extra information (Istio uses it for impersonation by trusted nodes).
    #[prost(message, optional, tag = "4")]
    pub metadata: Option<prost_types::Struct>,
}

/// The signed certificate: PEM strings, the leaf first, then intermediates, and the trust
/// bundle last (one string that may hold several roots during a root rotation, as Istio
/// sends it).
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateResponse {
    #[prost(string, repeated, tag = "1")]
    pub cert_chain: Vec<String>,
}

/// Calls `CreateCertificate` on `channel`.
pub async fn create_certificate(
    channel: tonic::transport::Channel,
    request: Request<IstioCertificateRequest>,
) -> Result<IstioCertificateResponse, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("CA not reachable: {e}")))?;
    let path = http::uri::PathAndQuery::from_static(CREATE_CERTIFICATE);
    let codec = tonic_prost::ProstCodec::default();
    Ok(grpc.unary(request, path, codec).await?.into_inner())
}

/// What a CA does; [`CertificateServiceServer`] serves it over gRPC.
pub trait CertificateService: Send + Sync + 'static {
    fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> impl Future<Output = Result<Response<IstioCertificateResponse>, Status>> + Send;
}

/// The gRPC server of a [`CertificateService`], to add to a `tonic` router.
#[derive(Debug)]
pub struct CertificateServiceServer<T> {
    inner: Arc<T>,
}

impl<T> CertificateServiceServer<T> {
    pub fn new(inner: T) -> Self {
        CertificateServiceServer {
            inner: Arc::new(inner),
        }
    }
}

impl<T> Clone for CertificateServiceServer<T> {
    fn clone(&self) -> Self {
        CertificateServiceServer {
            inner: self.inner.clone(),
        }
    }
}

impl<T> tonic::server::NamedService for CertificateServiceServer<T> {
    const NAME: &'static str = SERVICE;
}

struct CreateCertificateMethod<T>(Arc<T>);

impl<T: CertificateService> tonic::server::UnaryService<IstioCertificateRequest>
    for CreateCertificateMethod<T>
{
    type Response = IstioCertificateResponse;
    type Future = BoxFuture<Response<IstioCertificateResponse>, Status>;

    fn call(&mut self, request: Request<IstioCertificateRequest>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.create_certificate(request).await })
    }
}

impl<T, B> tonic::codegen::Service<http::Request<B>> for CertificateServiceServer<T>
where
    T: CertificateService,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != CREATE_CERTIFICATE {
            let path = request.uri().path().to_string();
            return Box::pin(async move {
                Ok(Status::unimplemented(format!("no method {path}")).into_http())
            });
        }
        let method = CreateCertificateMethod(self.inner.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(method, request).await)
        })
    }
}
