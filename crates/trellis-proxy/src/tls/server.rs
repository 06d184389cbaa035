//! TLS termination on a filter chain (Envoy's `DownstreamTlsContext`). The chain was chosen
//! from the sniffed ClientHello; here the handshake runs with the workload certificate,
//! the client's chain is verified against the mesh roots and the context's SAN matchers,
//! and the verified peer's principal is returned with the decrypted stream. ALPN is
//! answered only when client and context share a protocol (Envoy carries on without one,
//! where rustls would fail), so a configuration is kept with and without ALPN. The whole
//! handshake, from waiting for the ClientHello to the client's Finished, is bounded by the
//! chain's [`ServerContext::handshake_timeout`], so a silent or stalled client cannot hold
//! a connection open.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use super::config::{DownstreamTls, Sans, alpn_overlaps};
use super::failures::{FailureLog, io_reason};
use super::secrets::{Cached, Identity, Secrets};
use super::verify::{ClientVerifier, root_store, sans, sha256_hex, subject};
use super::{TlsError, alpn, provider, versions};

/// A chain's TLS context with its configurations for the current identity.
#[derive(Debug)]
pub struct ServerContext {
    pub spec: DownstreamTls,
    /// The chain's `transport_socket_connect_timeout`: how long a handshake may take;
    /// `None`: unbounded (set to zero).
    pub handshake_timeout: Option<Duration>,
    /// Its failed handshakes, for the log.
    pub failures: FailureLog,
    with_alpn: Cached<ServerConfig>,
    without_alpn: Cached<ServerConfig>,
}

impl PartialEq for ServerContext {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec && self.handshake_timeout == other.handshake_timeout
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
    /// The negotiated version (`TLSv1.3`), for `%DOWNSTREAM_TLS_VERSION%`.
    pub version: Option<&'static str>,
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
    #[error("TLS handshake not completed within {0:?}")]
    Timeout(Duration),
}

impl HandshakeError {
    /// What went wrong, as [`FailureLog`] groups failures: the TLS error, the I/O error's
    /// kind, `Timeout`, `NoIdentity`.
    pub fn reason(&self) -> String {
        match self {
            HandshakeError::Config(TlsError::NoIdentity) => "NoIdentity".to_string(),
            HandshakeError::Config(TlsError::Rustls(e)) => format!("{e:?}"),
            HandshakeError::Io(e) => io_reason(e),
            HandshakeError::Timeout(_) => "Timeout".to_string(),
        }
    }
}

/// The handshake bound of a chain whose `transport_socket_connect_timeout` is unset
/// (Envoy sets none: its connection manager's idle timeout, an hour by default, ends a
/// stalled handshake there). Mesh handshakes take milliseconds; this is the listener
/// filters' default timeout, so that neither phase waits longer than the other.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// The handshake bound from a chain's `transport_socket_connect_timeout`: unset gives
/// [`DEFAULT_HANDSHAKE_TIMEOUT`], zero none (Envoy: "if present and nonzero").
pub fn handshake_timeout(configured: Option<Duration>) -> Option<Duration> {
    match configured {
        None => Some(DEFAULT_HANDSHAKE_TIMEOUT),
        Some(d) => Some(d).filter(|d| !d.is_zero()),
    }
}

impl ServerContext {
    pub fn new(spec: DownstreamTls, handshake_timeout: Option<Duration>) -> ServerContext {
        ServerContext {
            spec,
            handshake_timeout,
            failures: FailureLog::default(),
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

/// Runs the server handshake on `io`, within the context's handshake timeout.
pub async fn accept<IO>(
    ctx: &ServerContext,
    secrets: &Secrets,
    io: IO,
) -> Result<(TlsStream<IO>, Peer), HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let Some(limit) = ctx.handshake_timeout else {
        return handshake(ctx, secrets, io).await;
    };
    tokio::time::timeout(limit, handshake(ctx, secrets, io))
        .await
        .map_err(|_| HandshakeError::Timeout(limit))?
}

async fn handshake<IO>(
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
    let version = stream.get_ref().1.protocol_version().map(|v| match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "unknown",
    });
    Ok((
        stream,
        Peer {
            principal,
            server_name,
            client_cert,
            version,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::config::{CommonTls, Version};
    use crate::tls::secrets::Identity;
    use tokio::io::AsyncWriteExt;

    fn context(timeout: Option<Duration>) -> ServerContext {
        let spec = DownstreamTls {
            common: CommonTls {
                min: Version::Tls12,
                max: Version::Tls13,
                cipher_suites: vec![],
                alpn: vec!["h2".into(), "http/1.1".into()],
                sans: vec![],
            },
            require_client_certificate: true,
        };
        ServerContext::new(spec, timeout)
    }

    /// A ClientHello as a real client sends it.
    fn client_hello() -> Vec<u8> {
        let config = rustls::ClientConfig::builder_with_provider(crate::tls::secrets::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from("reviews").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut hello = Vec::new();
        conn.write_tls(&mut hello).unwrap();
        hello
    }

    /// Runs the handshake against a client that sends `sent` and then nothing, keeping
    /// its end open.
    async fn stalled(ctx: &ServerContext, secrets: &Secrets, sent: &[u8]) -> HandshakeError {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        client.write_all(sent).await.unwrap();
        let outcome = accept(ctx, secrets, server).await;
        drop(client);
        outcome.expect_err("the handshake cannot complete")
    }

    #[tokio::test(start_paused = true)]
    async fn silent_and_half_sent_client_hellos_time_out() {
        let ctx = context(handshake_timeout(None));
        let secrets = Secrets::default();
        let silent = stalled(&ctx, &secrets, b"").await;
        assert!(
            matches!(silent, HandshakeError::Timeout(d) if d == DEFAULT_HANDSHAKE_TIMEOUT),
            "{silent}"
        );
        let hello = client_hello();
        let half = stalled(&ctx, &secrets, &hello[..hello.len() / 2]).await;
        assert!(matches!(half, HandshakeError::Timeout(_)), "{half}");
        assert_eq!(half.reason(), "Timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_stalling_after_its_hello_times_out() {
        let dir = trellis_testkit::temp_dir();
        let ca = trellis_testkit::sds::TestCa::new(dir.path());
        let (chain, key) = ca.issue("reviews", "spiffe://cluster.local/ns/default/sa/reviews");
        let secrets = Secrets::default();
        secrets.set(Arc::new(
            Identity::from_pem(&chain, &key, &ca.root_pem).unwrap(),
        ));
        let ctx = context(Some(Duration::from_secs(3)));
        // The server answers the hello and then waits for the client's certificate.
        let e = stalled(&ctx, &secrets, &client_hello()).await;
        assert!(
            matches!(e, HandshakeError::Timeout(d) if d == Duration::from_secs(3)),
            "{e}"
        );
    }

    #[test]
    fn the_configured_handshake_timeout_wins_and_zero_means_none() {
        assert_eq!(handshake_timeout(None), Some(DEFAULT_HANDSHAKE_TIMEOUT));
        assert_eq!(
            handshake_timeout(Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(handshake_timeout(Some(Duration::ZERO)), None);
    }
}
