//! The request path, as a short list of named phases, each a plain function:
//!
//! 1. [`prepare`]: request id, `x-forwarded-proto`, path normalization;
//! 2. [`select_route`]: virtual host and route from the snapshot the request started with;
//! 3. [`inject_fault`]: the fault filter's delay and abort;
//! 4. [`forward`]: cluster (weighted), host (load balancer), circuit breakers, the upstream
//!    request with per-try timeout, retries with backoff, the route timeout over all;
//! 5. [`finish`]: response header mutations, `server`, and the access log line.
//!
//! Failures are [`LocalReply`]s: one status, body, flag and details per cause.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Request, Response, StatusCode, Uri};

use crate::Proxy;
use crate::config::{
    Action, Forward, HeaderAdd, HttpManager, Redirect, RetryPolicy, Route, RouteSource, Snapshot,
};
use crate::flags::{Flag, Flags, LocalReply};
use crate::telemetry::Report;
use crate::telemetry::body::Counted;
use crate::telemetry::labels::{Protocol, Reporter};
use crate::telemetry::peer::Peer;
use crate::tls::client::UpstreamPeer;
use crate::upstream::{Body, ClusterStats, HostGuard};
use crate::{lb, routing};

/// Requests with bodies up to this size are buffered so that a retry can resend them.
const RETRY_BUFFER: u64 = 64 * 1024;

mod access_log;

/// The downstream connection a request came on.
#[derive(Debug, Clone)]
pub struct Downstream {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Came on an inbound listener: telemetry reports it as the destination.
    pub inbound: bool,
    /// What terminating TLS proved about the client; `None` in plain text.
    pub tls: Option<Arc<crate::tls::server::Peer>>,
    /// Envoy's `%CONNECTION_ID%`: unique per proxy.
    pub id: u64,
}

impl Downstream {
    /// The verified client certificate's principal: the connection is mutual TLS.
    pub fn principal(&self) -> Option<&Arc<str>> {
        self.tls.as_ref()?.principal.as_ref()
    }

    /// The SNI of a TLS connection.
    pub fn server_name(&self) -> Option<&str> {
        self.tls.as_ref()?.server_name.as_deref()
    }

    pub fn reporter(&self) -> Reporter {
        if self.inbound {
            Reporter::Destination
        } else {
            Reporter::Source
        }
    }
}

/// What the access log and the metrics say about one request.
#[derive(Debug, Default)]
struct Outcome {
    flags: Flags,
    details: String,
    transport_failure: String,
    cluster: String,
    upstream: Option<SocketAddr>,
    /// Outbound: the endpoint's workload (its metadata, or its metadata-exchange answer).
    destination: Option<Arc<Peer>>,
    /// Outbound over TLS: the upstream certificate's principal.
    upstream_principal: Option<Arc<str>>,
    route: String,
    request_body: RequestBody,
}

/// Request body bytes: known when buffered, counted as they stream otherwise.
#[derive(Debug)]
enum RequestBody {
    Known(u64),
    Streamed(Arc<AtomicU64>),
}

impl Default for RequestBody {
    fn default() -> Self {
        RequestBody::Known(0)
    }
}

impl RequestBody {
    fn bytes(&self) -> u64 {
        match self {
            RequestBody::Known(n) => *n,
            RequestBody::Streamed(n) => n.load(Ordering::Relaxed),
        }
    }
}

/// What is kept of the request for its report, taken before it moves upstream.
#[derive(Debug)]
struct Received {
    start: Instant,
    start_wall: SystemTime,
    method: hyper::Method,
    path: String,
    version: hyper::Version,
    authority: String,
    /// Only kept when the connection manager has access logs.
    headers: Option<HeaderMap>,
    header_bytes: u64,
    protocol: Protocol,
    reporter: Reporter,
    /// Inbound: the source workload, from metadata exchange.
    source: Option<Arc<Peer>>,
}

pub async fn handle(
    proxy: Arc<Proxy>,
    hcm: Arc<HttpManager>,
    downstream: Downstream,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let start = Instant::now();
    proxy
        .stats
        .downstream_rq_total
        .fetch_add(1, Ordering::Relaxed);
    // The snapshot this request runs on, to its end.
    let snapshot = proxy.config.load_full();
    let hcm = &*hcm;
    prepare(hcm, &mut req);
    crate::xfcc::apply(&hcm.xfcc, downstream.tls.as_deref(), req.headers_mut());
    let logging = !hcm.access_logs.is_empty();
    let received = receive(&proxy, &downstream, &mut req, start, logging);
    if crate::limits::refuse_underscores(hcm.limits.underscores, req.headers_mut()) {
        let mut outcome = Outcome::default();
        let reply = LocalReply::bad_request("unexpected_underscore");
        let response = local(reply, &mut outcome);
        return finish(&proxy, hcm, response, outcome, received, downstream);
    }
    let (authority, path) = (received.authority.as_str(), received.path.as_str());
    let mut outcome = Outcome::default();
    let refused = crate::authz::decode_headers(&proxy, hcm, &downstream, &mut req);
    let response = match (
        refused,
        select_route(&snapshot, hcm, authority, path, req.headers()),
    ) {
        // Envoy refuses an upgrade before any filter runs.
        (_, Some(route))
            if crate::upgrade::refused(&hcm.upgrades, route, received.version, req.headers()) =>
        {
            outcome.route = route.name.clone();
            outcome.details = "upgrade_failed".into();
            reply(403, String::new())
        }
        (Some(reply), route) => {
            // Envoy's filters resolve the route first: the log names it and its cluster.
            outcome.route = route.map(|r| r.name.clone()).unwrap_or_default();
            outcome.cluster = route
                .and_then(crate::routing::sole_cluster)
                .unwrap_or_default();
            local(reply, &mut outcome)
        }
        (None, None) => local(LocalReply::no_route(), &mut outcome),
        (None, Some(route)) => {
            outcome.route = route.name.clone();
            match inject_fault(&proxy, hcm, route, &mut outcome).await {
                Some(reply) => local(reply, &mut outcome),
                None => {
                    let cors = crate::cors::filter(
                        hcm.cors,
                        route.cors.as_deref(),
                        received.method.as_str(),
                        req.headers(),
                    );
                    let mut response = match &route.action {
                        _ if matches!(cors, crate::cors::Decision::Preflight(_)) => {
                            outcome.details = "cors_response".into();
                            reply(200, String::new())
                        }
                        Action::Direct { status, body } => {
                            outcome.details = "direct_response".into();
                            proxy
                                .stats
                                .inc(&format!("http.{}.rq_direct_response", hcm.stat_prefix));
                            reply(*status, body.clone().unwrap_or_default())
                        }
                        Action::Redirect(r) => {
                            outcome.details = "direct_response".into();
                            proxy
                                .stats
                                .inc(&format!("http.{}.rq_redirect", hcm.stat_prefix));
                            redirect(r, authority, path)
                        }
                        Action::Forward(f) => {
                            let response = forward(
                                &proxy,
                                &snapshot,
                                route,
                                f,
                                &downstream,
                                req,
                                &mut outcome,
                            )
                            .await;
                            count_cluster_outcome(&snapshot, &outcome);
                            response
                        }
                    };
                    mutate(
                        response.headers_mut(),
                        &route.headers.response_add,
                        &route.headers.response_remove,
                    );
                    crate::cors::apply(&cors, response.headers_mut());
                    response
                }
            }
        }
    };
    finish(&proxy, hcm, response, outcome, received, downstream)
}

/// What the report needs of the request; inbound, the source's metadata-exchange headers
/// are read and removed here.
fn receive(
    proxy: &Proxy,
    downstream: &Downstream,
    req: &mut Request<Incoming>,
    start: Instant,
    logging: bool,
) -> Received {
    let reporter = downstream.reporter();
    let source = match reporter {
        Reporter::Destination => proxy.telemetry.peers.take(req.headers_mut()),
        Reporter::Source => None,
    };
    let headers = req.headers();
    let grpc = headers
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".into(), |p| p.to_string());
    let authority = authority(req);
    Received {
        start,
        start_wall: SystemTime::now(),
        method: req.method().clone(),
        header_bytes: header_bytes(headers)
            + (req.method().as_str().len() + path.len() + authority.len()) as u64,
        path,
        version: req.version(),
        authority,
        headers: logging.then(|| headers.clone()),
        protocol: if grpc { Protocol::Grpc } else { Protocol::Http },
        reporter,
        source,
    }
}

/// Envoy's header map size: names and values (pseudo-headers counted by the caller).
fn header_bytes(h: &HeaderMap) -> u64 {
    h.iter()
        .map(|(k, v)| (k.as_str().len() + v.len()) as u64)
        .sum()
}

/// Phase 1.
fn prepare(hcm: &HttpManager, req: &mut Request<Incoming>) {
    let headers = req.headers_mut();
    if hcm.generate_request_id && !headers.contains_key("x-request-id") {
        let id = uuid_v4(&mut fastrand::Rng::new());
        if let Ok(v) = HeaderValue::from_str(&id) {
            headers.insert("x-request-id", v);
        }
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    if hcm.normalize_path
        && let Some(pq) = req.uri().path_and_query()
    {
        let normalized = normalize(pq.path());
        if normalized != pq.path() {
            let rebuilt = match pq.query() {
                Some(q) => format!("{normalized}?{q}"),
                None => normalized,
            };
            set_path(req, &rebuilt);
        }
    }
}

/// RFC 3986 dot-segment removal, as Envoy's `normalize_path`. Like Envoy's canonicalizer,
/// a percent-encoded dot (`%2e`, `%2E`) counts as a dot, so `/public/%2e%2e/private` is
/// `/private` before routing and authorization see it.
pub fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let trailing = path.ends_with('/') || segments.last().is_some_and(|s| dots(s).is_some());
    for seg in segments {
        match dots(seg) {
            Some(1) => {}
            Some(_) => {
                out.pop();
            }
            None => out.push(seg),
        }
    }
    let mut s = String::from("/");
    s.push_str(&out.join("/"));
    if trailing && !s.ends_with('/') && !out.is_empty() && out.last() != Some(&"") {
        s.push('/');
    }
    s
}

/// `Some(1)` for a `.` segment, `Some(2)` for `..`, either spelled with `%2e`.
fn dots(segment: &str) -> Option<u8> {
    if segment.len() > "%2e%2e".len() {
        return None;
    }
    match segment.to_ascii_lowercase().replace("%2e", ".").as_str() {
        "." => Some(1),
        ".." => Some(2),
        _ => None,
    }
}

fn uuid_v4(rng: &mut fastrand::Rng) -> String {
    let a = rng.u128(..);
    let b =
        (a & !(0xf000u128 << 64) | (0x4000u128 << 64)) & !(0xc000u128 << 48) | (0x8000u128 << 48);
    let h = format!("{b:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn authority(req: &Request<Incoming>) -> String {
    req.uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| header_opt(req.headers(), "host"))
        .unwrap_or_default()
}

fn header_opt(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Phase 2.
fn select_route<'a>(
    snapshot: &'a Snapshot,
    hcm: &'a HttpManager,
    authority: &str,
    path: &str,
    headers: &HeaderMap,
) -> Option<&'a Route> {
    let rc = match &hcm.route_config {
        RouteSource::Rds(name) => snapshot.routes.get(name)?,
        RouteSource::Inline(rc) => rc,
    };
    let vh = routing::virtual_host(rc, authority)?;
    routing::route(vh, path, headers)
}

/// The cluster's own counters for a local failure (Envoy's `cluster.<name>.*`).
fn count_cluster_outcome(snapshot: &Snapshot, outcome: &Outcome) {
    let Some(cluster) = snapshot.clusters.get(&outcome.cluster) else {
        return;
    };
    let stats = &cluster.runtime.stats;
    for f in outcome.flags.iter() {
        let counter = match f {
            Flag::UpstreamTimeout => &stats.upstream_rq_timeout,
            Flag::UpstreamConnectFailure => &stats.upstream_cx_connect_fail,
            Flag::NoHealthyUpstream => &stats.upstream_cx_none_healthy,
            Flag::Overflow => &stats.upstream_rq_pending_overflow,
            _ => continue,
        };
        ClusterStats::inc(counter);
    }
}

/// Phase 3: the delay, then the abort, each by its own percentage.
async fn inject_fault(
    proxy: &Proxy,
    hcm: &HttpManager,
    route: &Route,
    outcome: &mut Outcome,
) -> Option<LocalReply> {
    let fault = route.fault.as_ref()?;
    let mut rng = fastrand::Rng::new();
    if let Some((delay, pct)) = fault.delay
        && rng.u32(..1_000_000) < pct
    {
        outcome.flags.insert(Flag::DelayInjected);
        proxy
            .stats
            .inc(&format!("http.{}.fault.delays_injected", hcm.stat_prefix));
        tokio::time::sleep(delay).await;
    }
    if let Some((abort, pct)) = fault.abort
        && rng.u32(..1_000_000) < pct
    {
        proxy
            .stats
            .inc(&format!("http.{}.fault.aborts_injected", hcm.stat_prefix));
        return Some(match abort {
            crate::config::FaultAbort::Http(status) => LocalReply::fault_abort(status),
            crate::config::FaultAbort::Grpc(_) => LocalReply::fault_abort(200),
        });
    }
    None
}

/// Phase 4.
async fn forward(
    proxy: &Proxy,
    snapshot: &Snapshot,
    route: &Route,
    f: &Forward,
    downstream: &Downstream,
    mut req: Request<Incoming>,
    outcome: &mut Outcome,
) -> Response<Body> {
    let mut rng = fastrand::Rng::new();
    let Some(cluster_name) = lb::weighted(&f.clusters, &mut rng) else {
        return local(LocalReply::no_cluster(), outcome);
    };
    outcome.cluster = cluster_name.to_string();
    let Some(cluster) = snapshot.clusters.get(cluster_name) else {
        return local(LocalReply::no_cluster(), outcome);
    };
    let runtime = &cluster.runtime;
    // Rewrite the request once; every attempt sends the same.
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".into(), |p| p.to_string());
    let new_path = rewrite_path(f, route, &path);
    let host = f.host_rewrite.clone().unwrap_or_else(|| authority(&req));
    let mut upgrade = crate::upgrade::Pending::take(&mut req);
    mutate(
        req.headers_mut(),
        &route.headers.request_add,
        &route.headers.request_remove,
    );
    strip_hop_by_hop(req.headers_mut());
    if let Some(u) = &upgrade {
        u.restore_headers(req.headers_mut());
    }
    if let Ok(v) = HeaderValue::from_str(&host) {
        req.headers_mut().insert(hyper::header::HOST, v);
    }
    let timeout = grpc_timeout(f, req.headers()).or(f.timeout);
    // Consistent hashing: the key from the route's hash policies.
    let (hash_key, set_cookie) = if cluster.lb.consistent() && !f.hash_policy.is_empty() {
        crate::hash::request_hash(
            &f.hash_policy,
            req.headers(),
            req.uri().query(),
            downstream.remote,
        )
    } else {
        (None, None)
    };
    let (parts, body) = req.into_parts();
    // Buffer small bodies so retries can resend them; larger ones stream, once.
    let retry = f.retry.clone().unwrap_or(RetryPolicy {
        num_retries: 0,
        ..Default::default()
    });
    let replayable = body_size_hint(&body).is_some_and(|n| n <= RETRY_BUFFER);
    let (buffered, mut streaming) = if replayable {
        match body.collect().await {
            Ok(b) => {
                let b = b.to_bytes();
                outcome.request_body = RequestBody::Known(b.len() as u64);
                (Some(b), None)
            }
            Err(_) => return local(LocalReply::reset(), outcome),
        }
    } else {
        let total = Arc::new(AtomicU64::new(0));
        outcome.request_body = RequestBody::Streamed(total.clone());
        (None, Some(Counted::into(body, total)))
    };
    if let Some(body) = &buffered {
        shadow(proxy, snapshot, f, &parts, body, &host, &new_path, &mut rng);
    }
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let all_hosts = snapshot.hosts(cluster);
    // Outlier detection: ejected hosts leave the set (all come back in panic).
    let hosts = match &cluster.outlier {
        Some(o) => Arc::new(runtime.outlier.healthy(
            o,
            &all_hosts,
            cluster.panic_threshold,
            Instant::now(),
        )),
        None => all_hosts.clone(),
    };
    let observe = |host: SocketAddr, result: crate::outlier::Result, rng: &mut fastrand::Rng| {
        if let Some(o) = &cluster.outlier {
            let roll = rng.u32(..100);
            runtime
                .outlier
                .record(o, host, result, all_hosts.len(), Instant::now(), roll);
        }
    };
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut attempt = 0u32;
    let sent = Instant::now();
    loop {
        // Choose the host.
        let target = match &cluster.discovery {
            // Without capture the original destination is this listener itself: a loop
            // (Envoy would connect to itself until it runs out of sockets).
            crate::config::Discovery::OriginalDst => (!proxy.listeners.is_bound(downstream.local))
                .then(|| Arc::new(crate::upstream::Host::new(downstream.local, 1))),
            _ => {
                let exclude = if retry.avoid_previous_hosts {
                    tried.as_slice()
                } else {
                    &[]
                };
                match hash_key {
                    Some(key) => runtime.choose_hashed(cluster.lb, &hosts, key, exclude),
                    None => lb::choose(cluster.lb, &hosts, &runtime.next, exclude, &mut rng),
                }
            }
        };
        let Some(target) = target else {
            return local(LocalReply::no_healthy_upstream(), outcome);
        };
        let Some(_slot) = runtime.admit(&cluster.limits) else {
            proxy
                .stats
                .upstream_rq_pending_overflow
                .fetch_add(1, Ordering::Relaxed);
            return local(LocalReply::overflow(), outcome);
        };
        outcome.upstream = Some(target.address);
        outcome.destination = target.workload.clone();
        tried.push(target.address);
        let guard = HostGuard::new(target.clone());
        let uri: Uri = match cluster.upstream_uri(&target, &new_path) {
            Ok(u) => u,
            Err(_) => return local(LocalReply::no_route(), outcome),
        };
        let body: Body = match (&buffered, streaming.take()) {
            (Some(b), _) => Full::new(b.clone()).map_err(|never| match never {}).boxed(),
            (None, Some(s)) => s.boxed(),
            (None, None) => http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed(),
        };
        let mut upstream_req = Request::from_parts(parts.clone(), body);
        *upstream_req.uri_mut() = uri;
        *upstream_req.version_mut() = hyper::Version::HTTP_11;
        // Metadata exchange: a mesh endpoint learns who calls it.
        if downstream.reporter() == Reporter::Source && target.workload.is_some() {
            proxy.telemetry.own.insert(upstream_req.headers_mut());
        }
        let per_try = retry.per_try_timeout;
        let attempt_deadline = match (deadline, per_try) {
            (Some(d), Some(p)) => Some(d.min(tokio::time::Instant::now() + p)),
            (Some(d), None) => Some(d),
            (None, Some(p)) => Some(tokio::time::Instant::now() + p),
            (None, None) => None,
        };
        let send = runtime.client.request(upstream_req);
        let result = match attempt_deadline {
            Some(d) => tokio::time::timeout_at(d, send).await.map_err(|_| ()),
            None => Ok(send.await),
        };
        let observed = match &result {
            Err(()) => crate::outlier::Result::Timeout,
            Ok(Err(_)) => crate::outlier::Result::LocalFailure,
            Ok(Ok(r)) => crate::outlier::Result::Status(r.status().as_u16()),
        };
        observe(target.address, observed, &mut rng);
        let failure = match result {
            Err(()) => {
                let overall = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                if overall || !retry.on.any() {
                    return local(LocalReply::timeout(), outcome);
                }
                // A per-try timeout is retried on 5xx / gateway-error / reset, as Envoy.
                if !(retry.on.server_error || retry.on.gateway_error || retry.on.reset) {
                    return local(LocalReply::timeout(), outcome);
                }
                LocalReply::timeout()
            }
            Ok(Err(e)) if e.is_connect() => {
                let reply = LocalReply::connect_failure(&connect_reason(&e));
                if !(retry.on.connect_failure
                    || retry.on.reset
                    || retry.on.gateway_error
                    || retry.on.server_error)
                {
                    return local(reply, outcome);
                }
                reply
            }
            Ok(Err(_)) => {
                let reply = LocalReply::reset();
                if !(retry.on.reset || retry.on.gateway_error || retry.on.server_error) {
                    return local(reply, outcome);
                }
                reply
            }
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                if !retriable_status(&retry, status, response.headers())
                    || attempt >= retry.num_retries
                    || buffered.is_none()
                {
                    drop(guard);
                    outcome.details = "via_upstream".into();
                    let (mut parts, body) = response.into_parts();
                    if let Some(UpstreamPeer(p)) = parts.extensions.get::<UpstreamPeer>() {
                        outcome.upstream_principal = p.clone();
                    }
                    strip_hop_by_hop(&mut parts.headers);
                    if downstream.reporter() == Reporter::Source
                        && let Some(peer) = proxy.telemetry.peers.take(&mut parts.headers)
                    {
                        outcome.destination = Some(peer);
                    }
                    let elapsed = sent.elapsed().as_millis().to_string();
                    if let Ok(v) = HeaderValue::from_str(&elapsed) {
                        parts.headers.insert("x-envoy-upstream-service-time", v);
                    }
                    if let Some(v) = set_cookie
                        .as_deref()
                        .and_then(|c| HeaderValue::from_str(c).ok())
                    {
                        parts.headers.append(hyper::header::SET_COOKIE, v);
                    }
                    let response = Response::from_parts(parts, body.boxed());
                    return match upgrade.take() {
                        Some(u) => u.complete(response),
                        None => response,
                    };
                }
                // Drain nothing: the response is dropped and retried.
                LocalReply::new_status(status)
            }
        };
        drop(guard);
        // Retry?
        if attempt >= retry.num_retries || buffered.is_none() {
            if attempt > 0 {
                outcome.flags.insert(Flag::RetryLimitExceeded);
            }
            return local(failure, outcome);
        }
        let Some(_retry_slot) = runtime.admit_retry(&cluster.limits) else {
            return local(failure, outcome);
        };
        attempt += 1;
        proxy
            .stats
            .upstream_rq_retry
            .fetch_add(1, Ordering::Relaxed);
        ClusterStats::inc(&runtime.stats.upstream_rq_retry);
        let backoff = retry_backoff(&retry, attempt, &mut rng);
        if deadline.is_some_and(|d| tokio::time::Instant::now() + backoff >= d) {
            return local(LocalReply::timeout(), outcome);
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Mirroring: for each mirror policy (by its share), a copy of the request to a host of the
/// mirror cluster, `Host` with `-shadow` after the host name, sent in the background with
/// its answer dropped. Only buffered (replayable) bodies are mirrored.
#[allow(clippy::too_many_arguments)]
fn shadow(
    proxy: &Proxy,
    snapshot: &Snapshot,
    f: &Forward,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    host: &str,
    path: &str,
    rng: &mut fastrand::Rng,
) {
    for m in &f.mirrors {
        if rng.u32(..1_000_000) >= m.share {
            continue;
        }
        let Some(cluster) = snapshot.clusters.get(&m.cluster) else {
            continue;
        };
        let hosts = snapshot.hosts(cluster);
        let Some(target) = lb::choose(cluster.lb, &hosts, &cluster.runtime.next, &[], rng) else {
            continue;
        };
        let Ok(uri) = cluster.upstream_uri(&target, path) else {
            continue;
        };
        let shadow_host = if m.shadow_suffix {
            match host.rsplit_once(':') {
                Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
                    format!("{h}-shadow:{port}")
                }
                _ => format!("{host}-shadow"),
            }
        } else {
            host.to_string()
        };
        let mut req = Request::from_parts(
            parts.clone(),
            Full::new(body.clone())
                .map_err(|never| match never {})
                .boxed(),
        );
        *req.uri_mut() = uri;
        *req.version_mut() = hyper::Version::HTTP_11;
        if let Ok(v) = HeaderValue::from_str(&shadow_host) {
            req.headers_mut().insert(hyper::header::HOST, v);
        }
        proxy
            .stats
            .inc(&format!("cluster.{}.upstream_rq_shadowed", m.cluster));
        let runtime = cluster.runtime.clone();
        tokio::spawn(async move {
            let _guard = HostGuard::new(target);
            // Fire and forget: the answer is read and dropped, never waited for.
            if let Ok(r) = runtime.client.request(req).await {
                let _ = r.into_body().collect().await;
            }
        });
    }
}

fn body_size_hint(body: &Incoming) -> Option<u64> {
    use hyper::body::Body as _;
    body.size_hint().upper()
}

/// Envoy's retry backoff: full jitter over `base × 2^(n-1)`, capped at `max`.
fn retry_backoff(p: &RetryPolicy, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
    let base = p.base_interval.as_millis().max(1) as u64;
    let ceiling = base
        .saturating_mul(1 << (attempt - 1).min(16))
        .min(p.max_interval.as_millis().max(1) as u64);
    Duration::from_millis(rng.u64(0..=ceiling))
}

fn retriable_status(p: &RetryPolicy, status: u16, headers: &HeaderMap) -> bool {
    let on = &p.on;
    let grpc = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    (on.server_error && status >= 500)
        || (on.gateway_error && matches!(status, 502..=504))
        || (on.retriable_4xx && status == 409)
        || (on.retriable_status_codes && p.retriable_status_codes.contains(&status))
        || match grpc {
            Some(1) => on.grpc_cancelled,
            Some(4) => on.grpc_deadline_exceeded,
            Some(8) => on.grpc_resource_exhausted,
            Some(13) => on.grpc_internal,
            Some(14) => on.grpc_unavailable,
            _ => false,
        }
}

impl crate::config::RetryOn {
    fn any(&self) -> bool {
        *self != Self::default()
    }
}

impl LocalReply {
    /// Stands for an upstream response that was retried; never sent as such.
    fn new_status(status: u16) -> Self {
        let mut r = LocalReply::reset();
        r.status = status;
        r.body = String::new();
        r.details = "via_upstream".into();
        r
    }
}

fn connect_reason(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    let mut source = e.source();
    let mut last = e.to_string();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    if last.contains("refused") {
        "delayed connect error: Connection refused".into()
    } else {
        last
    }
}

fn grpc_timeout(f: &Forward, headers: &HeaderMap) -> Option<Duration> {
    let max = f.max_grpc_timeout?;
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    let (n, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    let d = match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    Some(if max.is_zero() { d } else { d.min(max) })
}

/// The upstream path of a forwarded request: `prefix_rewrite`, then `regex_rewrite`.
pub fn rewrite_path(f: &Forward, route: &Route, path: &str) -> String {
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut out = p.to_string();
    if let Some(prefix) = &f.prefix_rewrite
        && let crate::config::PathMatch::Prefix(m) | crate::config::PathMatch::SeparatedPrefix(m) =
            &route.matcher.path
        && p.len() >= m.len()
    {
        out = format!("{prefix}{}", &p[m.len()..]);
    }
    if let Some((re, sub)) = &f.regex_rewrite {
        out = re.replace_all(&out, sub.as_str()).into_owned();
    }
    match q {
        Some(q) => format!("{out}?{q}"),
        None => out,
    }
}

fn set_path(req: &mut Request<Incoming>, path: &str) {
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

/// A route's header mutations: removals, then additions (appended or overwriting).
pub fn mutate(headers: &mut HeaderMap, add: &[HeaderAdd], remove: &[String]) {
    for name in remove {
        headers.remove(name.as_str());
    }
    for h in add {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_str(&h.value),
        ) else {
            continue;
        };
        if h.overwrite {
            headers.insert(name, value);
        } else {
            headers.append(name, value);
        }
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
    ] {
        headers.remove(name);
    }
}

/// A redirect route's answer, with its `location`.
pub fn redirect(r: &Redirect, authority: &str, path: &str) -> Response<Body> {
    let host_only = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let mut host = r.host.clone().unwrap_or_else(|| {
        if r.port.is_some() {
            host_only.to_string()
        } else {
            authority.to_string()
        }
    });
    if let Some(port) = r.port {
        host = format!("{host}:{port}");
    }
    let (p, q) = path
        .split_once('?')
        .map_or((path, None), |(p, q)| (p, Some(q)));
    let mut new_path = r.path.clone().unwrap_or_else(|| p.to_string());
    if let Some(prefix) = &r.prefix_rewrite {
        new_path = prefix.clone();
    }
    if let (Some(q), false) = (q, r.strip_query) {
        new_path = format!("{new_path}?{q}");
    }
    let scheme = r.scheme.as_deref().unwrap_or("http");
    let mut response = reply(r.status, String::new());
    if let Ok(v) = HeaderValue::from_str(&format!("{scheme}://{host}{new_path}")) {
        response.headers_mut().insert(hyper::header::LOCATION, v);
    }
    response
}

fn reply(status: u16, body: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
}

fn local(r: LocalReply, outcome: &mut Outcome) -> Response<Body> {
    if let Some(flag) = r.flag {
        outcome.flags.insert(flag);
    }
    outcome.details = r.details.clone();
    outcome.transport_failure = r.transport_failure.clone();
    let mut response = reply(r.status, r.body.clone());
    r.set_headers(response.headers_mut());
    if !r.body.is_empty() {
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
    }
    response
}

/// Phase 5: `server`, inbound metadata exchange on the answer, the counters; metrics and
/// the access log line are written when the response body ends (see [`record`]).
fn finish(
    proxy: &Arc<Proxy>,
    hcm: &HttpManager,
    mut response: Response<Body>,
    outcome: Outcome,
    received: Received,
    downstream: Downstream,
) -> Response<Body> {
    if let Some(server) = &hcm.server_name
        && let Ok(v) = HeaderValue::from_str(server)
    {
        response.headers_mut().insert(hyper::header::SERVER, v);
    }
    // The client's sidecar learns who answered.
    if received.source.is_some() {
        proxy.telemetry.own.insert(response.headers_mut());
    }
    let status = response.status().as_u16();
    proxy.stats.count_response(status, outcome.flags);
    let answered = Answered {
        status,
        grpc_status: response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok()?.parse().ok()),
        headers: (!hcm.access_logs.is_empty()).then(|| response.headers().clone()),
        header_bytes: header_bytes(response.headers()),
        after: received.start.elapsed(),
    };
    let (parts, body) = response.into_parts();
    let proxy = proxy.clone();
    let logs = hcm.access_logs.clone();
    let body = Counted::on_end(body, move |sent| {
        record(&proxy, &received, &outcome, &answered, sent, &downstream);
        access_log::log(
            &proxy,
            &logs,
            &received,
            &outcome,
            &answered,
            sent,
            &downstream,
        );
    });
    Response::from_parts(parts, body.boxed())
}

/// What is kept of the response for its report.
#[derive(Debug)]
struct Answered {
    status: u16,
    grpc_status: Option<u32>,
    /// Only kept when the connection manager has access logs.
    headers: Option<HeaderMap>,
    header_bytes: u64,
    /// From the request's start to its response's headers.
    after: Duration,
}

/// The request's metrics and access log line, once its response body has ended.
fn record(
    proxy: &Proxy,
    r: &Received,
    o: &Outcome,
    a: &Answered,
    sent: u64,
    downstream: &Downstream,
) {
    let t = &proxy.telemetry;
    let duration = r.start.elapsed().as_millis() as u64;
    let series = t.http(&Report {
        reporter: r.reporter,
        peer: match r.reporter {
            Reporter::Destination => r.source.clone(),
            Reporter::Source => o.destination.clone(),
        },
        peer_principal: match r.reporter {
            Reporter::Destination => downstream.principal().cloned(),
            Reporter::Source => o.upstream_principal.clone(),
        },
        mutual_tls: downstream.principal().is_some(),
        cluster: &o.cluster,
        authority: &r.authority,
        protocol: r.protocol,
        response_code: a.status,
        grpc_status: a.grpc_status,
        flags: o.flags,
    });
    let received = o.request_body.bytes();
    series.requests.fetch_add(1, Ordering::Relaxed);
    series.duration.observe(duration);
    series.request_bytes.observe(r.header_bytes + received);
    series.response_bytes.observe(a.header_bytes + sent);
}

/// `%PROTOCOL%`.
fn protocol_name(v: hyper::Version) -> &'static str {
    match v {
        hyper::Version::HTTP_09 => "HTTP/0.9",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        hyper::Version::HTTP_2 => "HTTP/2",
        hyper::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_like_envoy() {
        assert_eq!(normalize("/a/./b/../c"), "/a/c");
        assert_eq!(normalize("/../a"), "/a");
        assert_eq!(normalize("/a/b/"), "/a/b/");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("/a/.."), "/");
        assert_eq!(normalize("/public/%2E%2E/private"), "/private");
        assert_eq!(normalize("/public/%2e/%2e%2e/private"), "/private");
        assert_eq!(normalize("/public/.%2E/%2e/private"), "/private");
        assert_eq!(normalize("/a/%2e%2e"), "/");
        assert_eq!(normalize("/a%2eb/%2e"), "/a%2eb/");
    }

    #[test]
    fn request_ids_are_uuid_v4() {
        let id = uuid_v4(&mut fastrand::Rng::with_seed(1));
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }

    #[test]
    fn retry_conditions_and_backoff() {
        let p = RetryPolicy {
            on: crate::config::RetryOn {
                retriable_status_codes: true,
                grpc_unavailable: true,
                gateway_error: true,
                ..Default::default()
            },
            retriable_status_codes: vec![503],
            num_retries: 2,
            base_interval: Duration::from_millis(25),
            max_interval: Duration::from_millis(250),
            ..Default::default()
        };
        let none = HeaderMap::new();
        assert!(retriable_status(&p, 503, &none));
        assert!(retriable_status(&p, 502, &none));
        assert!(!retriable_status(&p, 500, &none));
        let mut grpc = HeaderMap::new();
        grpc.insert("grpc-status", HeaderValue::from_static("14"));
        assert!(retriable_status(&p, 200, &grpc));
        let mut rng = fastrand::Rng::with_seed(2);
        for attempt in 1..10 {
            assert!(retry_backoff(&p, attempt, &mut rng) <= Duration::from_millis(250));
        }
    }
}
