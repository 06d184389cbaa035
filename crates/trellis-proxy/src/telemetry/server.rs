//! The Prometheus endpoints: `/stats/prometheus` on the stats port (Istio's 15090) and on
//! the admin port, and on the merged-metrics port (Istio's 15020) the proxy's metrics
//! followed by the application's, scraped from `--app-metrics-url` at each request. A
//! failing application scrape still answers with the proxy's metrics and counts the
//! failure (`istio_agent_scrape_failures_total`, as Istio's agent does).

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::Proxy;

/// How long an application scrape may take.
const APP_SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Larger application answers are cut off (a scrape, not a download).
const APP_SCRAPE_LIMIT: usize = 16 << 20;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything the proxy exposes in Prometheus form: Istio's standard metrics, then the
/// per-cluster counters under Envoy's Prometheus names.
pub fn render(proxy: &Proxy) -> String {
    let mut out = String::new();
    proxy.telemetry.metrics.render(&mut out);
    let snapshot = proxy.config.load();
    crate::upstream::ClusterStats::render_prometheus(
        snapshot
            .clusters
            .values()
            .map(|c| (c.name.as_str(), &c.runtime.stats)),
        &mut out,
    );
    out
}

/// Serves `/stats/prometheus` on the stats port.
pub async fn serve_stats(proxy: Arc<Proxy>, listener: TcpListener) {
    serve(listener, move |req| {
        let proxy = proxy.clone();
        async move {
            match req.uri().path() {
                "/stats/prometheus" | "/metrics" => prometheus(render(&proxy)),
                _ => status(StatusCode::NOT_FOUND),
            }
        }
    })
    .await;
}

/// The merged-metrics endpoint's state.
#[derive(Debug)]
pub struct Merged {
    pub app_url: Option<Uri>,
    pub scrapes: AtomicU64,
    pub failures: AtomicU64,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
}

impl Merged {
    pub fn new(app_url: Option<Uri>) -> Merged {
        Merged {
            app_url,
            scrapes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The proxy's metrics, the scrape counters, then the application's metrics.
    pub async fn render(&self, proxy: &Proxy) -> String {
        let mut out = render(proxy);
        let app = match &self.app_url {
            None => None,
            Some(url) => {
                self.scrapes.fetch_add(1, Ordering::Relaxed);
                let scraped = self.scrape(url).await;
                if let Err(e) = &scraped {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%url, error = %e, "application metrics scrape failed");
                }
                scraped.ok()
            }
        };
        for (name, v) in [
            ("istio_agent_scrapes_total", &self.scrapes),
            ("istio_agent_scrape_failures_total", &self.failures),
        ] {
            let _ = writeln!(
                out,
                "# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        if let Some(app) = app {
            out.push_str(&app);
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }

    async fn scrape(&self, url: &Uri) -> Result<String, String> {
        let fetch = async {
            let response = self
                .client
                .get(url.clone())
                .await
                .map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("status {}", response.status()));
            }
            let body = http_body_util::Limited::new(response.into_body(), APP_SCRAPE_LIMIT)
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            String::from_utf8(body.to_bytes().to_vec()).map_err(|e| e.to_string())
        };
        tokio::time::timeout(APP_SCRAPE_TIMEOUT, fetch)
            .await
            .map_err(|_| "timed out".to_string())?
    }
}

/// Serves the merged metrics on `/stats/prometheus` (and `/metrics`).
pub async fn serve_merged(proxy: Arc<Proxy>, merged: Arc<Merged>, listener: TcpListener) {
    serve(listener, move |req| {
        let (proxy, merged) = (proxy.clone(), merged.clone());
        async move {
            match req.uri().path() {
                "/stats/prometheus" | "/metrics" => prometheus(merged.render(&proxy).await),
                _ => status(StatusCode::NOT_FOUND),
            }
        }
    })
    .await;
}

/// A Prometheus text answer.
pub fn prometheus(body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    r
}

fn status(s: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = s;
    r
}

/// A plain HTTP/1.1 server: one task per connection, `handle` per request.
async fn serve<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let handle = handle.clone();
                async move { Ok::<_, Infallible>(handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::labels::{Protocol, Reporter};
    use crate::telemetry::{Report, Telemetry};
    use std::net::SocketAddr;

    async fn app(body: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, move |_req| async move {
            prometheus(body.to_string())
        }));
        address
    }

    fn url(address: SocketAddr) -> Option<Uri> {
        Some(format!("http://{address}/metrics").parse().unwrap())
    }

    #[tokio::test]
    async fn merged_metrics_append_the_apps_and_survive_its_failure() {
        let proxy = Proxy::new(Telemetry::new("id", &serde_json::Map::new()));
        let series = proxy.telemetry.http(&Report {
            reporter: Reporter::Destination,
            peer: None,
            peer_principal: None,
            mutual_tls: false,
            cluster: "inbound|9080||",
            authority: "reviews:9080",
            protocol: Protocol::Http,
            response_code: 200,
            grpc_status: None,
            flags: crate::flags::Flags::default(),
        });
        series.requests.fetch_add(1, Ordering::Relaxed);
        let merged = Merged::new(url(app("app_requests_total 7\n").await));
        let out = merged.render(&proxy).await;
        assert!(
            out.contains("connection_security_policy=\"none\"} 1\n"),
            "{out}"
        );
        assert!(
            out.ends_with("istio_agent_scrape_failures_total 0\napp_requests_total 7\n"),
            "{out}"
        );
        // A closed port: the proxy's metrics still, and the failure counted.
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let merged = Merged::new(url(closed));
        let out = merged.render(&proxy).await;
        assert!(
            out.contains("istio_requests_total{reporter=\"destination\""),
            "{out}"
        );
        assert!(out.contains("istio_agent_scrapes_total 1\n"));
        assert!(
            out.ends_with("istio_agent_scrape_failures_total 1\n"),
            "{out}"
        );
    }
}
