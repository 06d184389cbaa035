//! The admin interface on localhost: `/ready`, `/config_dump` (a summary of what the proxy
//! holds, as JSON), `/certs` (the workload certificate and roots, as Envoy's), `/stats`, `/stats/prometheus`, `/logging` (see
//! [`crate::telemetry::logging`]), `/drain_listeners` (stop accepting, see [`crate::drain`])
//! and `/quitquitquit` (drain, then exit).

use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;

use crate::Proxy;
use crate::config::{Action, Discovery, Network, RouteSource};
use crate::status::text;

pub async fn serve(proxy: Arc<Proxy>, listener: TcpListener) {
    crate::status::serve_with(proxy, listener, handle).await;
}

fn handle(proxy: &Proxy, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/ready" => crate::status::ready(proxy),
        "/stats" => {
            let mut out = proxy.stats.render();
            for c in proxy.config.load().clusters.values() {
                c.runtime.stats.render(&c.name, &mut out);
            }
            text(StatusCode::OK, out)
        }
        "/logging" => crate::telemetry::logging::handle(proxy.telemetry.logging.as_deref(), req),
        "/stats/prometheus" => {
            crate::telemetry::server::prometheus(crate::telemetry::server::render(proxy))
        }
        "/config_dump" => {
            let body = serde_json::to_string_pretty(&config_dump(proxy)).unwrap_or_default();
            let mut r = text(StatusCode::OK, body + "\n");
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            r
        }
        "/certs" => {
            let body = serde_json::to_string_pretty(&certs(proxy)).unwrap_or_default();
            text(StatusCode::OK, body + "\n")
        }
        "/drain_listeners" => {
            proxy.drain.drain_listeners(req.uri().query());
            text(StatusCode::OK, "OK\n".into())
        }
        "/quitquitquit" => {
            proxy.shutdown.send_replace(true);
            text(StatusCode::OK, "OK\n".into())
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Envoy's `/certs`: the workload certificate (`cert_chain`) and the roots (`ca_cert`) the
/// TLS contexts use; no entry before the proxy has an identity.
fn certs(proxy: &Proxy) -> serde_json::Value {
    use crate::tls::verify::describe;
    let certificates: Vec<_> = proxy
        .secrets
        .current()
        .map(|(_, identity)| {
            json!({
                "cert_chain": identity.chain.iter().filter_map(describe).collect::<Vec<_>>(),
                "ca_cert": identity.roots.iter().filter_map(describe).collect::<Vec<_>>(),
            })
        })
        .into_iter()
        .collect();
    json!({ "certificates": certificates })
}

pub fn config_dump(proxy: &Proxy) -> serde_json::Value {
    let snapshot = proxy.config.load();
    let listeners: Vec<_> = snapshot
        .listeners
        .values()
        .map(|l| {
            json!({
                "name": l.name,
                "address": l.address.to_string(),
                "bind_to_port": l.bind,
                "capture": l.capture,
                "filter_chains": l.all_chains().map(|c| json!({
                    "name": c.name,
                    "match": format!("{:?}", c.matcher),
                    "network": match &c.network {
                        Network::Http(h) => match &h.route_config {
                            RouteSource::Rds(n) => format!("http rds {n}"),
                            RouteSource::Inline(rc) => format!("http inline {}", rc.name),
                        },
                        Network::Tcp(t) => format!("tcp {:?}", t.clusters),
                    },
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let routes: Vec<_> = snapshot
        .routes
        .values()
        .map(|rc| {
            json!({
                "name": rc.name,
                "virtual_hosts": rc.virtual_hosts.iter().map(|vh| json!({
                    "name": vh.name,
                    "domains": vh.domains,
                    "routes": vh.routes.iter().map(|r| json!({
                        "name": r.name,
                        "action": match &r.action {
                            Action::Forward(f) => json!({"clusters": f.clusters}),
                            Action::Direct { status, .. } => json!({"direct_response": status}),
                            Action::Redirect(rd) => json!({"redirect": rd.status}),
                        },
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let clusters: Vec<_> = snapshot
        .clusters
        .values()
        .map(|c| {
            let hosts: Vec<String> = snapshot
                .hosts(c)
                .iter()
                .map(|h| h.address.to_string())
                .collect();
            json!({
                "name": c.name,
                "type": match &c.discovery {
                    Discovery::Eds(_) => "EDS",
                    Discovery::Static(_) => "STATIC",
                    Discovery::OriginalDst => "ORIGINAL_DST",
                },
                "lb_policy": format!("{:?}", c.lb),
                "endpoints": hosts,
            })
        })
        .collect();
    json!({
        "listeners": listeners,
        "routes": routes,
        "clusters": clusters,
        "xds": proxy.xds_status(),
    })
}
