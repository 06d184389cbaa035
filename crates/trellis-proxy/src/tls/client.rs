//! TLS origination to an upstream (Envoy's `UpstreamTlsContext`): SNI and ALPN from the
//! context, the workload certificate as client certificate, the server verified against
//! the mesh roots and the expected identities. [`Connector`] is the cluster pool's
//! connector: `https://ADDR` URIs get TLS, `http://ADDR` plain text, so that the pool (keyed
//! by scheme and address) keeps the two apart.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::config::UpstreamTls;
use super::failures::{FailureLog, io_reason, log_failure};
use super::secrets::{Cached, Identity, Secrets};
use super::verify::{ServerVerifier, root_store, sans};
use super::{TlsError, alpn, provider, versions};

/// A cluster's TLS context with its configuration for the current identity.
#[derive(Debug)]
pub struct ClientContext {
    pub spec: Arc<UpstreamTls>,
    /// Its failed handshakes, for the log.
    failures: FailureLog,
    cache: Cached<ClientConfig>,
}

impl ClientContext {
    pub fn new(spec: Arc<UpstreamTls>) -> ClientContext {
        ClientContext {
            spec,
            failures: FailureLog::default(),
            cache: Cached::default(),
        }
    }

    fn config(&self, secrets: &Secrets) -> Result<Arc<ClientConfig>, TlsError> {
        let (generation, identity) = secrets.current().ok_or(TlsError::NoIdentity)?;
        self.cache.get(generation, || self.build(&identity))
    }

    fn build(&self, identity: &Identity) -> Result<ClientConfig, TlsError> {
        let c = &self.spec.common;
        let provider = provider(c);
        let verifier = ServerVerifier::new(
            Arc::new(root_store(&identity.roots)),
            c.sans.clone(),
            provider.clone(),
        );
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions(c))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
        config.alpn_protocols = alpn(&c.alpn);
        Ok(config)
    }

    /// The name the handshake is for: the SNI, else the address (rustls sends no SNI for
    /// an address, as Envoy sends none without one configured).
    fn server_name(&self, address: SocketAddr) -> ServerName<'static> {
        ServerName::try_from(self.spec.sni.clone())
            .unwrap_or_else(|_| ServerName::IpAddress(address.ip().into()))
    }
}

/// Runs the client handshake on `io` (connected to `address`); returns the stream and the
/// server's principal.
pub async fn connect<IO>(
    ctx: &ClientContext,
    secrets: &Secrets,
    io: IO,
    address: SocketAddr,
) -> std::io::Result<(TlsStream<IO>, Option<Arc<str>>)>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let config = ctx.config(secrets).map_err(std::io::Error::other)?;
    let stream = TlsConnector::from(config)
        .connect(ctx.server_name(address), io)
        .await
        .inspect_err(|e| {
            let level = ctx.failures.level(&io_reason(e), std::time::Instant::now());
            log_failure!(level, "upstream TLS handshake failed";
                upstream = %address, sni = %ctx.spec.sni, error = %e);
        })?;
    let principal = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|leaf| sans(leaf).principal().map(Arc::from));
    Ok((stream, principal))
}

/// The upstream's principal, on responses that came over TLS (a response extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamPeer(pub Option<Arc<str>>);

/// A pooled upstream connection, plain or TLS.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>, UpstreamPeer),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(s) => s.connected(),
            Stream::Tls(s, peer) => s.get_ref().0.connected().extra(peer.clone()),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connector of a cluster's pool: TCP from hyper-util, then TLS for `https` URIs.
#[derive(Debug, Clone)]
pub struct Connector {
    http: HttpConnector,
    tls: Option<Arc<ClientContext>>,
    secrets: Secrets,
}

impl Connector {
    pub fn new(mut http: HttpConnector, tls: Option<Arc<ClientContext>>, secrets: Secrets) -> Self {
        http.enforce_http(false);
        Connector { http, tls, secrets }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = match uri.scheme_str() {
            Some("https") => self.tls.clone(),
            _ => None,
        };
        let connecting = self.http.call(uri);
        let secrets = self.secrets.clone();
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            let Some(ctx) = tls else {
                return Ok(TokioIo::new(Stream::Plain(tcp)));
            };
            let address = tcp.peer_addr()?;
            let (stream, principal) = connect(&ctx, &secrets, tcp, address).await?;
            Ok(TokioIo::new(Stream::Tls(
                Box::new(stream),
                UpstreamPeer(principal),
            )))
        })
    }
}
