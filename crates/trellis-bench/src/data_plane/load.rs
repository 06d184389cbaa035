//! An open-loop, constant-rate HTTP load generator.
//!
//! Request `i` is due at `start + i / rate`, whatever happened to earlier requests; its
//! latency is measured from that intended send time, not from when a connection was free
//! to send it. A slow proxy therefore shows up as latency (as with `wrk2` or
//! `oha --latency-correction`) instead of silently lowering the offered rate (coordinated
//! omission). Each of the `connections` keeps one request in flight over HTTP/1.1
//! keep-alive, or all of them multiplex over HTTP/2 connections.
//!
//! The schedule is kept by a pacing thread with 1 ns timer slack, not by Tokio's timer:
//! Tokio's sleeps round up to whole milliseconds, which would add up to a millisecond of
//! waiting to every measured latency and drown what a proxy adds (a few hundred µs).
//! The pacer hands each due request to whichever worker is free.
//!
//! We keep our own generator rather than running `oha`: it is a few hundred lines over the
//! hyper client the proxy already uses, needs no second toolchain install in the benchmark
//! command, and lets gRPC framing and HTTP/2 share one schedule.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};

/// What to send and how fast.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub target: SocketAddr,
    /// The `Host` (`:authority`) the proxies route on.
    pub authority: String,
    pub protocol: Protocol,
    /// Requests per second offered.
    pub rate: f64,
    pub connections: usize,
    pub duration: Duration,
    /// Request body bytes (the echo server answers with as many).
    pub payload: usize,
}

/// The application protocol spoken to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    /// Unary gRPC over HTTP/2: a length-prefixed message, `grpc-status` in trailers.
    Grpc,
}

/// What came back.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Latency of each successful request from its intended send time.
    pub latencies: Vec<Duration>,
    pub errors: u64,
    pub elapsed: Duration,
}

impl LoadResult {
    /// Successful requests per second over the run.
    pub fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs the load to completion: every scheduled request is sent (late if it must) and
/// answered or failed, within `duration` plus a grace of 10 s for stragglers.
pub async fn run(spec: &LoadSpec) -> LoadResult {
    let total = (spec.rate * spec.duration.as_secs_f64()).round() as u64;
    let body = Bytes::from(vec![b'x'; spec.payload]);
    let workers = match spec.protocol {
        Protocol::Http1 => spec.connections.max(1),
        // Multiplexed: enough concurrent streams that a slow answer never delays the
        // schedule, spread over the connections.
        Protocol::Http2 | Protocol::Grpc => spec.connections.max(1) * 16,
    };
    let senders = connect_all(spec).await;
    let start = Instant::now() + Duration::from_millis(50);
    let due = pace(start, spec.rate, total);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let sender = senders.get(w % senders.len().max(1)).cloned();
        let (due, body, spec) = (due.clone(), body.clone(), spec.clone());
        tasks.push(tokio::spawn(async move {
            worker(sender, &spec, &due, body).await
        }));
    }
    let deadline = tokio::time::sleep(spec.duration + Duration::from_secs(10));
    tokio::pin!(deadline);
    let mut result = LoadResult::default();
    for task in tasks {
        tokio::select! {
            done = task => if let Ok((lat, errors)) = done {
                result.latencies.extend(lat);
                result.errors += errors;
            },
            _ = &mut deadline => { result.errors += 1; }
        }
    }
    let sent = result.latencies.len() as u64 + result.errors;
    result.errors += total.saturating_sub(sent);
    result.elapsed = start.elapsed();
    result
}

/// The intended send times, each released when it comes: request `i` is due at
/// `start + i / rate`. Workers share the receiving end; it closes after the last one.
type Schedule = Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>;

/// Starts the pacing thread (on the load generator's CPUs) for `total` requests.
fn pace(start: Instant, rate: f64, total: u64) -> Schedule {
    let (tx, rx) = mpsc::unbounded_channel();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-6));
    std::thread::spawn(move || {
        crate::pinning::pin_load_thread();
        // Wake within microseconds of the due time, not the default 50 µs slack.
        let _ = nix::sys::prctl::set_timerslack(1);
        for i in 0..total {
            let due = start + interval.mul_f64(i as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if tx.send(due).is_err() {
                return;
            }
        }
    });
    Arc::new(Mutex::new(rx))
}

/// A handle that sends one request and waits for its answer.
#[derive(Clone)]
enum Sender {
    /// HTTP/1.1: one connection per worker, opened lazily (and reopened after an error).
    Http1,
    Http2(http2::SendRequest<Full<Bytes>>),
}

async fn connect_all(spec: &LoadSpec) -> Vec<Sender> {
    match spec.protocol {
        Protocol::Http1 => vec![Sender::Http1],
        Protocol::Http2 | Protocol::Grpc => {
            let mut out = Vec::new();
            for _ in 0..spec.connections.max(1) {
                if let Ok(s) = connect_h2(spec.target).await {
                    out.push(Sender::Http2(s));
                }
            }
            out
        }
    }
}

async fn connect_h1(target: SocketAddr) -> Result<http1::SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(target)
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn connect_h2(target: SocketAddr) -> Result<http2::SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(target)
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn worker(
    sender: Option<Sender>,
    spec: &LoadSpec,
    schedule: &Schedule,
    body: Bytes,
) -> (Vec<Duration>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut h1: Option<http1::SendRequest<Full<Bytes>>> = None;
    loop {
        let Some(due) = schedule.lock().await.recv().await else {
            break;
        };
        let ok = match &sender {
            Some(Sender::Http2(s)) => send_h2(s.clone(), spec, body.clone()).await,
            Some(Sender::Http1) => send_h1(&mut h1, spec, body.clone()).await,
            None => false,
        };
        if ok {
            latencies.push(due.elapsed());
        } else {
            errors += 1;
        }
    }
    (latencies, errors)
}

fn request(spec: &LoadSpec, body: Bytes) -> Option<hyper::Request<Full<Bytes>>> {
    let builder = hyper::Request::post(format!("http://{}/echo", spec.authority));
    let builder = match spec.protocol {
        Protocol::Grpc => builder
            .uri(format!("http://{}/trellis.bench.Echo/Echo", spec.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers"),
        _ => builder.header("host", &spec.authority),
    };
    let body = match spec.protocol {
        Protocol::Grpc => grpc_frame(&body),
        _ => body,
    };
    builder.body(Full::new(body)).ok()
}

/// A gRPC message: uncompressed flag, 4-byte big-endian length, the bytes.
pub fn grpc_frame(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    Bytes::from(out)
}

async fn send_h1(
    conn: &mut Option<http1::SendRequest<Full<Bytes>>>,
    spec: &LoadSpec,
    body: Bytes,
) -> bool {
    if conn.as_ref().is_none_or(|c| c.is_closed()) {
        *conn = connect_h1(spec.target).await.ok();
    }
    let (Some(sender), Some(req)) = (conn.as_mut(), request(spec, body)) else {
        return false;
    };
    if sender.ready().await.is_err() {
        *conn = None;
        return false;
    }
    match sender.send_request(req).await {
        Ok(resp) => {
            let ok = resp.status().is_success();
            ok & resp.into_body().collect().await.is_ok()
        }
        Err(_) => {
            *conn = None;
            false
        }
    }
}

async fn send_h2(
    mut sender: http2::SendRequest<Full<Bytes>>,
    spec: &LoadSpec,
    body: Bytes,
) -> bool {
    let Some(req) = request(spec, body) else {
        return false;
    };
    if sender.ready().await.is_err() {
        return false;
    }
    let Ok(resp) = sender.send_request(req).await else {
        return false;
    };
    if !resp.status().is_success() {
        return false;
    }
    match resp.into_body().collect().await {
        Ok(collected) => match spec.protocol {
            Protocol::Grpc => collected
                .trailers()
                .and_then(|t| t.get("grpc-status"))
                .is_some_and(|s| s == "0"),
            _ => true,
        },
        Err(_) => false,
    }
}
