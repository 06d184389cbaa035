//! Reaching into a pod: a TCP connection opened from inside the pod's network namespace
//! (the socket stays in the namespace it was made in, whichever thread uses it later), and
//! a small HTTP/1.1 client over it for the sidecar's admin port (readiness, drain) and for
//! tests that act as a pod's app.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use nix::sched::{CloneFlags, setns};

use crate::error::{Error, Result};

/// Connects to `address` from inside the network namespace `netns`, within `timeout`.
/// Connections made this way are the pod's own: capture applies to them as to the app's.
pub fn connect_in(netns: &str, address: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let path = format!("/run/netns/{netns}");
    let file = File::open(&path).map_err(Error::io(format!("cannot open {path}")))?;
    // A thread of its own enters the namespace and ends; the process stays where it was.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| Error::Io {
                    what: format!("cannot enter network namespace {netns}"),
                    source: e.into(),
                })?;
                TcpStream::connect_timeout(&address, timeout)
                    .map_err(Error::io(format!("connect {address} in {netns}")))
            })
            .join()
            .unwrap_or_else(|_| Err(Error::Failed("the namespace thread panicked".into())))
    })
}

/// One HTTP response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// Sends `method path` with `headers` to `address` from inside `netns` on a new connection,
/// within `timeout` in all.
pub fn request_in(
    netns: &str,
    method: &str,
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Reply> {
    let stream = connect_in(netns, address, timeout)?;
    request_over(stream, method, address, path, headers, timeout)
        .map_err(|e| Error::Failed(format!("{e} (in {netns})")))
}

/// Sends `method path` with `headers` over `stream`, connected to `address`, within
/// `timeout`.
pub fn request_over(
    stream: TcpStream,
    method: &str,
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Reply> {
    let failed = |e: String| Error::Failed(format!("{method} http://{address}{path}: {e}"));
    stream
        .set_nonblocking(true)
        .map_err(|e| failed(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(e.to_string()))?;
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::from_std(stream).map_err(|e| failed(e.to_string()))?;
        tokio::time::timeout(timeout, exchange(stream, method, address, path, headers))
            .await
            .map_err(|_| failed("timed out".into()))?
            .map_err(failed)
    })
}

async fn exchange(
    stream: tokio::net::TcpStream,
    method: &str,
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder().method(method).uri(path);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        builder = builder.header("host", address.to_string());
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
