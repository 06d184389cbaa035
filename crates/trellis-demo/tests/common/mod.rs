//! Helpers for this crate's in-process tests: apps on 127.0.0.1 ephemeral ports, a
//! recording backend that stands in for a service, and one-request calls.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use trellis_demo::bookinfo::{ProductPage, Reviews, ReviewsVersion, Services};
use trellis_demo::upstream::{self, Fetched, Upstream};
use trellis_demo::{App, Running};

pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub async fn start(app: App) -> Running {
    trellis_demo::start(app, SocketAddr::new(LOOPBACK, 0))
        .await
        .expect("start app")
}

pub fn at(address: SocketAddr) -> Upstream {
    Upstream::new(address.ip().to_string(), address.port())
}

/// An address where nothing listens.
pub fn closed() -> Upstream {
    Upstream::new(LOOPBACK.to_string(), trellis_testkit::free_port(LOOPBACK))
}

pub async fn reviews(version: ReviewsVersion, ratings: Upstream) -> Running {
    start(App::Reviews(Reviews {
        version,
        ratings,
        pod_name: format!("reviews-{version}-pod"),
        cluster_name: "null".into(),
    }))
    .await
}

pub async fn productpage(details: Upstream, reviews: Upstream) -> Running {
    start(App::ProductPage(ProductPage::new(Services {
        details,
        reviews,
        ratings: closed(),
    })))
    .await
}

pub async fn request(
    address: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&'static str, &str)],
    body: &str,
) -> Fetched {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Bytes::from(body.to_string()));
    upstream::send(&at(address), request, &map, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub async fn get(address: SocketAddr, path: &str, headers: &[(&'static str, &str)]) -> Fetched {
    request(address, Method::GET, path, headers, "").await
}

/// A backend standing in for a service: answers every request with `status` and `body`
/// after `delay`, and keeps the headers of every request it got.
pub struct Recorder {
    pub address: SocketAddr,
    pub seen: Arc<Mutex<Vec<HeaderMap>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start(status: u16, body: &str, delay: Duration) -> Recorder {
        let listener = tokio::net::TcpListener::bind((LOOPBACK, 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let body = Bytes::from(body.to_string());
        let status = StatusCode::from_u16(status).unwrap();
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let (recorded, body) = (recorded.clone(), body.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<_>| {
                        let (recorded, body) = (recorded.clone(), body.clone());
                        async move {
                            recorded.lock().unwrap().push(req.headers().clone());
                            tokio::time::sleep(delay).await;
                            let mut response = Response::new(Full::new(body));
                            *response.status_mut() = status;
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Recorder {
            address,
            seen,
            task,
        }
    }

    pub fn requests(&self) -> Vec<HeaderMap> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Filled stars of `color` on a product page.
pub fn stars(html: &str, color: &str) -> usize {
    html.matches(&format!("glyphicon-star\" style=\"color: {color}\""))
        .count()
}
