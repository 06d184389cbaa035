//! JWKS of `jwksUri`s, fetched by the control plane and sent to proxies inline (as Istio
//! does): [`JwksCache`] is what translation reads (pure); [`JwksFetcher`] fetches in the
//! background with a timeout, one URI at a time per task, and calls back when something
//! new arrived so that the mesh is rebuilt and pushed. A slow or dead endpoint never holds
//! up configuration: until its keys arrive, translation stands in keys that verify nothing.
//! `https://` URIs are verified against the system's roots (`SSL_CERT_FILE` /
//! `SSL_CERT_DIR` name others), as Istio's control plane does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use trellis_api::{Kind, Spec};
use trellis_config::store::Snapshot;

/// Fetched key sets by URI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwksCache(BTreeMap<String, String>);

impl JwksCache {
    pub fn get(&self, uri: &str) -> Option<String> {
        self.0.get(uri).cloned()
    }

    pub fn insert(&mut self, uri: String, jwks: String) {
        self.0.insert(uri, jwks);
    }
}

/// The `jwksUri`s (with their timeouts) of rules without inline `jwks`.
pub fn wanted(config: &Snapshot) -> BTreeMap<String, Duration> {
    let mut out = BTreeMap::new();
    for r in config.of_kind(Kind::RequestAuthentication) {
        if let Spec::RequestAuthentication(ra) = &r.spec {
            for rule in &ra.jwt_rules {
                if rule.jwks.is_empty() && !rule.jwks_uri.is_empty() {
                    let timeout = rule
                        .timeout
                        .as_ref()
                        .map_or(DEFAULT_TIMEOUT, |d| d.to_std());
                    out.insert(rule.jwks_uri.clone(), timeout);
                }
            }
        }
    }
    out
}

/// Istio's default JWKS fetch timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after a failure a URI is tried again.
const RETRY: Duration = Duration::from_secs(60);

/// Fetches JWKS in the background; shared by the mesh builder.
#[derive(Clone)]
pub struct JwksFetcher {
    state: Arc<Mutex<FetchState>>,
    on_new: Arc<dyn Fn() + Send + Sync>,
    tls: Arc<rustls::ClientConfig>,
}

#[derive(Default)]
struct FetchState {
    cache: JwksCache,
    in_flight: BTreeSet<String>,
    /// What the configuration names now; a failing URI no longer named stops retrying.
    wanted: BTreeSet<String>,
}

impl JwksFetcher {
    /// `on_new` runs (on a background task) each time a key set arrives or changes;
    /// `https://` URIs are trusted by `tls` (see [`system_roots`]).
    pub fn new(tls: Arc<rustls::ClientConfig>, on_new: impl Fn() + Send + Sync + 'static) -> Self {
        JwksFetcher {
            state: Arc::default(),
            on_new: Arc::new(on_new),
            tls,
        }
    }

    /// What is known now.
    pub fn cache(&self) -> JwksCache {
        self.lock().cache.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FetchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts fetching every wanted URI that is neither known nor being fetched. Needs a
    /// Tokio runtime.
    pub fn want(&self, uris: BTreeMap<String, Duration>) {
        self.lock().wanted = uris.keys().cloned().collect();
        for (uri, timeout) in uris {
            {
                let mut state = self.lock();
                if state.cache.get(&uri).is_some() || !state.in_flight.insert(uri.clone()) {
                    continue;
                }
            }
            let me = self.clone();
            tokio::spawn(async move { me.fetch_loop(uri, timeout).await });
        }
    }

    async fn fetch_loop(self, uri: String, timeout: Duration) {
        loop {
            match fetch(&uri, timeout, &self.tls).await {
                Ok(jwks) => {
                    let mut state = self.lock();
                    state.in_flight.remove(&uri);
                    state.cache.insert(uri.clone(), jwks);
                    drop(state);
                    tracing::info!(%uri, "JWKS fetched");
                    (self.on_new)();
                    return;
                }
                Err(e) => {
                    tracing::warn!(%uri, "JWKS fetch failed, tokens of this issuer are rejected until it succeeds: {e}");
                    tokio::time::sleep(RETRY).await;
                    let mut state = self.lock();
                    if !state.wanted.contains(&uri) {
                        state.in_flight.remove(&uri);
                        return;
                    }
                }
            }
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("only http:// and https:// JWKS URIs can be fetched")]
    Scheme,
    #[error("TLS: {0}")]
    Tls(String),
    #[error("invalid URI: {0}")]
    Uri(String),
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("{0}")]
    Http(String),
}

/// One GET of `uri` (HTTP/1.1, over TLS verified by `tls` for `https://`), bounded by
/// `timeout`.
pub async fn fetch(
    uri: &str,
    timeout: Duration,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<String, FetchError> {
    tokio::time::timeout(timeout, get(uri, tls))
        .await
        .map_err(|_| FetchError::Timeout)?
}

/// The roots an `https://` JWKS server is verified with: the system's (honouring
/// `SSL_CERT_FILE` and `SSL_CERT_DIR`). Unreadable entries are logged and skipped; with none
/// at all, every https fetch fails with an unknown-issuer error that says so.
pub fn system_roots() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!("loading the system's CA certificates for JWKS fetches: {e}");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (_, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::warn!("{ignored} system CA certificates could not be parsed and are not trusted");
    }
    client_config(roots)
}

/// A TLS client configuration trusting `roots` (aws-lc-rs, TLS 1.2 and 1.3).
pub fn client_config(
    roots: rustls::RootCertStore,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn get(uri: &str, tls: &Arc<rustls::ClientConfig>) -> Result<String, FetchError> {
    use http_body_util::Empty;
    let parsed: hyper::Uri = uri.parse().map_err(|_| FetchError::Uri(uri.to_string()))?;
    let secure = match parsed.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(FetchError::Scheme),
    };
    let host = parsed
        .host()
        .ok_or_else(|| FetchError::Uri(uri.to_string()))?;
    let port = parsed.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    let path = parsed.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .body(Empty::<hyper::body::Bytes>::new())
        .map_err(|e| FetchError::Http(e.to_string()))?;
    if !secure {
        return exchange(stream, request).await;
    }
    let name = rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|_| FetchError::Uri(uri.to_string()))?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, stream)
        .await
        .map_err(|e| FetchError::Tls(e.to_string()))?;
    exchange(stream, request).await
}

/// Sends `request` on a fresh HTTP/1.1 connection over `stream` and reads a 2xx body.
async fn exchange<S>(
    stream: S,
    request: hyper::Request<http_body_util::Empty<hyper::body::Bytes>>,
) -> Result<String, FetchError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|e| FetchError::Http(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::snapshot;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// No roots: enough for plain-HTTP fetches.
    fn no_roots() -> Arc<rustls::ClientConfig> {
        client_config(rustls::RootCertStore::empty()).unwrap()
    }

    #[test]
    fn wanted_lists_uris_without_inline_keys() {
        let config = snapshot(
            "
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules:
  - {issuer: a, jwksUri: 'http://keys.example/a', timeout: 2s}
  - {issuer: b, jwksUri: 'http://keys.example/b', jwks: '{\"keys\": []}'}
  - {issuer: c, jwksUri: 'http://keys.example/c'}
",
        );
        let wanted = wanted(&config);
        assert_eq!(
            wanted.into_iter().collect::<Vec<_>>(),
            [
                ("http://keys.example/a".to_string(), Duration::from_secs(2)),
                ("http://keys.example/c".to_string(), DEFAULT_TIMEOUT),
            ]
        );
    }

    /// A server on loopback that answers every connection with `response` (or, when
    /// `None`, reads and never answers).
    async fn server(response: Option<&'static str>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = socket.read(&mut buf).await;
                    match response {
                        Some(r) => {
                            let _ = socket.write_all(r.as_bytes()).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        format!("http://{address}/jwks")
    }

    #[tokio::test]
    async fn fetches_keys_and_gives_up_on_a_silent_server_in_time() {
        let ok = server(Some(
            "HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"keys\":[]}",
        ))
        .await;
        assert_eq!(
            fetch(&ok, DEFAULT_TIMEOUT, &no_roots()).await.unwrap(),
            "{\"keys\":[]}"
        );

        let silent = server(None).await;
        let err = fetch(&silent, Duration::from_millis(200), &no_roots())
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Timeout), "{err}");

        let missing = server(Some(
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ))
        .await;
        assert!(matches!(
            fetch(&missing, DEFAULT_TIMEOUT, &no_roots()).await,
            Err(FetchError::Status(404))
        ));
        assert!(matches!(
            fetch("ftp://keys.example/jwks", DEFAULT_TIMEOUT, &no_roots()).await,
            Err(FetchError::Scheme)
        ));
    }

    #[tokio::test]
    async fn the_fetcher_calls_back_once_keys_arrive_and_never_blocks_the_caller() {
        let ok = server(Some(
            "HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"keys\":[]}",
        ))
        .await;
        let silent = server(None).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let fetcher = JwksFetcher::new(no_roots(), move || {
            let _ = tx.send(());
        });
        fetcher.want(BTreeMap::from([
            (ok.clone(), DEFAULT_TIMEOUT),
            (silent.clone(), Duration::from_millis(100)),
        ]));
        assert_eq!(
            fetcher.cache(),
            JwksCache::default(),
            "nothing waits for a fetch"
        );
        rx.recv().await.unwrap();
        let cache = fetcher.cache();
        assert_eq!(cache.get(&ok).as_deref(), Some("{\"keys\":[]}"));
        assert_eq!(cache.get(&silent), None);
    }

    /// A TLS server on 127.0.0.1 with a certificate for that address from a fresh CA;
    /// returns its `https://` URI and the CA's certificate.
    async fn https_server(
        body: &'static str,
    ) -> (String, rustls_pki_types::CertificateDer<'static>) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let mut buf = [0u8; 1024];
                    let _ = tls.read(&mut buf).await;
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(reply.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (format!("https://{address}/jwks"), ca.der().clone())
    }

    #[tokio::test]
    async fn https_keys_are_fetched_from_a_trusted_server_and_refused_from_an_unknown_one() {
        let (uri, ca) = https_server("{\"keys\":[]}").await;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let trusting = client_config(roots).unwrap();
        assert_eq!(
            fetch(&uri, DEFAULT_TIMEOUT, &trusting).await.unwrap(),
            "{\"keys\":[]}"
        );
        let err = fetch(&uri, DEFAULT_TIMEOUT, &no_roots()).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Tls(m) if m.contains("UnknownIssuer")),
            "{err}"
        );
    }
}
