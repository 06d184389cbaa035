//! JWKS of `jwksUri`s, fetched by the control plane and sent to proxies inline (as Istio
//! does): [`JwksCache`] is what translation reads (pure); [`JwksFetcher`] fetches in the
//! background with a timeout, one URI at a time per task, and calls back when something
//! new arrived so that the mesh is rebuilt and pushed. A slow or dead endpoint never holds
//! up configuration: until its keys arrive, translation stands in keys that verify nothing.

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
}

#[derive(Default)]
struct FetchState {
    cache: JwksCache,
    in_flight: BTreeSet<String>,
    /// What the configuration names now; a failing URI no longer named stops retrying.
    wanted: BTreeSet<String>,
}

impl JwksFetcher {
    /// `on_new` runs (on a background task) each time a key set arrives or changes.
    pub fn new(on_new: impl Fn() + Send + Sync + 'static) -> Self {
        JwksFetcher {
            state: Arc::default(),
            on_new: Arc::new(on_new),
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
            match fetch(&uri, timeout).await {
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
    #[error("only http:// JWKS URIs can be fetched by Trellis")]
    Scheme,
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

/// One GET of `uri` (plain HTTP/1.1), bounded by `timeout`.
pub async fn fetch(uri: &str, timeout: Duration) -> Result<String, FetchError> {
    tokio::time::timeout(timeout, get(uri))
        .await
        .map_err(|_| FetchError::Timeout)?
}

async fn get(uri: &str) -> Result<String, FetchError> {
    use http_body_util::{BodyExt, Empty};
    let parsed: hyper::Uri = uri.parse().map_err(|_| FetchError::Uri(uri.to_string()))?;
    if parsed.scheme_str() != Some("http") {
        return Err(FetchError::Scheme);
    }
    let host = parsed
        .host()
        .ok_or_else(|| FetchError::Uri(uri.to_string()))?;
    let port = parsed.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
    tokio::spawn(connection);
    let path = parsed.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .body(Empty::<hyper::body::Bytes>::new())
        .map_err(|e| FetchError::Http(e.to_string()))?;
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
        assert_eq!(fetch(&ok, DEFAULT_TIMEOUT).await.unwrap(), "{\"keys\":[]}");

        let silent = server(None).await;
        let err = fetch(&silent, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Timeout), "{err}");

        let missing = server(Some(
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ))
        .await;
        assert!(matches!(
            fetch(&missing, DEFAULT_TIMEOUT).await,
            Err(FetchError::Status(404))
        ));
        assert!(matches!(
            fetch("https://keys.example/jwks", DEFAULT_TIMEOUT).await,
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
        let fetcher = JwksFetcher::new(move || {
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
}
