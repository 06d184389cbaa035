//! Binds the snapshot's listeners to their addresses; per connection runs the listener
//! filters ([`sniff`]), picks the filter chain ([`chains`]) and hands the connection to its
//! network filter: hyper (HTTP/1.1 and HTTP/2 prior knowledge) or the TCP proxy. A listener
//! whose address and settings are unchanged keeps its socket across updates; a removed one
//! stops accepting (its connections finish). Listeners with `bind_to_port: false` are held,
//! not bound: capture listeners hand connections to them by original destination (see
//! [`crate::config::Listener`]). Once the proxy drains ([`crate::drain`]) every listener
//! stops accepting and none is bound again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::chains::{self, Connection};
use crate::config::{FilterChain, HttpManager, Listener, Network, Snapshot};
use crate::http::{self, Downstream};
use crate::sniff::{self, Prefixed, Sniffed};
use crate::tls::failures::log_failure;
use crate::tls::server::HandshakeError;
use crate::{Proxy, drain, limits, original_dst, tcp};

/// A bound listener: its config and its accept loop.
type Bound = (Arc<Listener>, JoinHandle<()>);

#[derive(Debug, Default)]
pub struct Listeners {
    running: Mutex<BTreeMap<String, Bound>>,
}

impl Listeners {
    /// Makes the bound listeners those of `snapshot`; returns bind failures (they NACK).
    pub fn reconcile(&self, proxy: &Arc<Proxy>, snapshot: &Snapshot) -> Vec<String> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mut errors = Vec::new();
        running.retain(|name, (current, task)| {
            let keep = snapshot
                .listeners
                .get(name)
                .is_some_and(|l| **l == **current);
            if !keep {
                task.abort();
            }
            keep
        });
        if proxy.drain.is_draining() {
            return errors;
        }
        for (name, listener) in &snapshot.listeners {
            if running.contains_key(name) || !listener.bind {
                continue;
            }
            match bind(listener.address, listener.reuse_port) {
                Ok(socket) => {
                    let task = tokio::spawn(accept(proxy.clone(), listener.clone(), socket));
                    running.insert(name.clone(), (listener.clone(), task));
                    tracing::info!(listener = %name, address = %listener.address, "listening");
                }
                Err(e) => errors.push(format!(
                    "listener {name}: cannot bind {}: {e}",
                    listener.address
                )),
            }
        }
        errors
    }

    /// Whether `address` is one of the proxy's own listeners.
    pub fn is_bound(&self, address: SocketAddr) -> bool {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.values().any(|(l, _)| l.address == address)
    }

    pub fn names(&self) -> Vec<(String, SocketAddr)> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running
            .iter()
            .map(|(n, (l, _))| (n.clone(), l.address))
            .collect()
    }
}

fn bind(address: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(reuse_port)?;
    socket.bind(address)?;
    socket.listen(1024)
}

async fn accept(proxy: Arc<Proxy>, listener: Arc<Listener>, socket: TcpListener) {
    let draining = proxy.drain.started(listener.inbound);
    tokio::pin!(draining);
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            () = &mut draining => {
                tracing::info!(listener = %listener.name, "draining: no longer accepting");
                return;
            }
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // A capture listener's connections carry their original destination as local address.
        let local = if listener.capture {
            original_dst::destination(&stream)
        } else {
            stream.local_addr().ok()
        }
        .unwrap_or(listener.address);
        let target = chains::receiving(&proxy.config.load(), &listener, local);
        let downstream = Downstream {
            local,
            remote,
            inbound: target.inbound,
            tls: None,
            id: CONNECTION_IDS.fetch_add(1, Ordering::Relaxed),
        };
        tokio::spawn(connection(proxy.clone(), target, stream, downstream));
    }
}

/// Envoy's connection ids: a counter per process.
static CONNECTION_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// One downstream connection: listener filters, filter chain, network filter.
pub async fn connection(
    proxy: Arc<Proxy>,
    listener: Arc<Listener>,
    mut stream: TcpStream,
    mut downstream: Downstream,
) {
    let counted = proxy.clone();
    let _open = counted.drain.track();
    let stat = |name: &str| format!("listener.{}.{name}", listener.address);
    proxy.stats.inc(&stat("downstream_cx_total"));
    let mut conn = Connection::raw(downstream.local);
    let mut prefix = Vec::new();
    if listener.inspect_tls || listener.inspect_http {
        match sniff::sniff(
            &mut stream,
            listener.inspect_tls,
            listener.inspect_http,
            listener.inspect_timeout,
        )
        .await
        {
            Ok((read, what)) => {
                prefix = read;
                match what {
                    Sniffed::Tls { server_name, alpn } => {
                        conn.transport = "tls";
                        conn.server_name = server_name;
                        conn.application_protocols = alpn;
                    }
                    Sniffed::Http(p) => conn.application_protocols = vec![p.to_string()],
                    Sniffed::Opaque | Sniffed::NeedMore => {}
                }
            }
            Err(read) => {
                // Envoy's `downstream_pre_cx_timeout`: the inspectors could not decide.
                proxy.stats.inc(&stat("downstream_pre_cx_timeout"));
                if !listener.continue_on_timeout {
                    return;
                }
                prefix = read;
            }
        }
    }
    let Some(chain) = chains::select(&listener, &conn) else {
        proxy.stats.inc(&stat("no_filter_chain_match"));
        crate::telemetry::log_context::no_chain(&proxy, &listener, &downstream, &conn);
        return;
    };
    let io = Prefixed::new(prefix, stream);
    let Some(tls) = &chain.tls else {
        return filters(proxy, &listener, chain, &conn, downstream, io).await;
    };
    match crate::tls::server::accept(tls, &proxy.secrets, io).await {
        Ok((io, peer)) => {
            proxy.stats.inc(&stat("ssl.handshake"));
            downstream.tls = Some(Arc::new(peer));
            filters(proxy, &listener, chain, &conn, downstream, io).await
        }
        Err(e) => {
            proxy.stats.inc(&stat(match e {
                HandshakeError::Timeout(_) => "downstream_cx_transport_socket_connect_timeout",
                _ => "ssl.connection_error",
            }));
            let level = tls.failures.level(&e.reason(), std::time::Instant::now());
            log_failure!(level, "downstream TLS handshake failed, connection closed";
                listener = %listener.name, chain = %chain.name, peer = %downstream.remote,
                error = %e);
        }
    }
}

/// The chain's network filters on the (decrypted) connection: network RBAC, then the HTTP
/// connection manager or the TCP proxy.
async fn filters<I>(
    proxy: Arc<Proxy>,
    listener: &Listener,
    chain: &FilterChain,
    conn: &Connection,
    downstream: Downstream,
    io: I,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if !crate::authz::admit_connection(&proxy, chain, conn, &downstream) {
        return;
    }
    match &chain.network {
        Network::Tcp(t) => tcp::proxy(proxy, t, downstream, io).await,
        Network::Http(hcm) => {
            serve_http(proxy, hcm.clone(), listener.inbound, downstream, io).await
        }
    }
}

/// Serves HTTP/1.1 or HTTP/2 on one connection of an `inbound` listener or not. Once that
/// listener drains, HTTP/1 responses say `connection: close` and an HTTP/2 connection gets
/// a GOAWAY; requests in flight finish.
async fn serve_http<I>(
    proxy: Arc<Proxy>,
    hcm: Arc<HttpManager>,
    inbound: bool,
    downstream: Downstream,
    io: I,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let h2 = Arc::new(AtomicBool::new(false));
    let builder = limits::configure(&hcm.limits);
    let resets = Arc::new(limits::PrematureResets::default());
    let service = {
        let (proxy, h2, resets) = (proxy.clone(), h2.clone(), resets.clone());
        let downstream = downstream.clone();
        service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let (proxy, hcm, downstream) = (proxy.clone(), hcm.clone(), downstream.clone());
            let version = req.version();
            if version == hyper::Version::HTTP_2 {
                h2.store(true, Ordering::Relaxed);
            }
            // Dropped unanswered when the client resets the stream first.
            let mut stream = resets.stream();
            async move {
                let mut response = http::handle(proxy.clone(), hcm, downstream.clone(), req).await;
                stream.done();
                drain::close_if_draining(
                    proxy.drain.covers(inbound),
                    version,
                    response.headers_mut(),
                );
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = proxy.drain.started(inbound) => {
            if h2.load(Ordering::Relaxed) {
                connection.as_mut().graceful_shutdown();
            }
            connection.await
        }
        () = resets.tripped() => {
            // Envoy closes such a connection at once; a GOAWAY first says why.
            tracing::debug!(peer = %downstream.remote, "too many premature stream resets");
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits::PREMATURE_RESET_LIFETIME, connection).await;
            return;
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "downstream connection error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        Action, ChainMatch, FilterChain, HeaderMutations, PathMatch, Route, RouteConfig,
        RouteMatch, RouteSource, VirtualHost,
    };
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioExecutor;
    use std::time::Duration;

    /// A bound listener (`inbound` or not) of a new proxy whose one HTTP chain answers
    /// every request `200 ok` by itself.
    async fn direct_listener(inbound: bool) -> (Arc<Proxy>, SocketAddr) {
        let proxy = Proxy::new(Default::default());
        let address = serve_direct(&proxy, inbound, Vec::new()).await;
        (proxy, address)
    }

    async fn serve_direct(
        proxy: &Arc<Proxy>,
        inbound: bool,
        access_logs: crate::config::AccessLogs,
    ) -> SocketAddr {
        let route = Route {
            name: "all".into(),
            matcher: RouteMatch {
                path: PathMatch::Prefix("/".into()),
                case_sensitive: true,
                headers: vec![],
                query: vec![],
            },
            action: Action::Direct {
                status: 200,
                body: Some("ok".into()),
            },
            headers: HeaderMutations::default(),
            fault: None,
            cors: None,
        };
        let vh = VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes: vec![route],
        };
        let hcm = HttpManager {
            stat_prefix: "test".into(),
            route_config: RouteSource::Inline(Arc::new(RouteConfig::new(
                "r".into(),
                vec![vh],
                true,
            ))),
            server_name: None,
            generate_request_id: false,
            normalize_path: false,
            use_remote_address: false,
            xff_trusted_hops: 0,
            cors: false,
            upgrades: Default::default(),
            limits: Default::default(),
            filters: Vec::new(),
            xfcc: Default::default(),
            access_logs,
        };
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let listener = Arc::new(Listener {
            name: "test".into(),
            address,
            bind: true,
            capture: false,
            handoff: false,
            reuse_port: false,
            inbound,
            inspect_tls: false,
            inspect_http: false,
            inspect_timeout: None,
            continue_on_timeout: false,
            chains: vec![FilterChain {
                name: "http".into(),
                matcher: ChainMatch::default(),
                tls: None,
                rbac: Vec::new(),
                network: Network::Http(Arc::new(hcm)),
            }],
            default_chain: None,
            access_logs: Vec::new(),
        });
        tokio::spawn(accept(proxy.clone(), listener, socket));
        address
    }

    fn get() -> hyper::Request<Empty<Bytes>> {
        hyper::Request::get("http://test/")
            .body(Empty::new())
            .unwrap()
    }

    /// HTTP/1: the connection stays open; after the drain began its next response says
    /// `connection: close`, the proxy closes it, and the drain completes.
    #[tokio::test]
    async fn http1_connections_close_after_their_next_response() {
        let (proxy, address) = direct_listener(false).await;
        let stream = TcpStream::connect(address).await.unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let before = tx.send_request(get()).await.unwrap();
        assert!(before.headers().get("connection").is_none());
        proxy.drain.start();
        let during = tx.send_request(get()).await.unwrap();
        assert_eq!(during.headers()["connection"], "close");
        assert_eq!(during.into_body().collect().await.unwrap().to_bytes(), "ok");
        conn.await.unwrap().unwrap();
        let drained = proxy.drain.finish(Duration::from_secs(30)).await;
        assert_eq!(drained, drain::Finished::Drained);
        // The listener is closed.
        assert!(TcpStream::connect(address).await.is_err());
    }

    /// HTTP/2: the drain sends a GOAWAY; the client's connection ends cleanly.
    #[tokio::test]
    async fn http2_connections_get_a_goaway() {
        let (proxy, address) = direct_listener(false).await;
        let stream = TcpStream::connect(address).await.unwrap();
        let (mut tx, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        let r = tx.send_request(get()).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(proxy.drain.open(), 1);
        proxy.drain.start();
        // The GOAWAY ends the connection without error.
        conn.await.unwrap().unwrap();
        let drained = proxy.drain.finish(Duration::from_secs(30)).await;
        assert_eq!(drained, drain::Finished::Drained);
    }

    /// `/drain_listeners?inboundonly`: the inbound listener refuses, the outbound one still
    /// serves (a terminating application can call out); a full drain then stops it too.
    #[tokio::test]
    async fn inbound_only_drains_spare_outbound_listeners() {
        let (proxy, inbound) = direct_listener(true).await;
        let outbound = serve_direct(&proxy, false, Vec::new()).await;
        proxy.drain.drain_listeners(Some("inboundonly&graceful"));
        let refused = |a: SocketAddr| async move {
            // Until the accept loop has seen the drain and closed its socket.
            for _ in 0..1000 {
                if TcpStream::connect(a).await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        };
        assert!(refused(inbound).await, "the inbound listener still accepts");
        let stream = TcpStream::connect(outbound).await.unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let r = tx.send_request(get()).await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("connection").is_none());
        proxy.drain.start();
        assert!(
            refused(outbound).await,
            "the outbound listener still accepts"
        );
    }

    /// The connection manager's access log: one line per request in its file, with the
    /// request's headers, the response and the connection.
    #[tokio::test]
    async fn requests_are_logged_in_the_configured_file() {
        use crate::telemetry::access_log::AccessLog;
        let dir = std::env::temp_dir().join(format!("trellis-hcm-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let format = "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% \"%REQ(USER-AGENT)%\" %RESP(X-MISSING)% %BYTES_SENT% %ROUTE_NAME% %DOWNSTREAM_PEER_URI_SAN%\n";
        let log = Arc::new(AccessLog::text_file(&path, format, None));
        let proxy = Proxy::new(Default::default());
        let address = serve_direct(&proxy, false, vec![log]).await;
        let stream = TcpStream::connect(address).await.unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::get("http://test/logged?q=1")
            .header("user-agent", "probe/1")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let r = tx.send_request(req).await.unwrap();
        assert_eq!(r.into_body().collect().await.unwrap().to_bytes(), "ok");
        let mut text = String::new();
        for _ in 0..500 {
            proxy.telemetry.sinks.flush();
            text = std::fs::read_to_string(&path).unwrap_or_default();
            if !text.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            text,
            "GET /logged?q=1 HTTP/1.1 200 - \"probe/1\" - 2 all -\n"
        );
    }
}
