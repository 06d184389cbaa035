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
