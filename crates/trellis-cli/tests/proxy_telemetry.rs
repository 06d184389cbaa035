//! Istio's standard telemetry through two Trellis proxies on loopback: a client sidecar
//! (`productpage-v1`, an explicit `captureMode: NONE` egress listener) calls a server
//! sidecar (`reviews-v1`, an explicit ingress listener in front of a tiny backend) and a
//! service with no endpoint. Both proxies report `istio_requests_total` on their stats port
//! (15090) with Istio's full label set — the client as `source`, learning the server's
//! workload from metadata exchange; the server as `destination`, learning the client's —
//! and write Istio's default access log lines with the response flags and details.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use trellis_testkit::trellis_proxy::{self, ProxyIdentity};
use trellis_testkit::{Backend, Process, free_port, get, mesh, temp_dir, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGE: Duration = Duration::from_secs(30);
const STATS_PORT: u16 = 15090;
const OK_REQUESTS: usize = 5;
const FAILED_REQUESTS: usize = 2;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// `app_port`: where the server workload's application listens on its own IP; `db`: a
/// TCP workload without a sidecar.
fn mesh_yaml(client: IpAddr, server: IpAddr, app_port: u16, db: SocketAddr) -> String {
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
  address: {db_ip}
  ports: {{tcp: {db_port}}}
  labels: {{app: mysqldb, version: v1, security.istio.io/tlsMode: disabled}}
---
apiVersion: v1
kind: Service
metadata: {{name: reviews, namespace: default}}
spec:
  selector: {{app: reviews}}
  ports:
  - {{name: http, port: 9080}}
---
apiVersion: v1
kind: Service
metadata: {{name: ghost, namespace: default}}
spec:
  selector: {{app: ghost}}
  ports:
  - {{name: http, port: 9080}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: productpage, namespace: default}}
spec:
  workloadSelector:
    labels: {{app: productpage}}
  egress:
  - port: {{number: 9080, protocol: HTTP, name: http}}
    bind: {client}
    captureMode: NONE
    hosts: [./*]
  - port: {{number: 3306, protocol: TCP, name: tcp}}
    bind: {client}
    captureMode: NONE
    hosts: [./*]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: reviews, namespace: default}}
spec:
  workloadSelector:
    labels: {{app: reviews}}
  ingress:
  - port: {{number: 9080, protocol: HTTP, name: http}}
    bind: {server}
    captureMode: NONE
    defaultEndpoint: 0.0.0.0:{app_port}
  egress:
  - hosts: [./*]
",
        db_ip = db.ip(),
        db_port = db.port(),
    )
}

/// A proxy's output once its access log has flushed a line containing `last` and then
/// written nothing more for a moment.
fn settled_log(path: &Path, last: &str) -> String {
    let mut seen = String::new();
    wait_until("access log lines", CONVERGE, || {
        let now = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let settled = now.contains(last) && now == seen;
        seen = now;
        if settled {
            Ok(seen.clone())
        } else {
            Err(format!("no line with {last:?} yet, or still growing"))
        }
    })
}

/// Answers `pong` to whatever it read once the client half-closed.
fn pong_after_eof(listener: std::net::TcpListener) {
    std::thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut got = Vec::new();
            if s.read_to_end(&mut got).is_ok() {
                let _ = s.write_all(b"pong");
            }
        }
    });
}

fn start_proxy(
    dir: &Path,
    xds: SocketAddr,
    name: &str,
    labels: &str,
    at: IpAddr,
) -> (Process, SocketAddr) {
    let admin = SocketAddr::new(ip("127.0.0.1"), free_port(ip("127.0.0.1")));
    let process = trellis_proxy::start(
        Path::new(TRELLIS),
        xds,
        admin,
        &ProxyIdentity {
            name,
            namespace: "default",
            service_account: name,
            labels,
            ip: at,
        },
        &dir.join(format!("{name}.log")),
        CONVERGE,
    );
    (process, admin)
}

/// `POST path` on a new connection; the whole answer, status line included.
fn post(address: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&address, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: admin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    answer
}

/// The `istio_requests_total` lines of a Prometheus page.
fn requests_total(page: &str) -> Vec<String> {
    let mut lines: Vec<String> = page
        .lines()
        .filter(|l| l.starts_with("istio_requests_total{"))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn series(labels: &[(&str, &str)], count: usize) -> String {
    let body: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("istio_requests_total{{{}}} {count}", body.join(","))
}

fn productpage() -> Vec<(&'static str, &'static str)> {
    vec![
        ("source_workload", "productpage-v1"),
        ("source_canonical_service", "productpage"),
        ("source_canonical_revision", "v1"),
        ("source_workload_namespace", "default"),
        ("source_principal", "unknown"),
        ("source_app", "productpage"),
        ("source_version", "v1"),
        ("source_cluster", "Kubernetes"),
    ]
}

fn reviews_destination() -> Vec<(&'static str, &'static str)> {
    vec![
        ("destination_workload", "reviews-v1"),
        ("destination_workload_namespace", "default"),
        ("destination_principal", "unknown"),
        ("destination_app", "reviews"),
        ("destination_version", "v1"),
        ("destination_service", "reviews.default.svc.cluster.local"),
        ("destination_canonical_service", "reviews"),
        ("destination_canonical_revision", "v1"),
        ("destination_service_name", "reviews"),
        ("destination_service_namespace", "default"),
        ("destination_cluster", "Kubernetes"),
    ]
}

fn outcome(
    code: &'static str,
    flags: &'static str,
    policy: &'static str,
) -> Vec<(&'static str, &'static str)> {
    vec![
        ("request_protocol", "http"),
        ("response_code", code),
        ("grpc_response_status", ""),
        ("response_flags", flags),
        ("connection_security_policy", policy),
    ]
}

#[test]
fn both_sidecars_report_istio_metrics_and_access_logs() {
    let dir = temp_dir();
    std::fs::create_dir(dir.path().join("config")).expect("config dir");
    let (cp_ip, client_ip, server_ip) = (ip("127.0.0.70"), ip("127.0.0.71"), ip("127.0.0.72"));
    let app = Backend::start(SocketAddr::new(server_ip, 0), "reviews v1");
    let db = std::net::TcpListener::bind((ip("127.0.0.74"), 0)).expect("bind db");
    let db_address = db.local_addr().expect("db address");
    pong_after_eof(db);
    std::fs::write(
        dir.path().join("config/mesh.yaml"),
        mesh_yaml(client_ip, server_ip, app.address.port(), db_address),
    )
    .expect("write");
    // Istio's demo profile: access logs on stdout in Istio's text format.
    let (cp, xds, _debug) = mesh::control_plane_with_mesh(
        Path::new(TRELLIS),
        dir.path(),
        cp_ip,
        "accessLogFile: /dev/stdout\n",
        CONVERGE,
    );
    let (server, _) = start_proxy(
        dir.path(),
        xds,
        "reviews-v1",
        "app=reviews,version=v1",
        server_ip,
    );
    let (client, client_admin) = start_proxy(
        dir.path(),
        xds,
        "productpage-v1",
        "app=productpage,version=v1",
        client_ip,
    );
    // No request before the server's endpoint reached the client: every request counts.
    wait_until("the reviews endpoint at the client", CONVERGE, || {
        let dump = get(client_admin, "/config_dump", &[], Duration::from_secs(5))?;
        let dump: serde_json::Value =
            serde_json::from_str(&dump.body).map_err(|e| e.to_string())?;
        let endpoints = dump["clusters"]
            .as_array()
            .and_then(|c| {
                c.iter()
                    .find(|c| c["name"] == "outbound|9080||reviews.default.svc.cluster.local")
            })
            .map(|c| c["endpoints"].clone());
        (endpoints == Some(serde_json::json!(["127.0.0.72:9080"])))
            .then_some(())
            .ok_or_else(|| {
                format!(
                    "{endpoints:?}\n{}\n{}\n{}",
                    client.tail(10),
                    server.tail(10),
                    cp.tail(10)
                )
            })
    });
    let egress = SocketAddr::new(client_ip, 9080);
    let call = |host: &str| get(egress, "/", &[("host", host)], Duration::from_secs(5));
    for _ in 0..OK_REQUESTS {
        let r = call("reviews.default.svc.cluster.local").expect("reviews");
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "reviews v1"),
            "\n{}\n{}",
            client.tail(20),
            server.tail(30)
        );
    }
    for _ in 0..FAILED_REQUESTS {
        let r = call("ghost.default.svc.cluster.local:9080").expect("ghost");
        assert_eq!((r.status, r.body.as_str()), (503, "no healthy upstream"));
    }

    let mut db =
        TcpStream::connect_timeout(&SocketAddr::new(client_ip, 3306), Duration::from_secs(5))
            .expect("connect to the TCP egress listener");
    db.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    db.write_all(b"ping!").expect("write");
    db.shutdown(Shutdown::Write).expect("half-close");
    let mut answer = String::new();
    db.read_to_string(&mut answer).expect("read");
    assert_eq!(answer, "pong");
    drop(db);

    let mut source_ok = vec![("reporter", "source")];
    source_ok.extend(productpage());
    source_ok.extend(reviews_destination());
    source_ok.extend(outcome("200", "-", "unknown"));
    let mut source_ghost = vec![("reporter", "source")];
    source_ghost.extend(productpage());
    source_ghost.extend([
        ("destination_workload", "unknown"),
        ("destination_workload_namespace", "unknown"),
        ("destination_principal", "unknown"),
        ("destination_app", "unknown"),
        ("destination_version", "unknown"),
        ("destination_service", "ghost.default.svc.cluster.local"),
        ("destination_canonical_service", "unknown"),
        ("destination_canonical_revision", "latest"),
        ("destination_service_name", "ghost"),
        ("destination_service_namespace", "default"),
        ("destination_cluster", "unknown"),
    ]);
    source_ghost.extend(outcome("503", "UH", "unknown"));
    let mut destination_ok = vec![("reporter", "destination")];
    destination_ok.extend(productpage());
    destination_ok.extend(reviews_destination());
    destination_ok.extend(outcome("200", "-", "none"));

    let expect_client = {
        let mut v = vec![
            series(&source_ok, OK_REQUESTS),
            series(&source_ghost, FAILED_REQUESTS),
        ];
        v.sort();
        v
    };
    let expect_server = vec![series(&destination_ok, OK_REQUESTS)];
    for (who, at, expected) in [
        ("client", client_ip, expect_client),
        ("server", server_ip, expect_server),
    ] {
        // Reports are written when a response ends: poll until the last one is in.
        wait_until(&format!("{who} istio_requests_total"), CONVERGE, || {
            let page = get(
                SocketAddr::new(at, STATS_PORT),
                "/stats/prometheus",
                &[],
                Duration::from_secs(5),
            )?;
            let got = requests_total(&page.body);
            (got == expected).then_some(()).ok_or_else(|| {
                format!("got\n{}\nexpected\n{}", got.join("\n"), expected.join("\n"))
            })
        });
    }
    // The TCP connection, on the client only (the database has no sidecar).
    let mut tcp = vec![("reporter", "source")];
    tcp.extend(productpage());
    tcp.extend([
        ("destination_workload", "mysqldb-v1"),
        ("destination_workload_namespace", "default"),
        ("destination_principal", "unknown"),
        ("destination_app", "unknown"),
        ("destination_version", "unknown"),
        ("destination_service", "mysqldb.default.svc.cluster.local"),
        ("destination_canonical_service", "mysqldb"),
        ("destination_canonical_revision", "v1"),
        ("destination_service_name", "mysqldb"),
        ("destination_service_namespace", "default"),
        ("destination_cluster", "Kubernetes"),
        ("request_protocol", "tcp"),
        ("response_flags", "-"),
        ("connection_security_policy", "unknown"),
    ]);
    let tcp_labels = series(&tcp, 0);
    let tcp_labels = tcp_labels
        .trim_start_matches("istio_requests_total")
        .trim_end_matches(" 0");
    let expected: Vec<String> = [
        ("istio_tcp_connections_closed_total", 1),
        ("istio_tcp_connections_opened_total", 1),
        ("istio_tcp_received_bytes_total", 5),
        ("istio_tcp_sent_bytes_total", 4),
    ]
    .iter()
    .map(|(name, n)| format!("{name}{tcp_labels} {n}"))
    .collect();
    wait_until("client istio_tcp_*", CONVERGE, || {
        let page = get(
            SocketAddr::new(client_ip, STATS_PORT),
            "/stats/prometheus",
            &[],
            Duration::from_secs(5),
        )?;
        let got: Vec<&str> = page
            .body
            .lines()
            .filter(|l| l.starts_with("istio_tcp_"))
            .collect();
        (got == expected)
            .then_some(())
            .ok_or_else(|| format!("got\n{}\nexpected\n{}", got.join("\n"), expected.join("\n")))
    });
    // The admin port serves the same page, with Envoy's per-cluster counters.
    let admin = get(
        client_admin,
        "/stats/prometheus",
        &[],
        Duration::from_secs(5),
    )
    .expect("admin");
    assert!(
        admin
            .body
            .contains("# TYPE istio_request_duration_milliseconds histogram")
    );
    assert!(
        admin.body.contains(
            "envoy_cluster_upstream_cx_none_healthy{cluster_name=\"outbound|9080||ghost.default.svc.cluster.local\"} 2"
        ),
        "{}",
        admin.body
    );

    // `/logging` changes the log filter at run time (the test kit starts with `info`).
    let changed = post(client_admin, "/logging?trellis_proxy::http=debug");
    assert!(changed.starts_with("HTTP/1.1 200"), "{changed}");
    assert!(
        changed.ends_with("active filter: info,trellis_proxy::http=debug\n"),
        "{changed}"
    );
    let shown = get(client_admin, "/logging", &[], Duration::from_secs(5)).expect("logging");
    assert_eq!(
        shown.body,
        "active filter: info,trellis_proxy::http=debug\n"
    );
    assert!(post(client_admin, "/logging?level=loud").starts_with("HTTP/1.1 400"));

    // Access logs: Istio's text format, flags and details as Envoy writes them, flushed
    // within Envoy's flush interval (1 s).
    let client_log = settled_log(&dir.path().join("productpage-v1.log"), "\"- - -\" 0 ");
    let ghost: Vec<&str> = client_log
        .lines()
        .filter(|l| l.contains("\"GET / HTTP/1.1\" 503 UH no_healthy_upstream - \"-\" 0 19 "))
        .collect();
    assert_eq!(ghost.len(), FAILED_REQUESTS, "{client_log}");
    assert!(
        ghost[0].contains(
            "\"ghost.default.svc.cluster.local:9080\" \"-\" outbound|9080||ghost.default.svc.cluster.local - 127.0.0.71:9080 "
        ),
        "{}",
        ghost[0]
    );
    let ok = client_log
        .lines()
        .filter(|l| {
            l.contains("\"GET / HTTP/1.1\" 200 - via_upstream - \"-\" 0 10 ")
                && l.contains(
                    "\"127.0.0.72:9080\" outbound|9080||reviews.default.svc.cluster.local",
                )
        })
        .count();
    assert_eq!(ok, OK_REQUESTS, "{client_log}");
    let tcp_line = "\"- - -\" 0 - - - \"-\" 5 4 ";
    let tcp_lines: Vec<&str> = client_log
        .lines()
        .filter(|l| l.contains(tcp_line))
        .collect();
    assert_eq!(tcp_lines.len(), 1, "{client_log}");
    assert!(
        tcp_lines[0].contains(&format!(
            "\"{db_address}\" outbound|3306||mysqldb.default.svc.cluster.local - 127.0.0.71:3306 "
        )),
        "{}",
        tcp_lines[0]
    );
    let server_log = settled_log(&dir.path().join("reviews-v1.log"), " inbound|9080|| ");
    let inbound = server_log
        .lines()
        .filter(|l| {
            l.contains("\"GET / HTTP/1.1\" 200 - via_upstream - \"-\" 0 10 ")
                && l.contains(" inbound|9080|| - 127.0.0.72:9080 ")
        })
        .count();
    assert_eq!(inbound, OK_REQUESTS, "{server_log}");
}
