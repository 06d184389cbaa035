//! The HTTP server every app shares: accepts HTTP/1.1 and HTTP/2 (prior knowledge), reads
//! the whole request body (bounded), hands the request to the app, stamps the response
//! with [`APP_HEADER`](crate::APP_HEADER) and logs one line per request. On shutdown it
//! stops accepting and lets in-flight requests finish (bounded).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bookinfo::{ProductPage, Reviews};
use crate::http::{Reply, text};
use crate::httpbin::Httpbin;

/// Largest request body an app reads; larger ones get `413`.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// How long in-flight requests may take to finish once shutdown begins.
const DRAIN: Duration = Duration::from_secs(5);

/// One of the demo applications with its configuration.
#[derive(Debug, Clone)]
pub enum App {
    ProductPage(ProductPage),
    /// Bookinfo's details; the string is the version named in [`App::label`].
    Details(String),
    Reviews(Reviews),
    /// Bookinfo's ratings; the string is the version named in [`App::label`].
    Ratings(String),
    Httpbin(Httpbin),
}

impl App {
    /// `app-version`, the value of [`APP_HEADER`](crate::APP_HEADER), e.g. `reviews-v2`.
    pub fn label(&self) -> String {
        match self {
            App::ProductPage(p) => format!("productpage-{}", p.version),
            App::Details(version) => format!("details-{version}"),
            App::Reviews(r) => format!("reviews-{}", r.version),
            App::Ratings(version) => format!("ratings-{version}"),
            App::Httpbin(h) => format!("httpbin-{}", h.version),
        }
    }

    async fn handle(&self, request: Request<Bytes>, peer: SocketAddr) -> Reply {
        match self {
            App::ProductPage(p) => p.handle(request).await,
            App::Details(_) => crate::bookinfo::details::handle(&request),
            App::Reviews(r) => r.handle(request).await,
            App::Ratings(_) => crate::bookinfo::ratings::handle(&request),
            App::Httpbin(h) => h.handle(request, peer).await,
        }
    }
}

/// An app serving on a socket; stops (and closes its listener) when dropped.
#[derive(Debug)]
pub struct Running {
    address: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    pub(crate) fn new(
        address: SocketAddr,
        stop: watch::Sender<bool>,
        task: JoinHandle<()>,
    ) -> Running {
        Running {
            address,
            stop,
            task,
        }
    }

    /// The address it listens on (with the port the system chose for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, lets in-flight requests finish, and waits for that.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

/// Binds `address` and serves `app` on a task of the current runtime.
pub async fn start(app: App, address: SocketAddr) -> std::io::Result<Running> {
    let listener = TcpListener::bind(address).await?;
    let address = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        serve(app, listener, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await;
    });
    Ok(Running::new(address, stop, task))
}

/// Serves `app` on `listener` until `shutdown` completes, then drains in-flight requests
/// for up to five seconds.
pub async fn serve(app: App, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let app = Arc::new(app);
    let label = Arc::new(app.label());
    let (stop, stopped) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    connections.spawn(connection(app.clone(), label.clone(), socket, peer, stopped.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = &mut shutdown => break,
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop.send(true);
    let _ = tokio::time::timeout(DRAIN, connections.join_all()).await;
}

async fn connection(
    app: Arc<App>,
    label: Arc<String>,
    socket: TcpStream,
    peer: SocketAddr,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    let service = hyper::service::service_fn(move |request| {
        let app = app.clone();
        let label = label.clone();
        async move { Ok::<_, std::convert::Infallible>(respond(&app, &label, request, peer).await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(socket), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            return;
        }
        _ = stopped.wait_for(|stop| *stop) => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

async fn respond(
    app: &App,
    label: &str,
    request: Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> Reply {
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let mut response = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(body) => {
            app.handle(Request::from_parts(parts, body.to_bytes()), peer)
                .await
        }
        Err(error) if error.is::<LengthLimitError>() => {
            text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n")
        }
        Err(error) => {
            tracing::debug!(%peer, %error, "request body not read");
            text(StatusCode::BAD_REQUEST, "request body not read\n")
        }
    };
    if let Ok(value) = HeaderValue::from_str(label) {
        response.headers_mut().insert(crate::APP_HEADER, value);
    }
    tracing::info!(app = label, %peer, %method, path, status = response.status().as_u16());
    response
}
