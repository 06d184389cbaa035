//! Readiness, as Istio's agent serves it on the status port (15021, `/healthz/ready`, on
//! every address so that the kubelet or a local runtime can probe it) and as Envoy's admin
//! `/ready` tells it: 503 `PRE_INITIALIZING` until the first full configuration (clusters,
//! listeners and every route and endpoint set they name) has been applied, then 200 `LIVE`,
//! and 503 `DRAINING` from the moment the proxy starts draining.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::Proxy;

/// Where the proxy stands, as a readiness probe sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    PreInitializing,
    Live,
    Draining,
}

impl Readiness {
    /// Draining wins over everything: a draining proxy must take no new traffic.
    pub fn of(config_applied: bool, draining: bool) -> Readiness {
        match (config_applied, draining) {
            (_, true) => Readiness::Draining,
            (true, false) => Readiness::Live,
            (false, false) => Readiness::PreInitializing,
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Readiness::Live => StatusCode::OK,
            Readiness::PreInitializing | Readiness::Draining => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Envoy's server state names.
    pub fn text(self) -> &'static str {
        match self {
            Readiness::PreInitializing => "PRE_INITIALIZING\n",
            Readiness::Live => "LIVE\n",
            Readiness::Draining => "DRAINING\n",
        }
    }
}

/// The readiness answer for `proxy` now (admin `/ready` and `/healthz/ready`).
pub fn ready(proxy: &Proxy) -> Response<Full<Bytes>> {
    let r = Readiness::of(proxy.is_ready(), proxy.drain.is_draining());
    text(r.status(), r.text().into())
}

/// Serves the status port: `/healthz/ready`, nothing else.
pub async fn serve(proxy: Arc<Proxy>, listener: TcpListener) {
    serve_with(proxy, listener, |proxy, req| match req.uri().path() {
        "/healthz/ready" => ready(proxy),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    })
    .await;
}

/// A small local HTTP/1 server answering every request with `handle` (the admin and the
/// status port). It takes no part in draining: probes and `/stats` keep answering.
pub async fn serve_with(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    handle: fn(&Proxy, &Request<Incoming>) -> Response<Full<Bytes>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(handle(&proxy, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

pub fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_config_and_not_draining() {
        let all = [
            (
                false,
                false,
                StatusCode::SERVICE_UNAVAILABLE,
                "PRE_INITIALIZING\n",
            ),
            (true, false, StatusCode::OK, "LIVE\n"),
            (true, true, StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n"),
            (false, true, StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n"),
        ];
        for (applied, draining, status, text) in all {
            let r = Readiness::of(applied, draining);
            assert_eq!(
                (r.status(), r.text()),
                (status, text),
                "{applied} {draining}"
            );
        }
    }

    /// The status port end to end: 503 before the first config, 200 after, 503 draining.
    #[tokio::test]
    async fn the_status_port_follows_the_proxy() {
        let proxy = Proxy::new(Default::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(proxy.clone(), listener));
        let probe = || async {
            let stream = tokio::net::TcpStream::connect(address).await.unwrap();
            let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = Request::get("/healthz/ready")
                .header("host", "status")
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap();
            tx.send_request(req).await.unwrap().status()
        };
        assert_eq!(probe().await, StatusCode::SERVICE_UNAVAILABLE);
        proxy.set_ready();
        assert_eq!(probe().await, StatusCode::OK);
        proxy.drain.start();
        assert_eq!(probe().await, StatusCode::SERVICE_UNAVAILABLE);
    }
}
