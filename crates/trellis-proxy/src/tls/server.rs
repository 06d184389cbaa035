//! TLS termination on a filter chain (Envoy's `DownstreamTlsContext`). The chain was chosen
//! from the sniffed ClientHello; here the handshake runs with the workload certificate,
//! the client's chain is verified against the mesh roots and the context's SAN matchers,
//! and the verified peer's principal is returned with the decrypted stream. ALPN is
//! answered only when client and context share a protocol (Envoy carries on without one,
//! where rustls would fail), so a configuration is kept with and without ALPN.

use std::sync::Arc;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use super::config::{DownstreamTls, Sans, alpn_overlaps};
use super::secrets::{Cached, Identity, Secrets};
use super::verify::{ClientVerifier, root_store, sans, sha256_hex, subject};
use super::{TlsError, alpn, provider, versions};

/// A chain's TLS context with its configurations for the current identity.
#[derive(Debug)]
pub struct ServerContext {
    pub spec: DownstreamTls,
    with_alpn: Cached<ServerConfig>,
    without_alpn: Cached<ServerConfig>,
}

impl PartialEq for ServerContext {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

/// What the handshake proved about the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// The verified client certificate's URI SAN (else DNS SAN); `None` without one.
    pub principal: Option<Arc<str>>,
    /// SNI, as the client sent it.
    pub server_name: Option<String>,
    /// The verified client certificate, for `x-forwarded-client-cert`.
    pub client_cert: Option<ClientCert>,
}

/// What `x-forwarded-client-cert` tells of a client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCert {
    /// SHA-256 of the certificate, lowercase hex.
    pub hash: String,
    pub subject: String,
    pub sans: Sans,
    /// The URI SANs of the certificate this proxy presented.
    pub local_uris: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(transparent)]
    Config(#[from] TlsError),
    #[error("TLS handshake failed: {0}")]
    Io(#[from] std::io::Error),
}

impl ServerContext {
    pub fn new(spec: DownstreamTls) -> ServerContext {
        ServerContext {
            spec,
            with_alpn: Cached::default(),
            without_alpn: Cached::default(),
        }
    }

    /// The configuration for a client offering `offered` ALPN protocols, and the identity
    /// it presents.
    fn config(
        &self,
        secrets: &Secrets,
        offered: &[Vec<u8>],
    ) -> Result<(Arc<ServerConfig>, Arc<Identity>), TlsError> {
        let (generation, identity) = secrets.current().ok_or(TlsError::NoIdentity)?;
        let answer = alpn_overlaps(&self.spec.common.alpn, offered);
        let cache = if answer {
            &self.with_alpn
        } else {
            &self.without_alpn
        };
        let config = cache.get(generation, || self.build(&identity, answer))?;
        Ok((config, identity))
    }

    fn build(&self, identity: &Identity, answer_alpn: bool) -> Result<ServerConfig, TlsError> {
        let c = &self.spec.common;
        let provider = provider(c);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions(c))?;
        let verifier = ClientVerifier::new(
            Arc::new(root_store(&identity.roots)),
            c.sans.clone(),
            self.spec.require_client_certificate,
            provider,
        )?;
        let mut config = builder
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
        if answer_alpn {
            config.alpn_protocols = alpn(&c.alpn);
        }
        Ok(config)
    }
}

/// Runs the server handshake on `io`.
pub async fn accept<IO>(
    ctx: &ServerContext,
    secrets: &Secrets,
    io: IO,
) -> Result<(TlsStream<IO>, Peer), HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io).await?;
    let hello = start.client_hello();
    let offered: Vec<Vec<u8>> = hello
        .alpn()
        .map(|a| a.map(<[u8]>::to_vec).collect())
        .unwrap_or_default();
    let server_name = hello.server_name().map(str::to_string);
    let (config, identity) = ctx.config(secrets, &offered)?;
    let stream = start.into_stream(config).await?;
    let client_cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|leaf| ClientCert {
            hash: sha256_hex(leaf),
            subject: subject(leaf),
            sans: sans(leaf),
            local_uris: identity
                .chain
                .first()
                .map(|c| sans(c).uris)
                .unwrap_or_default(),
        });
    let principal = client_cert
        .as_ref()
        .and_then(|c| c.sans.principal().map(Arc::from));
    Ok((
        stream,
        Peer {
            principal,
            server_name,
            client_cert,
        },
    ))
}
