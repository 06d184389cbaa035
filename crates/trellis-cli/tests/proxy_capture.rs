//! Traffic capture, end to end, in a network namespace of its own (root only; skipped with
//! the reason otherwise). Inside it: `trellis control-plane`, the backends, and `trellis
//! proxy` running as uid 1337; iptables `nat OUTPUT` rules as `istio-init` writes them —
//! the proxy's own traffic (`-m owner --uid-owner 1337`) and loopback `127/8` traffic are
//! left alone, connections to the workload's own address go to 15006, everything else to
//! 15001. The test thread itself is the plain client, moved into the namespace; it dials
//! service VIPs and addresses, never the proxy:
//!
//! - `reviews` (VIP 240.240.0.10, HTTP): a VirtualService routes `end-user: jason` to v2,
//!   the rest to v1 (virtualOutbound → handoff to `0.0.0.0_9080` → RDS → subset cluster);
//! - `tcpecho` (VIP 240.240.0.20, TCP): bytes and half-close pass (handoff to
//!   `240.240.0.20_9000`);
//! - an address no listener knows (10.77.0.50:8081): `PassthroughCluster` to the original
//!   destination;
//! - the workload's own address (10.77.0.2): port 9090, which its service declares, reaches
//!   the app on 127.0.0.1:9090 through `inbound|9090||`; port 7777, which nothing declares,
//!   goes through `InboundPassthroughCluster` to the original destination from 127.0.0.6;
//! - the status port 15021 says 503 before the control plane is there, 200 once the
//!   configuration is applied;
//! - `/drain_listeners?inboundonly` closes 15006 while outbound still works; SIGTERM then
//!   ends the proxy with exit status 0.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use trellis_testkit::mesh::{self, MeshDir};
use trellis_testkit::netns::{self, Netns};
use trellis_testkit::trellis_proxy::{self, ProxyIdentity};
use trellis_testkit::{Backend, Process, echo_after_eof, free_port, get, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGE: Duration = Duration::from_secs(30);
/// Istio's proxy user: capture lets its traffic through.
const PROXY_UID: u32 = 1337;
const POD_IP: &str = "10.77.0.2";
const EXTERNAL: &str = "10.77.0.50:8081";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// `istio-init`'s OUTPUT capture, reduced to what one namespace needs.
fn capture(ns: &Netns) {
    let uid = PROXY_UID.to_string();
    let inbound = format!("{POD_IP}/32");
    let rules: [&[&str]; 6] = [
        &["-N", "TRELLIS_OUTPUT"],
        &["-A", "OUTPUT", "-p", "tcp", "-j", "TRELLIS_OUTPUT"],
        &[
            "-A",
            "TRELLIS_OUTPUT",
            "-m",
            "owner",
            "--uid-owner",
            &uid,
            "-j",
            "RETURN",
        ],
        &["-A", "TRELLIS_OUTPUT", "-d", "127.0.0.0/8", "-j", "RETURN"],
        &[
            "-A",
            "TRELLIS_OUTPUT",
            "-d",
            &inbound,
            "-p",
            "tcp",
            "-j",
            "REDIRECT",
            "--to-ports",
            "15006",
        ],
        &[
            "-A",
            "TRELLIS_OUTPUT",
            "-p",
            "tcp",
            "-j",
            "REDIRECT",
            "--to-ports",
            "15001",
        ],
    ];
    for rule in rules {
        let mut args = vec!["iptables", "-t", "nat"];
        args.extend_from_slice(rule);
        ns.exec(&args);
    }
}

fn mesh_yaml(tcp_echo_port: u16) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: reviews, namespace: default}}
spec:
  clusterIP: 240.240.0.10
  selector: {{app: reviews}}
  ports:
  - {{name: http, port: 9080}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http:
  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
    route: [{{destination: {{host: reviews, subset: v2}}}}]
  - route: [{{destination: {{host: reviews, subset: v1}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: tcpecho, namespace: default}}
spec:
  clusterIP: 240.240.0.20
  selector: {{app: tcpecho}}
  ports:
  - {{name: tcp, port: 9000}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: tcpecho, namespace: default}}
spec:
  address: 127.0.0.21
  ports: {{tcp: {tcp_echo_port}}}
  labels: {{app: tcpecho, security.istio.io/tlsMode: disabled}}
---
apiVersion: v1
kind: Service
metadata: {{name: inbound-app, namespace: default}}
spec:
  selector: {{app: inbound}}
  ports:
  - {{name: http, port: 9090}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: inbound-app, namespace: default}}
spec:
  address: {POD_IP}
  labels: {{app: inbound, security.istio.io/tlsMode: disabled}}
"
    )
}

/// Answers every connection, once the client has half-closed (the client speaks first, as
/// protocol sniffing on 15006 needs), with `from <peer address>`: who connected, as the app
/// sees it.
fn peer_echo(listener: TcpListener) {
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = s.read_to_end(&mut Vec::new());
            let peer = s
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let _ = s.write_all(format!("from {peer}").as_bytes());
        }
    });
}

/// The `trellis` binary where uid 1337 may run it (`/root` is closed to other users).
fn runnable_binary(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    for d in [dir, &bin] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let to = bin.join("trellis");
    std::fs::hard_link(TRELLIS, &to)
        .or_else(|_| std::fs::copy(TRELLIS, &to).map(|_| ()))
        .expect("place the trellis binary");
    to
}

fn tcp_exchange(to: SocketAddr, send: &[u8]) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&to, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(send).map_err(|e| e.to_string())?;
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    Ok(answer)
}

fn expect_body(to: SocketAddr, headers: &[(&str, &str)], body: &str, proxy: &Process) {
    wait_until(&format!("{body:?} from {to}"), CONVERGE, || {
        match get(to, "/", headers, Duration::from_secs(5)) {
            Ok(r) if r.status == 200 && r.body == body => Ok(()),
            other => Err(format!("{other:?}\n{}", proxy.tail(10))),
        }
    });
}

/// The real uid of a process, from `/proc/<pid>/status`.
fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn stat(admin: SocketAddr, name: &str) -> u64 {
    let stats = get(admin, "/stats", &[], Duration::from_secs(2)).expect("stats");
    stats
        .body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": ")?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn captured_traffic_follows_the_mesh() {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let ns = Netns::create("trellis-cap");
    for a in ["240.240.0.10", "240.240.0.20", POD_IP, "10.77.0.50"] {
        ns.exec(&["ip", "addr", "add", &format!("{a}/32"), "dev", "lo"]);
    }
    capture(&ns);
    ns.run(inside);
}

fn inside() {
    let dir = MeshDir::new();
    let trellis = runnable_binary(dir.path());
    let backends = mesh::reviews_backends();
    dir.write_reviews(&backends);
    let echo = TcpListener::bind("127.0.0.21:0").expect("bind echo");
    let echo_port = echo.local_addr().expect("addr").port();
    echo_after_eof(echo, 50);
    peer_echo(TcpListener::bind((ip(POD_IP), 7777)).expect("bind 7777"));
    let _external = Backend::start(addr(EXTERNAL), "external");
    let _app = Backend::start(addr("127.0.0.1:9090"), "inbound app");
    dir.write("mesh.yaml", &mesh_yaml(echo_port));

    // The proxy first, as uid 1337, with nothing at its xDS address yet.
    let local = ip("127.0.0.1");
    let (xds, debug) = (
        SocketAddr::new(local, free_port(local)),
        SocketAddr::new(local, free_port(local)),
    );
    let admin = SocketAddr::new(local, free_port(local));
    let status = SocketAddr::new(local, 15021);
    let mut command = trellis_proxy::command(
        &trellis,
        xds,
        admin,
        &ProxyIdentity {
            name: "inbound-0",
            namespace: "default",
            service_account: "default",
            labels: "app=inbound",
            ip: ip(POD_IP),
        },
        status.port(),
    );
    command.uid(PROXY_UID).gid(PROXY_UID);
    let mut proxy = Process::start("trellis proxy", command, &dir.join("proxy.log"));
    let before = wait_until("the status port", CONVERGE, || {
        if !proxy.running() {
            panic!("trellis proxy exited\n{}", proxy.tail(30));
        }
        get(status, "/healthz/ready", &[], Duration::from_secs(2))
    });
    assert_eq!(
        (before.status, before.body.as_str()),
        (503, "PRE_INITIALIZING\n")
    );
    let _cp = mesh::start_control_plane(Path::new(TRELLIS), dir.path(), xds, debug, CONVERGE);
    trellis_proxy::wait_ready(&mut proxy, admin, CONVERGE);
    assert_eq!(uid_of(proxy.pid().expect("pid")), Some(PROXY_UID));
    let ready = get(status, "/healthz/ready", &[], Duration::from_secs(2)).expect("status");
    assert_eq!((ready.status, ready.body.as_str()), (200, "LIVE\n"));

    // Outbound HTTP: the VirtualService decides by header.
    let reviews = addr("240.240.0.10:9080");
    expect_body(reviews, &[("end-user", "jason")], "v2", &proxy);
    let counts = |headers: &[(&str, &str)]| mesh::count_answers(reviews, "reviews", headers, 10);
    assert_eq!(counts(&[]), [("v1".to_string(), 10)].into());
    assert_eq!(
        counts(&[("end-user", "jason")]),
        [("v2".to_string(), 10)].into()
    );

    // Outbound TCP.
    let answer = wait_until("tcpecho through capture", CONVERGE, || {
        tcp_exchange(addr("240.240.0.20:9000"), b"ping")
    });
    assert_eq!(answer, "echo ping");
    assert!(
        stat(
            admin,
            "cluster.outbound|9000||tcpecho.default.svc.cluster.local.upstream_cx_total"
        ) > 0
    );

    // No listener for the destination: to it, through PassthroughCluster.
    expect_body(addr(EXTERNAL), &[], "external", &proxy);
    assert!(stat(admin, "cluster.PassthroughCluster.upstream_cx_total") > 0);

    // Inbound: a declared port reaches the app; an undeclared one passes through from
    // Istio's inbound passthrough address.
    expect_body(
        SocketAddr::new(ip(POD_IP), 9090),
        &[],
        "inbound app",
        &proxy,
    );
    let from = tcp_exchange(SocketAddr::new(ip(POD_IP), 7777), b"who")
        .unwrap_or_else(|e| panic!("7777: {e}\n{}", proxy.tail(20)));
    assert_eq!(from, "from 127.0.0.6", "{}", proxy.tail(10));
    assert!(stat(admin, "cluster.InboundPassthroughCluster.upstream_cx_total") > 0);

    // Istio's termination order: inbound drains first while the app can still call out,
    // then SIGTERM ends the proxy.
    let drained = get(
        admin,
        "/drain_listeners?inboundonly&graceful",
        &[],
        Duration::from_secs(2),
    )
    .expect("drain_listeners");
    assert_eq!(drained.status, 200);
    let app = SocketAddr::new(ip(POD_IP), 9090);
    wait_until("inbound refused", CONVERGE, || {
        match get(app, "/", &[], Duration::from_secs(2)) {
            Err(e) if e.contains("refused") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    expect_body(reviews, &[], "v1", &proxy);
    let draining = get(status, "/healthz/ready", &[], Duration::from_secs(2)).expect("status");
    assert_eq!(draining.status, 503);
    proxy.signal_term();
    let exit = proxy
        .wait_exit(CONVERGE)
        .unwrap_or_else(|| panic!("still running after SIGTERM\n{}", proxy.tail(20)));
    assert!(exit.success(), "{exit:?}");
    drop(backends);
}
