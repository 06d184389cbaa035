//! The proxy's shutdown, end to end: a request in flight when SIGTERM arrives still gets
//! its answer (with `connection: close`), new connections are refused from then on, admin
//! `/ready` says DRAINING, and once the last connection has closed the process exits 0 —
//! long before its drain duration. Admin `/drain_listeners` drains without exiting;
//! `/quitquitquit` drains and exits.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use trellis_testkit::mesh::{self, MeshDir};
use trellis_testkit::mesh_yaml::{service, sidecar_egress, stream};
use trellis_testkit::trellis_proxy::{self, ProxyIdentity};
use trellis_testkit::{Process, free_port, get, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGE: Duration = Duration::from_secs(30);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// An HTTP/1.1 backend that answers `/fast` at once and holds `/slow` until released; it
/// reports each `/slow` request it holds on `held`.
fn slow_backend(listener: TcpListener, held: mpsc::Sender<()>, release: mpsc::Receiver<()>) {
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50) {
            let Ok(mut s) = stream else { continue };
            let mut head = Vec::new();
            let mut reader = BufReader::new(match s.try_clone() {
                Ok(r) => r,
                Err(_) => continue,
            });
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                head.push(line.clone());
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            let body = if head.first().is_some_and(|l| l.contains(" /slow ")) {
                let _ = held.send(());
                let _ = release.recv_timeout(Duration::from_secs(60));
                "slow"
            } else {
                "fast"
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

fn refused(to: SocketAddr) -> Result<(), String> {
    match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// A control plane and a proxy whose explicit egress listener `<listener_ip>:9080` routes
/// service `slow` to the [`slow_backend`] at `backend`, ready and routing.
struct Mesh {
    _dir: MeshDir,
    _cp: Process,
    proxy: Process,
    admin: SocketAddr,
    egress: SocketAddr,
}

fn mesh_with_proxy(backend: SocketAddr, listener_ip: IpAddr) -> Mesh {
    let dir = MeshDir::new();
    dir.write(
        "mesh.yaml",
        &stream(&[
            service("slow"),
            format!(
                "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: slow, namespace: default}}
spec:
  address: {}
  ports: {{http: {}}}
  labels: {{app: slow, security.istio.io/tlsMode: disabled}}
",
                backend.ip(),
                backend.port()
            ),
            sidecar_egress("client", Some("client"), listener_ip),
        ]),
    );
    let (cp, xds, _debug) =
        mesh::control_plane(Path::new(TRELLIS), dir.path(), listener_ip, CONVERGE);
    let local = ip("127.0.0.1");
    let admin = SocketAddr::new(local, free_port(local));
    let mut command = trellis_proxy::command(
        Path::new(TRELLIS),
        xds,
        admin,
        &ProxyIdentity {
            name: "client-0",
            namespace: "default",
            service_account: "default",
            labels: "app=client",
            ip: listener_ip,
        },
        0,
    );
    // Far longer than the tests: an exit must come from the last connection closing.
    command.args(["--drain-duration", "120s"]);
    let mut proxy = Process::start("trellis proxy", command, &dir.join("proxy.log"));
    trellis_proxy::wait_ready(&mut proxy, admin, CONVERGE);
    let egress = SocketAddr::new(listener_ip, 9080);
    wait_until("the egress listener routes", CONVERGE, || {
        get(egress, "/fast", &[("host", "slow")], Duration::from_secs(5))
            .and_then(|r| (r.body == "fast").then_some(()).ok_or(format!("{r:?}")))
    });
    Mesh {
        _dir: dir,
        _cp: cp,
        proxy,
        admin,
        egress,
    }
}

/// A [`slow_backend`] on `at`: its address, the channel reporting held requests and the
/// one releasing them.
fn start_slow_backend(at: IpAddr) -> (SocketAddr, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let backend = TcpListener::bind((at, 0)).expect("bind backend");
    let address = backend.local_addr().expect("addr");
    let (held_tx, held) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    slow_backend(backend, held_tx, release_rx);
    (address, held, release)
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let (backend, held, release) = start_slow_backend(ip("127.0.0.71"));
    // Bound whole: the control plane and the directory live to the end.
    let mesh = mesh_with_proxy(backend, ip("127.0.0.72"));
    let (mut proxy, admin, egress) = (mesh.proxy, mesh.admin, mesh.egress);

    // Before the drain, a keep-alive connection stays open: no `connection: close`.
    let mut kept = TcpStream::connect(egress).expect("connect");
    kept.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    kept.write_all(b"GET /fast HTTP/1.1\r\nhost: slow\r\n\r\n")
        .expect("send");
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\nfast") {
        let mut buf = [0u8; 1024];
        let n = kept.read(&mut buf).expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(!answer.contains("connection: close"), "{answer}");
    drop(kept);

    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(egress).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        s.write_all(b"GET /slow HTTP/1.1\r\nhost: slow\r\n\r\n")
            .expect("send");
        let mut response = String::new();
        // To the end: the proxy closes the connection after the answer.
        s.read_to_string(&mut response).map(|_| response)
    });
    held.recv_timeout(CONVERGE)
        .expect("the slow request reached the backend");
    proxy.signal_term();
    wait_until("new connections refused", CONVERGE, || refused(egress));
    let ready = get(admin, "/ready", &[], Duration::from_secs(2)).expect("admin /ready");
    assert_eq!((ready.status, ready.body.as_str()), (503, "DRAINING\n"));
    assert!(proxy.running(), "exited with a request in flight");

    release.send(()).expect("release");
    let response = client.join().expect("client").expect("response");
    let lower = response.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{response}");
    assert!(lower.contains("\r\nconnection: close\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nslow"), "{response}");
    let status = proxy
        .wait_exit(CONVERGE)
        .unwrap_or_else(|| panic!("still running after the drain\n{}", proxy.tail(20)));
    assert!(status.success(), "{status:?}\n{}", proxy.tail(20));
}

/// `/drain_listeners` stops accepting but keeps the process (and admin) up, not ready;
/// `/quitquitquit` then exits 0.
#[test]
fn admin_drain_listeners_then_quitquitquit() {
    let (backend, _held, _release) = start_slow_backend(ip("127.0.0.73"));
    let mut mesh = mesh_with_proxy(backend, ip("127.0.0.74"));
    let drained = get(
        mesh.admin,
        "/drain_listeners?graceful",
        &[],
        Duration::from_secs(2),
    )
    .expect("drain_listeners");
    assert_eq!(drained.status, 200);
    wait_until("new connections refused", CONVERGE, || refused(mesh.egress));
    let ready = get(mesh.admin, "/ready", &[], Duration::from_secs(2)).expect("admin /ready");
    assert_eq!((ready.status, ready.body.as_str()), (503, "DRAINING\n"));
    assert!(mesh.proxy.running(), "drain_listeners must not exit");
    let quit = get(mesh.admin, "/quitquitquit", &[], Duration::from_secs(2)).expect("quit");
    assert_eq!(quit.status, 200);
    let status = mesh
        .proxy
        .wait_exit(CONVERGE)
        .unwrap_or_else(|| panic!("still running after /quitquitquit\n{}", mesh.proxy.tail(20)));
    assert!(status.success(), "{status:?}");
}
