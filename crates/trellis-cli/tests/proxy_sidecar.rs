//! The Trellis proxy as a plain sidecar, end to end with `trellis control-plane`:
//!
//! - with bookinfo's Services and DestinationRules (no Sidecar resource: capture listeners
//!   `virtualOutbound`/`virtualInbound`, `bind_to_port: false` per-port listeners,
//!   `InboundPassthroughCluster`), the control plane's `/debug/syncz` shows the proxy has
//!   ACKed every type and NACKed nothing;
//! - an explicit TCP egress listener (`captureMode: NONE`, `protocol: TCP`) proxies bytes to
//!   the service's workload, passing the client's half-close on and the answer that follows
//!   it back.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use trellis_testkit::mesh;
use trellis_testkit::mesh_yaml::bookinfo_sample;
use trellis_testkit::trellis_proxy::{self, ProxyIdentity};
use trellis_testkit::{echo_after_eof, free_port, get, temp_dir, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGE: Duration = Duration::from_secs(30);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn a_bookinfo_sidecar_acks_every_type() {
    let dir = temp_dir();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    for (from, to) in [
        ("platform/kube/bookinfo.yaml", "bookinfo.yaml"),
        ("networking/destination-rule-all.yaml", "dr.yaml"),
    ] {
        std::fs::write(config.join(to), bookinfo_sample(from)).expect("write");
    }
    let at = ip("127.0.0.41");
    let (cp, xds, debug) = mesh::control_plane(Path::new(TRELLIS), dir.path(), at, CONVERGE);
    let admin = SocketAddr::new(ip("127.0.0.1"), free_port(ip("127.0.0.1")));
    let _proxy = trellis_proxy::start(
        Path::new(TRELLIS),
        xds,
        admin,
        &ProxyIdentity {
            name: "productpage-v1-0",
            namespace: "default",
            service_account: "bookinfo-productpage",
            labels: "app=productpage,version=v1",
            ip: at,
        },
        &dir.path().join("proxy.log"),
        CONVERGE,
    );
    wait_until("every type ACKed in /debug/syncz", CONVERGE, || {
        mesh::synced(debug, "productpage-v1-0").map_err(|e| format!("{e}\n{}", cp.tail(10)))
    });
}

#[test]
fn tcp_egress_passes_half_close_both_ways() {
    let dir = temp_dir();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    let (client_ip, backend_ip) = (ip("127.0.0.43"), ip("127.0.0.44"));
    let backend = TcpListener::bind((backend_ip, 0)).expect("bind backend");
    let backend_port = backend.local_addr().expect("addr").port();
    echo_after_eof(backend, 4);
    std::fs::write(
        config.join("mesh.yaml"),
        format!(
            "apiVersion: v1
kind: Service
metadata: {{name: mysqldb, namespace: default}}
spec:
  selector: {{app: mysqldb}}
  ports:
  - {{name: tcp, port: 3306}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: mysqldb-v1, namespace: default}}
spec:
  address: {backend_ip}
  ports: {{tcp: {backend_port}}}
  labels: {{app: mysqldb, version: v1, security.istio.io/tlsMode: disabled}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: client, namespace: default}}
spec:
  workloadSelector:
    labels: {{app: tcp-client}}
  egress:
  - port: {{number: 3306, protocol: TCP, name: tcp}}
    bind: {client_ip}
    captureMode: NONE
    hosts: [./*]
"
        ),
    )
    .expect("write");
    let (cp, xds, _debug) =
        mesh::control_plane(Path::new(TRELLIS), dir.path(), client_ip, CONVERGE);
    let admin = SocketAddr::new(ip("127.0.0.1"), free_port(ip("127.0.0.1")));
    let proxy = trellis_proxy::start(
        Path::new(TRELLIS),
        xds,
        admin,
        &ProxyIdentity {
            name: "tcp-client",
            namespace: "default",
            service_account: "default",
            labels: "app=tcp-client",
            ip: client_ip,
        },
        &dir.path().join("proxy.log"),
        CONVERGE,
    );
    wait_until("bytes through the TCP egress listener", CONVERGE, || {
        let mut s =
            TcpStream::connect_timeout(&SocketAddr::new(client_ip, 3306), Duration::from_secs(2))
                .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        s.write_all(b"select 1").map_err(|e| e.to_string())?;
        // Half-close: the backend answers only after it saw the end of the request.
        s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
        (answer == "echo select 1")
            .then_some(())
            .ok_or_else(|| format!("answer {answer:?}\n{}\n{}", proxy.tail(10), cp.tail(10)))
    });
    let stats = get(admin, "/stats", &[], Duration::from_secs(2)).expect("stats");
    assert!(
        stats.body.lines().any(|l| l.starts_with(
            "cluster.outbound|3306||mysqldb.default.svc.cluster.local.upstream_cx_total: "
        ) && !l.ends_with(": 0")),
        "{}",
        stats.body
    );
}
