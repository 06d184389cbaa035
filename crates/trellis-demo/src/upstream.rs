//! Calls from one app to another (productpage → details/reviews, reviews → ratings): one
//! new HTTP/1.1 connection per request, as Bookinfo's apps do on purpose so that load
//! spreads over every version behind a service, and one deadline for the whole exchange.
//! Tests use [`send`] as their HTTP client too.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HOST, HeaderMap, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

/// Largest response body read from another app.
const MAX_RESPONSE_BODY: usize = 1 << 20;

/// Where a service is reached: Bookinfo's `http://<host>:<port>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
}

impl Upstream {
    pub fn new(host: impl Into<String>, port: u16) -> Upstream {
        Upstream {
            host: host.into(),
            port,
        }
    }

    /// `host:port`, the address dialled and the `Host` header sent.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why a call to another app got no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("request to {authority} failed: {source}")]
    Http {
        authority: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("no response from {authority} within {timeout:?}")]
    Timeout {
        authority: String,
        timeout: Duration,
    },
}

/// A response from another app: status, headers and whole body.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Fetched {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` on `upstream` with `headers`, all within `timeout`.
pub async fn get(
    upstream: &Upstream,
    path: &str,
    headers: &HeaderMap,
    timeout: Duration,
) -> Result<Fetched, UpstreamError> {
    let request = Request::get(path).body(Bytes::new());
    send(upstream, request, headers, timeout).await
}

/// Sends `request` (its headers replaced by `headers` and `Host`) to `upstream`, all
/// within `timeout`.
pub async fn send(
    upstream: &Upstream,
    request: Result<Request<Bytes>, hyper::http::Error>,
    headers: &HeaderMap,
    timeout: Duration,
) -> Result<Fetched, UpstreamError> {
    let authority = upstream.authority();
    tokio::time::timeout(timeout, exchange(&authority, request, headers))
        .await
        .map_err(|_| UpstreamError::Timeout {
            authority: authority.clone(),
            timeout,
        })?
}

async fn exchange(
    authority: &str,
    request: Result<Request<Bytes>, hyper::http::Error>,
    headers: &HeaderMap,
) -> Result<Fetched, UpstreamError> {
    let http = |source: Box<dyn std::error::Error + Send + Sync>| UpstreamError::Http {
        authority: authority.to_string(),
        source,
    };
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|source| UpstreamError::Connect {
            authority: authority.to_string(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(e.into()))?;
    tokio::spawn(connection);
    let mut request = request.map_err(|e| http(e.into()))?.map(Full::new);
    *request.headers_mut() = headers.clone();
    let host = HeaderValue::from_str(authority).map_err(|e| http(e.into()))?;
    request.headers_mut().insert(HOST, host);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| http(e.into()))?;
    let status = response.status();
    let response_headers = response.headers().clone();
    let body = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
        .collect()
        .await
        .map_err(http)?
        .to_bytes();
    Ok(Fetched {
        status,
        headers: response_headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_brackets_ipv6() {
        assert_eq!(Upstream::new("reviews", 9080).authority(), "reviews:9080");
        assert_eq!(Upstream::new("::1", 9080).authority(), "[::1]:9080");
    }
}
