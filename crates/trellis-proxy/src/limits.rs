//! Bad input on the request path, bounded with Envoy's defaults: header size and count,
//! the time a client may take to send its headers, HTTP/2 concurrency, header names with
//! underscores, and clients that reset their HTTP/2 streams as fast as they open them
//! ("rapid reset").
//!
//! Most of it is hyper's own parser and codec, configured here ([`configure`]); the rest
//! are plain decisions ([`underscores`], [`PrematureResets`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::HeaderMap;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::Notify;

/// Envoy's `max_request_headers_kb` default.
pub const DEFAULT_MAX_REQUEST_HEADERS_KB: u32 = 60;
/// Envoy's `max_request_headers_count` default (hyper's too).
pub const MAX_REQUEST_HEADERS_COUNT: usize = 100;
/// When `request_headers_timeout` is unset: Envoy's `stream_idle_timeout` default, which
/// is what ends a stream whose headers never finish in Envoy.
pub const DEFAULT_REQUEST_HEADERS_TIMEOUT: Duration = Duration::from_secs(300);
/// Envoy's HTTP/2 `max_concurrent_streams` default.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 2_147_483_647;
/// Envoy's `overload.premature_reset_total_stream_count` default.
pub const PREMATURE_RESET_STREAMS: u64 = 500;
/// Envoy's `overload.premature_reset_min_stream_lifetime_seconds` default.
pub const PREMATURE_RESET_LIFETIME: Duration = Duration::from_secs(1);
/// HTTP/2 streams reset by the client before the server accepted them, at most (h2's
/// protection against rapid reset: beyond it, GOAWAY `ENHANCE_YOUR_CALM`).
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// The connection manager's limits (`max_request_headers_kb`, `request_headers_timeout`,
/// `common_http_protocol_options.headers_with_underscores_action`,
/// `http2_protocol_options.max_concurrent_streams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub max_request_headers_kb: u32,
    pub request_headers_timeout: Duration,
    pub underscores: Underscores,
    pub max_concurrent_streams: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_request_headers_kb: DEFAULT_MAX_REQUEST_HEADERS_KB,
            request_headers_timeout: DEFAULT_REQUEST_HEADERS_TIMEOUT,
            underscores: Underscores::Allow,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
        }
    }
}

/// Envoy's `headers_with_underscores_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Underscores {
    #[default]
    Allow,
    /// 400 `unexpected_underscore`.
    Reject,
    /// The header is dropped before routing.
    Drop,
}

/// A server connection builder with these limits: headers beyond the size (HTTP/1: 431;
/// HTTP/2: the stream is refused) or count (431) are refused, headers that take longer than
/// the timeout close the connection, and HTTP/2 streams are bounded.
pub fn configure(limits: &HttpLimits) -> auto::Builder<TokioExecutor> {
    let header_bytes = usize::try_from(limits.max_request_headers_kb)
        .unwrap_or(usize::MAX)
        .saturating_mul(1024);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_headers_timeout)
        // hyper's minimum buffer is 8 KiB.
        .max_buf_size(header_bytes.max(8192))
        .max_headers(MAX_REQUEST_HEADERS_COUNT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS);
    builder
}

/// Applies `headers_with_underscores_action`: true when the request must be refused
/// (400), after dropping such headers if that is the action.
pub fn refuse_underscores(action: Underscores, headers: &mut HeaderMap) -> bool {
    if action == Underscores::Allow {
        return false;
    }
    let offending: Vec<_> = headers
        .keys()
        .filter(|n| n.as_str().contains('_'))
        .cloned()
        .collect();
    if offending.is_empty() {
        return false;
    }
    if action == Underscores::Reject {
        return true;
    }
    for name in offending {
        headers.remove(name);
    }
    false
}

/// Envoy's premature-reset protection, per downstream connection: once at least
/// [`PREMATURE_RESET_STREAMS`] streams have ended and half or more of them were reset by
/// the client within [`PREMATURE_RESET_LIFETIME`] of opening (or half that many before),
/// the connection is closed.
#[derive(Debug, Default)]
pub struct PrematureResets {
    closed: AtomicU64,
    premature: AtomicU64,
    tripped: Notify,
}

impl PrematureResets {
    /// A guard for one stream, to be dropped when the stream ends; [`StreamGuard::done`]
    /// marks a stream that the proxy answered (not reset).
    pub fn stream(self: &Arc<Self>) -> StreamGuard {
        StreamGuard {
            resets: self.clone(),
            opened: Instant::now(),
            answered: false,
        }
    }

    /// Resolves once the connection has had too many premature resets.
    pub async fn tripped(&self) {
        self.tripped.notified().await;
    }

    fn ended(&self, premature: bool) {
        let closed = self.closed.fetch_add(1, Ordering::Relaxed) + 1;
        let resets = self.premature.load(Ordering::Relaxed) + u64::from(premature);
        if premature {
            self.premature.fetch_add(1, Ordering::Relaxed);
        }
        if too_many(closed, resets) {
            self.tripped.notify_one();
        }
    }
}

/// Envoy's rule: before the total is reached, half of it in resets; after, half of all.
fn too_many(closed: u64, premature: u64) -> bool {
    let limit = if closed < PREMATURE_RESET_STREAMS {
        PREMATURE_RESET_STREAMS
    } else {
        closed
    };
    premature > 0 && premature * 2 >= limit
}

/// One stream of a [`PrematureResets`] connection.
#[derive(Debug)]
pub struct StreamGuard {
    resets: Arc<PrematureResets>,
    opened: Instant,
    answered: bool,
}

impl StreamGuard {
    /// The proxy produced the response: the stream was not reset before it.
    pub fn done(&mut self) {
        self.answered = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let premature = !self.answered && self.opened.elapsed() < PREMATURE_RESET_LIFETIME;
        self.resets.ended(premature);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn underscore_actions() {
        let mut h = HeaderMap::new();
        h.insert("x_user", HeaderValue::from_static("a"));
        h.insert("x-ok", HeaderValue::from_static("b"));
        assert!(!refuse_underscores(Underscores::Allow, &mut h.clone()));
        assert!(refuse_underscores(Underscores::Reject, &mut h.clone()));
        assert!(!refuse_underscores(Underscores::Drop, &mut h));
        assert!(h.get("x_user").is_none() && h.get("x-ok").is_some());
    }

    #[test]
    fn premature_reset_thresholds_follow_envoy() {
        assert!(!too_many(10, 0));
        assert!(!too_many(100, 249));
        assert!(too_many(250, 250));
        assert!(!too_many(1000, 499));
        assert!(too_many(1000, 500));
    }

    #[test]
    fn guards_count_unanswered_streams_as_premature_resets() {
        let resets = Arc::new(PrematureResets::default());
        for _ in 0..10 {
            let mut g = resets.stream();
            g.done();
        }
        for _ in 0..5 {
            drop(resets.stream());
        }
        assert_eq!(resets.closed.load(Ordering::Relaxed), 15);
        assert_eq!(resets.premature.load(Ordering::Relaxed), 5);
    }
}
