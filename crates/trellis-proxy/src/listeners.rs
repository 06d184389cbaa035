//! Binds the snapshot's listeners to their addresses; per connection runs the listener
//! filters ([`sniff`]), picks the filter chain ([`chains`]) and hands the connection to its
//! network filter: hyper (HTTP/1.1 and HTTP/2 prior knowledge) or the TCP proxy. A listener
//! whose address and settings are unchanged keeps its socket across updates; a removed one
//! stops accepting (its connections finish). Listeners with `bind_to_port: false` and
//! capture listeners are held, not bound (see [`crate::config::Listener`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::chains::{self, Connection};
use crate::config::{Listener, Network, Snapshot};
use crate::http::{self, Downstream};
use crate::sniff::{self, Prefixed, Sniffed};
use crate::{Proxy, tcp};

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
        for (name, listener) in &snapshot.listeners {
            if running.contains_key(name) || !listener.bind || listener.capture {
                continue;
            }
            match bind(listener.address) {
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

fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

async fn accept(proxy: Arc<Proxy>, listener: Arc<Listener>, socket: TcpListener) {
    loop {
        let (stream, remote) = match socket.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(listener.address);
        let downstream = Downstream { local, remote };
        tokio::spawn(connection(
            proxy.clone(),
            listener.clone(),
            stream,
            downstream,
        ));
    }
}

/// One downstream connection: listener filters, filter chain, network filter.
pub async fn connection(
    proxy: Arc<Proxy>,
    listener: Arc<Listener>,
    mut stream: TcpStream,
    downstream: Downstream,
) {
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
        return;
    };
    if !crate::authz::admit_connection(&proxy, chain, &conn, downstream) {
        return;
    }
    let io = Prefixed::new(prefix, stream);
    match &chain.network {
        Network::Tcp(t) => tcp::proxy(proxy, t, downstream, io).await,
        Network::Http(hcm) => {
            let hcm = hcm.clone();
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                let hcm = hcm.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        http::handle(proxy, hcm, downstream, req).await,
                    )
                }
            });
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(io), service)
                .await
            {
                tracing::debug!(error = %e, "downstream connection error");
            }
        }
    }
}
