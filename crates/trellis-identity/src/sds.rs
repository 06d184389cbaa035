//! Envoy's Secret Discovery Service on a local Unix socket, as Istio's agent serves it:
//! `default` is the workload's certificate chain and key (a `TlsCertificate`), `ROOTCA`
//! the trust bundle (a `CertificateValidationContext`). Each stream gets the secrets it
//! names, and again whenever the identity is renewed, so Envoy's listeners and clusters
//! pick up the new certificate without a restart or a dropped connection.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate, secret,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::{
    SecretDiscoveryService, SecretDiscoveryServiceServer,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status, Streaming};

use crate::client::WorkloadIdentity;

/// Istio's name of the workload certificate secret.
pub const DEFAULT: &str = "default";
/// Istio's name of the trust bundle secret.
pub const ROOTCA: &str = "ROOTCA";
/// The type URL of SDS resources.
pub const SECRET_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// The secrets among `names` that `identity` provides, in the order asked.
pub fn secrets(identity: &WorkloadIdentity, names: &[String]) -> Vec<Secret> {
    let inline = |pem: &str| {
        Some(DataSource {
            specifier: Some(Specifier::InlineBytes(pem.as_bytes().to_vec())),
            ..Default::default()
        })
    };
    names
        .iter()
        .filter_map(|name| {
            let kind = match name.as_str() {
                DEFAULT => secret::Type::TlsCertificate(TlsCertificate {
                    certificate_chain: inline(&identity.chain_pem),
                    private_key: inline(&identity.key_pem),
                    ..Default::default()
                }),
                ROOTCA => secret::Type::ValidationContext(CertificateValidationContext {
                    trusted_ca: inline(&identity.roots_pem),
                    ..Default::default()
                }),
                _ => return None,
            };
            Some(Secret {
                name: name.clone(),
                r#type: Some(kind),
            })
        })
        .collect()
}

/// SDS over the identities a [`crate::manager`] publishes.
#[derive(Debug, Clone)]
pub struct Sds {
    identity: watch::Receiver<Arc<WorkloadIdentity>>,
}

impl Sds {
    pub fn new(identity: watch::Receiver<Arc<WorkloadIdentity>>) -> Self {
        Sds { identity }
    }

    /// Binds the Unix socket `path`, replacing a stale socket file.
    pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        UnixListener::bind(path)
    }

    /// Serves SDS on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: UnixListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        tonic::transport::Server::builder()
            .add_service(SecretDiscoveryServiceServer::new(self))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
            .await
            .map_err(std::io::Error::other)
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl SecretDiscoveryService for Sds {
    type DeltaSecretsStream = BoxStream<DeltaDiscoveryResponse>;
    type StreamSecretsStream = BoxStream<DiscoveryResponse>;

    async fn delta_secrets(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaSecretsStream>, Status> {
        Err(Status::unimplemented(
            "incremental SDS is not served; use state of the world (GRPC)",
        ))
    }

    async fn stream_secrets(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(stream(request.into_inner(), self.identity.clone(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn fetch_secrets(
        &self,
        request: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        let identity = self.identity.borrow().clone();
        let names = request.into_inner().resource_names;
        Ok(Response::new(response(&identity, &names, 0, 0)))
    }
}

/// One SotW stream: answer each new subscription, ignore ACKs, push on renewal.
async fn stream(
    mut requests: Streaming<DiscoveryRequest>,
    mut identity: watch::Receiver<Arc<WorkloadIdentity>>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
) {
    let mut names: Vec<String> = Vec::new();
    let mut version = 1u64;
    let mut nonce = 0u64;
    identity.mark_unchanged();
    loop {
        tokio::select! {
            request = requests.message() => {
                let Ok(Some(request)) = request else { return };
                if let Some(error) = &request.error_detail {
                    tracing::warn!(names = ?request.resource_names, error = %error.message, "Envoy rejected a secret");
                    continue;
                }
                let acked = !request.response_nonce.is_empty() && request.resource_names == names;
                if acked {
                    continue;
                }
                names = request.resource_names;
            }
            changed = identity.changed() => {
                if changed.is_err() { return }
                version += 1;
                if names.is_empty() { continue }
            }
        }
        nonce += 1;
        let current = identity.borrow_and_update().clone();
        if tx
            .send(Ok(response(&current, &names, version, nonce)))
            .await
            .is_err()
        {
            return;
        }
    }
}

fn response(
    identity: &WorkloadIdentity,
    names: &[String],
    version: u64,
    nonce: u64,
) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.to_string(),
        resources: secrets(identity, names)
            .into_iter()
            .map(|s| Any {
                type_url: SECRET_TYPE.to_string(),
                value: s.encode_to_vec(),
            })
            .collect(),
        type_url: SECRET_TYPE.to_string(),
        nonce: nonce.to_string(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn default_and_rootca_as_istio_names_them() {
        let identity = WorkloadIdentity {
            id: crate::spiffe::SpiffeId::new("cluster.local", "a", "b").unwrap(),
            key_pem: "KEY".into(),
            chain_pem: "CHAIN".into(),
            roots_pem: "ROOTS".into(),
            not_before: SystemTime::UNIX_EPOCH,
            not_after: SystemTime::UNIX_EPOCH,
            received: SystemTime::UNIX_EPOCH,
        };
        let names = vec![ROOTCA.to_string(), "unknown".into(), DEFAULT.to_string()];
        let got = secrets(&identity, &names);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name, ROOTCA);
        let Some(secret::Type::ValidationContext(vc)) = &got[0].r#type else {
            panic!("ROOTCA is a validation context")
        };
        assert_eq!(
            vc.trusted_ca.as_ref().unwrap().specifier,
            Some(Specifier::InlineBytes(b"ROOTS".to_vec()))
        );
        let Some(secret::Type::TlsCertificate(tls)) = &got[1].r#type else {
            panic!("default is a TLS certificate")
        };
        assert_eq!(
            tls.private_key.as_ref().unwrap().specifier,
            Some(Specifier::InlineBytes(b"KEY".to_vec()))
        );
    }
}
