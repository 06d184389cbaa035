//! Envoy's `tcp_proxy`: pick a cluster (weighted), a host (the cluster's balancer, or the
//! original destination), connect (from the cluster's bind address, within its connect
//! timeout and its `max_connections` breaker), then relay bytes both ways until both sides
//! have finished. Half-close is passed on: when one side stops sending, the other side's
//! write half is shut down and the other direction keeps flowing. The idle timeout closes
//! both when no byte moved either way for that long. Each connection is reported when it
//! ends: Istio's `istio_tcp_*` series and an access log line with its response flags.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::Proxy;
use crate::config::{Discovery, TcpProxy};
use crate::flags::{Flag, Flags};
use crate::http::Downstream;
use crate::lb;
use crate::telemetry::Report;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::format::Context;
use crate::telemetry::labels::{Protocol, Reporter};
use crate::telemetry::metrics::TcpSeries;
use crate::telemetry::peer::Peer;
use crate::upstream::{ClusterStats, HostGuard};

/// Why a TCP connection ended without reaching an upstream (Envoy's flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NoCluster(String),
    NoHealthyUpstream,
    Overflow,
    ConnectFailure(String),
}

/// What the report says about one connection.
#[derive(Debug, Default)]
struct Session {
    cluster: String,
    upstream: Option<SocketAddr>,
    workload: Option<Arc<Peer>>,
    /// The upstream certificate's principal, when the cluster originates TLS to it.
    upstream_principal: Option<Arc<str>>,
    flags: Flags,
    transport_failure: String,
    /// Bytes from the downstream to the upstream, and back.
    to_upstream: u64,
    to_downstream: u64,
}

pub async fn proxy<S>(proxy: Arc<Proxy>, t: &TcpProxy, downstream: Downstream, mut client: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    proxy
        .stats
        .inc(&format!("tcp.{}.downstream_cx_total", t.stat_prefix));
    let (start, start_wall) = (Instant::now(), SystemTime::now());
    let snapshot = proxy.config.load_full();
    let mut rng = fastrand::Rng::new();
    let mut session = Session::default();
    let mut series = None;
    let result = async {
        let name = lb::weighted(&t.clusters, &mut rng).unwrap_or_default();
        session.cluster = name.to_string();
        let cluster = snapshot
            .clusters
            .get(name)
            .ok_or_else(|| Refused::NoCluster(name.to_string()))?;
        let runtime = &cluster.runtime;
        let host = match &cluster.discovery {
            // On a bound listener the original destination is the listener itself: a loop.
            Discovery::OriginalDst => (!proxy.listeners.is_bound(downstream.local))
                .then(|| Arc::new(crate::upstream::Host::new(downstream.local, 1))),
            _ => lb::choose(
                cluster.lb,
                &snapshot.hosts(cluster),
                &runtime.next,
                &[],
                &mut rng,
            ),
        };
        let Some(host) = host else {
            ClusterStats::inc(&runtime.stats.upstream_cx_none_healthy);
            return Err(Refused::NoHealthyUpstream);
        };
        session.upstream = Some(host.address);
        session.workload = host.workload.clone();
        let Some(slot) = runtime.admit_connection(&cluster.limits) else {
            ClusterStats::inc(&runtime.stats.upstream_cx_overflow);
            return Err(Refused::Overflow);
        };
        ClusterStats::inc(&runtime.stats.upstream_cx_total);
        let guard = HostGuard::new(host.clone());
        let tcp = connect(
            host.address,
            runtime.settings.source,
            cluster.connect_timeout,
        )
        .await
        .map_err(|e| {
            ClusterStats::inc(&runtime.stats.upstream_cx_connect_fail);
            Refused::ConnectFailure(connect_failure_reason(&e))
        })?;
        let tls = runtime
            .tls
            .as_ref()
            .filter(|_| cluster.transport.tls_for(&host.socket_match));
        let upstream = match tls {
            None => Upstream::Plain(tcp),
            Some(ctx) => {
                let (stream, principal) =
                    crate::tls::client::connect(ctx, &runtime.secrets, tcp, host.address)
                        .await
                        .map_err(|e| {
                            ClusterStats::inc(&runtime.stats.upstream_cx_connect_fail);
                            Refused::ConnectFailure(format!("TLS error: {e}"))
                        })?;
                session.upstream_principal = principal;
                Upstream::Tls(Box::new(stream))
            }
        };
        let opened = report(&proxy, &downstream, &session);
        opened.opened.fetch_add(1, Ordering::Relaxed);
        series = Some(opened);
        let (tx, rx) = match upstream {
            Upstream::Plain(s) => relay(&mut client, s, t.idle_timeout).await,
            Upstream::Tls(s) => relay(&mut client, *s, t.idle_timeout).await,
        };
        (session.to_upstream, session.to_downstream) = (tx, rx);
        runtime
            .stats
            .upstream_cx_tx_bytes_total
            .fetch_add(tx, Ordering::Relaxed);
        runtime
            .stats
            .upstream_cx_rx_bytes_total
            .fetch_add(rx, Ordering::Relaxed);
        drop((slot, guard));
        Ok(())
    }
    .await;
    if let Err(why) = result {
        tracing::debug!(stat_prefix = %t.stat_prefix, ?why, "tcp connection refused");
        match why {
            Refused::NoCluster(_) => session.flags.insert(Flag::NoCluster),
            Refused::NoHealthyUpstream => session.flags.insert(Flag::NoHealthyUpstream),
            Refused::Overflow => session.flags.insert(Flag::Overflow),
            Refused::ConnectFailure(reason) => {
                // Envoy's one connect attempt, exhausted: UF and URX.
                session.flags.insert(Flag::UpstreamConnectFailure);
                session.flags.insert(Flag::RetryLimitExceeded);
                session.transport_failure = crate::flags::underscored(&reason);
            }
        }
    }
    let series = series.unwrap_or_else(|| {
        let s = report(&proxy, &downstream, &session);
        s.opened.fetch_add(1, Ordering::Relaxed);
        s
    });
    series
        .received
        .fetch_add(session.to_upstream, Ordering::Relaxed);
    series
        .sent
        .fetch_add(session.to_downstream, Ordering::Relaxed);
    series.closed.fetch_add(1, Ordering::Relaxed);
    log(
        &proxy,
        &t.access_logs,
        &downstream,
        &session,
        start,
        start_wall,
    );
}

/// The connection's TCP series (the flags are known once the upstream connect is decided).
fn report(proxy: &Proxy, downstream: &Downstream, s: &Session) -> Arc<TcpSeries> {
    let reporter = downstream.reporter();
    proxy.telemetry.tcp(&Report {
        reporter,
        // Without mTLS there is no TCP metadata exchange: inbound sources are unknown.
        peer: match reporter {
            Reporter::Source => s.workload.clone(),
            Reporter::Destination => None,
        },
        peer_principal: match reporter {
            Reporter::Source => s.upstream_principal.clone(),
            Reporter::Destination => downstream.principal().cloned(),
        },
        mutual_tls: downstream.principal().is_some(),
        cluster: &s.cluster,
        authority: "",
        protocol: Protocol::Tcp,
        response_code: 0,
        grpc_status: None,
        flags: s.flags,
    })
}

/// The connection's access log lines, as it closes.
fn log(
    proxy: &Proxy,
    logs: &[Arc<AccessLog>],
    downstream: &Downstream,
    s: &Session,
    start: Instant,
    wall: SystemTime,
) {
    if logs.is_empty() {
        return;
    }
    let ctx = Context {
        start: Some(wall),
        duration: start.elapsed(),
        flags: s.flags,
        transport_failure: &s.transport_failure,
        bytes_received: s.to_upstream,
        bytes_sent: s.to_downstream,
        upstream_host: s.upstream,
        upstream_cluster: &s.cluster,
        upstream_peer_uri_san: s.upstream_principal.as_deref().unwrap_or_default(),
        ..crate::telemetry::log_context::downstream(downstream)
    };
    proxy.telemetry.log(logs, &ctx);
}

/// Envoy's transport failure reason for a failed connect.
fn connect_failure_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "delayed connect error: Connection refused".into(),
        _ => e.to_string(),
    }
}

async fn connect(
    to: SocketAddr,
    source: Option<std::net::IpAddr>,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let socket = if to.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = tokio::time::timeout(timeout, socket.connect(to))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// An upstream connection of the TCP proxy.
enum Upstream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Relays until both directions end (or one fails, or the idle timeout); returns the bytes
/// sent upstream and received from it.
pub async fn relay<C, U>(client: &mut C, upstream: U, idle: Option<Duration>) -> (u64, u64)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let sent = AtomicU64::new(0);
    let received = AtomicU64::new(0);
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = tokio::io::split(upstream);
    let both = async {
        tokio::try_join!(
            pump(&mut cr, &mut uw, &last, &sent, start),
            pump(&mut ur, &mut cw, &last, &received, start),
        )
    };
    match idle {
        None => {
            let _ = both.await;
        }
        Some(idle) => {
            tokio::select! {
                _ = both => {}
                () = watchdog(&last, idle, start) => {}
            }
        }
    }
    (sent.into_inner(), received.into_inner())
}

async fn pump<R, W>(
    r: &mut R,
    w: &mut W,
    last: &AtomicU64,
    total: &AtomicU64,
    start: Instant,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            // Half-close: the peer stopped sending; tell the other side, keep reading it.
            w.shutdown().await?;
            return Ok(());
        }
        w.write_all(&buf[..n]).await?;
        total.fetch_add(n as u64, Ordering::Relaxed);
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

async fn watchdog(last: &AtomicU64, idle: Duration, start: Instant) {
    loop {
        let deadline = start + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    /// The client sends and half-closes; the upstream still answers after reading EOF.
    #[tokio::test]
    async fn half_close_passes_through_and_the_answer_still_flows() {
        let (mut client, mut proxied_client) = pair().await;
        let (to_upstream, mut upstream) = pair().await;
        let relay = tokio::spawn(async move {
            relay(
                &mut proxied_client,
                to_upstream,
                Some(Duration::from_secs(5)),
            )
            .await
        });
        client.write_all(b"request").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        upstream.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request");
        upstream.write_all(b"answer after EOF").await.unwrap();
        upstream.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"answer after EOF");
        assert_eq!(relay.await.unwrap(), (7, 16));
    }

    #[tokio::test]
    async fn idle_connections_are_closed() {
        let (mut client, mut proxied_client) = pair().await;
        let (to_upstream, mut upstream) = pair().await;
        let relay = tokio::spawn(async move {
            relay(
                &mut proxied_client,
                to_upstream,
                Some(Duration::from_millis(100)),
            )
            .await
        });
        client.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        upstream.read_exact(&mut one).await.unwrap();
        // Nothing moves: both sides see the close.
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
            .await
            .expect("closed by the idle timeout")
            .unwrap();
        relay.await.unwrap();
    }
}
