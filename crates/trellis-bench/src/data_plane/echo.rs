//! The servers behind the proxies: an HTTP/1.1 + HTTP/2 echo (gRPC unary too) and a TCP
//! sink, each on its own thread and runtime so that the load generator's work does not
//! delay them. Both stop when dropped.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

/// A server on its own thread; stops when dropped.
pub struct Server {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The kind of server.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Answers every request with its own body; gRPC requests with their message and
    /// `grpc-status: 0`.
    Echo,
    /// Reads and discards everything (bulk TCP throughput).
    Sink,
}

/// Starts a server on `address` (port 0 picks one).
pub fn start(address: SocketAddr, kind: Kind) -> std::io::Result<Server> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let (stop, mut stopped) = oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            loop {
                let socket = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((s, _)) => s,
                        Err(_) => continue,
                    },
                    _ = &mut stopped => return,
                };
                let _ = socket.set_nodelay(true);
                match kind {
                    Kind::Echo => tokio::spawn(serve_http(socket)),
                    Kind::Sink => tokio::spawn(sink(socket)),
                };
            }
        });
    });
    Ok(Server {
        address,
        stop: Some(stop),
        thread: Some(thread),
    })
}

async fn serve_http(socket: tokio::net::TcpStream) {
    let service = hyper::service::service_fn(echo);
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(socket), service)
        .await;
}

type Body = BoxBody<Bytes, hyper::Error>;

async fn echo(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let grpc = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut response = if grpc {
        let trailers = {
            let mut t = hyper::HeaderMap::new();
            t.insert("grpc-status", hyper::header::HeaderValue::from_static("0"));
            t
        };
        let frame = http_body_util::StreamBody::new(futures_util::stream::iter([
            Ok::<_, hyper::Error>(hyper::body::Frame::data(body)),
            Ok(hyper::body::Frame::trailers(trailers)),
        ]));
        let mut r = Response::new(BodyExt::boxed(frame));
        r.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/grpc"),
        );
        r
    } else {
        Response::new(Full::new(body).map_err(|never| match never {}).boxed())
    };
    *response.status_mut() = hyper::StatusCode::OK;
    Ok(response)
}

async fn sink(mut socket: tokio::net::TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
}
