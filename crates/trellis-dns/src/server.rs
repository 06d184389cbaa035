//! The DNS server's sockets: UDP and TCP on one address (Istio's agent listens on
//! `127.0.0.1:15053`, where capture sends the pod's port 53), each message answered by
//! [`answer`](crate::answer::answer) from the current [`Names`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use crate::answer::{Transport, answer};
use crate::nds::NameTable;
use crate::table::{Lookup, ProxyScope};

/// The largest UDP query read (EDNS queries are small; anything longer is cut and then
/// fails to parse).
const UDP_BUFFER: usize = 4096;
/// A TCP client silent this long is disconnected.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// TCP connections served at once; more wait to be accepted.
const TCP_CONNECTIONS: usize = 64;

/// The names a server answers, replaced whole whenever a new NDS table arrives. Until the
/// first one, every query gets SERVFAIL.
#[derive(Debug)]
pub struct Names {
    scope: ProxyScope,
    lookup: ArcSwapOption<Lookup>,
}

impl Names {
    pub fn new(scope: ProxyScope) -> Arc<Names> {
        Arc::new(Names {
            scope,
            lookup: ArcSwapOption::empty(),
        })
    }

    /// Answers from `table` from now on.
    pub fn update(&self, table: &NameTable) {
        let lookup = Lookup::new(table, &self.scope);
        tracing::debug!(
            hosts = table.table.len(),
            names = lookup.len(),
            "DNS name table updated"
        );
        self.lookup.store(Some(Arc::new(lookup)));
    }

    /// The table in force, if any arrived.
    pub fn lookup(&self) -> Option<Arc<Lookup>> {
        self.lookup.load_full()
    }
}

/// The bound sockets of a DNS server.
#[derive(Debug)]
pub struct DnsServer {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl DnsServer {
    /// Binds UDP and TCP on `address` (port 0: one free port, the same for both).
    pub async fn bind(address: SocketAddr) -> io::Result<DnsServer> {
        let tcp = TcpListener::bind(address).await?;
        let udp = UdpSocket::bind(tcp.local_addr()?).await?;
        Ok(DnsServer { udp, tcp })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves until the task is dropped.
    pub async fn run(self, names: Arc<Names>) {
        tracing::info!(address = ?self.tcp.local_addr().ok(), "DNS proxy serving (UDP and TCP)");
        tokio::join!(
            serve_udp(self.udp, names.clone()),
            serve_tcp(self.tcp, names)
        );
    }
}

async fn serve_udp(socket: UdpSocket, names: Arc<Names>) {
    let mut buffer = vec![0u8; UDP_BUFFER];
    loop {
        let (len, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                tracing::debug!(%error, "DNS UDP receive failed");
                continue;
            }
        };
        let query = buffer.get(..len).unwrap_or_default();
        let lookup = names.lookup();
        if let Some(reply) = answer(lookup.as_deref(), query, Transport::Udp)
            && let Err(error) = socket.send_to(&reply, peer).await
        {
            tracing::debug!(%error, %peer, "DNS UDP reply failed");
        }
    }
}

async fn serve_tcp(listener: TcpListener, names: Arc<Names>) {
    let slots = Arc::new(Semaphore::new(TCP_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let names = names.clone();
                tokio::spawn(async move {
                    if let Err(error) = serve_connection(stream, &names).await {
                        tracing::debug!(%error, %peer, "DNS TCP connection ended");
                    }
                    drop(permit);
                });
            }
            Err(error) => tracing::debug!(%error, "DNS TCP accept failed"),
        }
    }
}

/// Length-prefixed messages (RFC 1035 4.2.2), answered in order until the client closes,
/// stays silent too long, or sends something unanswerable.
async fn serve_connection(mut stream: TcpStream, names: &Names) -> io::Result<()> {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        let mut query = vec![0u8; len];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "query not sent in time"))??;
        let lookup = names.lookup();
        let Some(reply) = answer(lookup.as_deref(), &query, Transport::Tcp) else {
            return Ok(());
        };
        let len = u16::try_from(reply.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "answer too long"))?;
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&reply);
        stream.write_all(&framed).await?;
    }
}
