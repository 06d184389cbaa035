//! The debug HTTP server (port 15014): `/ready`, `/metrics` (Prometheus text),
//! `/debug/syncz` (what each proxy was sent and accepted), `/debug/configz` (the objects
//! in force, the current problems, and under `unsupported` the TRL0001 warnings for what
//! translation ignores) and `/debug/config_dump?proxyID=ID` (what translation produces for
//! a connected proxy now, summarised as [`crate::xds::dump::ConfigDump`]). Read-only; it
//! never blocks the ADS server.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::mesh::MeshSnapshot;
use crate::translate::{names, translate};
use crate::xds::MeshUpdate;
use crate::xds::dump::ConfigDump;
use crate::xds::resources::ProxyResources;
use crate::xds::status::SyncStatus;

/// What the debug endpoints read.
#[derive(Debug)]
pub struct DebugState {
    pub mesh: watch::Receiver<Arc<MeshUpdate>>,
    pub status: SyncStatus,
    pub registry: Registry,
}

/// Serves until `shutdown` becomes true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<DebugState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = crate::xds::ads::stopping(&mut shutdown) => return,
        };
        let (socket, _) = match accepted {
            Ok(a) => a,
            Err(error) => {
                tracing::warn!(%error, "debug server: accept failed");
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, &req)) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await
            {
                tracing::debug!(%error, "debug server: connection error");
            }
        });
    }
}

/// Answers one request.
pub fn handle(state: &DebugState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/ready" => text(StatusCode::OK, "ready\n".into()),
        "/metrics" => {
            let mut out = String::new();
            match prometheus_client::encoding::text::encode(&mut out, &state.registry) {
                Ok(()) => response(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    out,
                ),
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "encoding failed\n".into(),
                ),
            }
        }
        "/debug/syncz" => json_response(&serde_json::to_value(state.status.snapshot())),
        "/debug/configz" => json_response(&Ok(configz(&state.mesh.borrow()))),
        "/debug/config_dump" => config_dump(state, req.uri().query().unwrap_or_default()),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// What translation produces now for the proxy named by `proxyID`.
fn config_dump(state: &DebugState, query: &str) -> Response<Full<Bytes>> {
    let wanted = query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "proxyID").then(|| percent_decode(value))
    });
    let Some(wanted) = wanted else {
        return text(StatusCode::BAD_REQUEST, "proxyID is required\n".into());
    };
    let Some(node) = state.status.find(&wanted) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("proxy {wanted:?} is not connected\n"),
        );
    };
    let update = state.mesh.borrow().clone();
    let mesh = &update.mesh;
    let resources: ProxyResources = translate(mesh, &node).into();
    let dump = ConfigDump::from_resources(&node.id, &resources, |cluster| {
        let (_, _, host) = names::parse_outbound_cluster(cluster)?;
        let service = mesh.registry.service(host)?;
        let (rule, _) = mesh.destination_rule(host, &node.namespace, &service.namespace)?;
        Some(format!("{}.{}", rule.meta.name, rule.meta.namespace))
    });
    json_response(&serde_json::to_value(dump))
}

/// Decodes `%XX` escapes and `+` (node ids carry `~`, which clients may escape).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The objects in force, the registered workloads and the problems, as JSON.
pub fn configz(update: &MeshUpdate) -> serde_json::Value {
    let objects: Vec<serde_json::Value> = update
        .mesh
        .config
        .objects
        .iter()
        .map(|(key, resource)| {
            json!({
                "kind": key.kind.to_string(),
                "namespace": key.namespace,
                "name": key.name,
                "spec": serde_json::to_value(&resource.spec).unwrap_or_default(),
            })
        })
        .collect();
    let problems: Vec<String> = update.problems.iter().map(|p| p.to_string()).collect();
    let services: Vec<&String> = update.mesh.registry.services.keys().collect();
    let unsupported: Vec<String> = unsupported(&update.mesh)
        .iter()
        .map(ToString::to_string)
        .collect();
    json!({
        "generation": update.generation,
        "revision": update.mesh.config.revision,
        "objects": objects,
        "services": services,
        "problems": problems,
        "unsupported": unsupported,
    })
}

/// What the configuration in force asks for that the translation ignores today
/// (`Warning [TRL0001] (Kind ns/name) Field ... is not implemented by Trellis yet ...`).
pub fn unsupported(mesh: &MeshSnapshot) -> Vec<trellis_config::analyze::Message> {
    trellis_config::analyze::unsupported_fields(&mesh.config.resources(), &mesh.mesh)
}

fn json_response(value: &Result<serde_json::Value, serde_json::Error>) -> Response<Full<Bytes>> {
    match value.as_ref().map(serde_json::to_string_pretty) {
        Ok(Ok(body)) => response(StatusCode::OK, "application/json", body + "\n"),
        _ => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding failed\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    response(status, "text/plain; charset=utf-8", body)
}

fn response(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use trellis_config::store::{ObjectKey, Snapshot};

    use crate::mesh::MeshSnapshot;
    use crate::xds::MeshUpdate;
    use crate::xds::push::PushScope;

    #[test]
    fn configz_lists_what_translation_ignores() {
        let yaml = "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\n\
                    metadata: {name: patch, namespace: bookstore}\nspec: {configPatches: []}\n\
                    ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
                    metadata: {name: reviews, namespace: bookstore}\n\
                    spec: {host: reviews, trafficPolicy: {loadBalancer: {zoneAwareLbSetting: {enabled: true}}}}\n";
        let decoded = trellis_api::decode_bytes("t.yaml", yaml.as_bytes(), "default");
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        let snapshot = Snapshot {
            revision: 1,
            objects: decoded
                .resources
                .into_iter()
                .map(|r| (ObjectKey::of(&r), Arc::new(r)))
                .collect(),
        };
        let update = MeshUpdate {
            mesh: Arc::new(MeshSnapshot::new(
                Arc::new(snapshot),
                &[],
                Arc::new(Default::default()),
            )),
            generation: 1,
            changed_at: tokio::time::Instant::now(),
            problems: Arc::new(Vec::new()),
            scope: PushScope::Full,
            views: Arc::default(),
        };
        let json = super::configz(&update);
        let unsupported: Vec<&str> = json["unsupported"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(unsupported.len(), 2, "{unsupported:?}");
        assert!(unsupported[0].starts_with(
            "Warning [TRL0001] (DestinationRule bookstore/reviews) Field \
             spec.trafficPolicy.loadBalancer.zoneAwareLbSetting is not implemented by Trellis yet \
             and is ignored"
        ));
        assert!(unsupported[1].starts_with(
            "Warning [TRL0001] (EnvoyFilter bookstore/patch) EnvoyFilter is not implemented by \
             Trellis yet and is ignored"
        ));
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(
            super::percent_decode("sidecar%7E127.0.0.2%7Ep.default"),
            "sidecar~127.0.0.2~p.default"
        );
        assert_eq!(super::percent_decode("a%zz"), "a%zz");
    }
}
