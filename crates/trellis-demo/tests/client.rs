//! The counting client against real servers on loopback: httpbin, a closed port, a
//! server that drops connections, and the `trellis-app` binary itself.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use hyper::header::HeaderName;
use trellis_demo::App;
use trellis_demo::client::{self, ClientConfig, ErrorKind, Target};
use trellis_demo::httpbin::Httpbin;

fn config(url: &str, count: u64) -> ClientConfig {
    ClientConfig::new(Target::parse(url).unwrap(), count)
}

#[tokio::test]
async fn counts_statuses_and_groups() {
    let bin = start(App::Httpbin(Httpbin::default())).await;
    let mut cfg = config(&format!("http://{}/status/418", bin.address()), 20);
    cfg.concurrency = 4;
    cfg.group_by = Some(HeaderName::from_static("x-trellis-app"));
    let report = client::run(&cfg).await;
    assert_eq!(report.sent, 20);
    assert_eq!(report.statuses.get(&418), Some(&20));
    assert_eq!(report.groups.get("httpbin-v1"), Some(&20));
    assert_eq!(report.transport_errors(), 0);
    assert!(report.latency.is_some());

    let mut cfg = config(&format!("http://{}/status/200,503", bin.address()), 30);
    cfg.rate = Some(1000.0);
    cfg.group_by = Some(HeaderName::from_static("x-missing"));
    let report = client::run(&cfg).await;
    assert_eq!(report.responses(), 30);
    assert!(
        report.statuses.keys().all(|s| [200, 503].contains(s)),
        "{report:?}"
    );
    assert_eq!(report.groups.get(client::report::NO_GROUP), Some(&30));
}

#[tokio::test]
async fn headers_are_sent_and_groups_follow_response_headers() {
    let bin = start(App::Httpbin(Httpbin::default())).await;
    let mut cfg = config(
        &format!("http://{}/response-headers?x-version=v2", bin.address()),
        5,
    );
    cfg.group_by = Some(HeaderName::from_static("x-version"));
    let report = client::run(&cfg).await;
    assert_eq!(report.groups.get("v2"), Some(&5), "{report:?}");

    let recorder = Recorder::start(200, "ok", Duration::ZERO).await;
    let mut cfg = config(&format!("http://{}/x", recorder.address), 3);
    cfg.headers = vec![
        client::parse_header("end-user: jason").unwrap(),
        client::parse_header("host: reviews:9080").unwrap(),
    ];
    client::run(&cfg).await;
    let seen = recorder.requests();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|h| h["end-user"] == "jason" && h["host"] == "reviews:9080")
    );
}

#[tokio::test]
async fn transport_errors_are_classified() {
    let closed = closed();
    let report = client::run(&config(&format!("http://{}/", closed.authority()), 3)).await;
    assert_eq!(
        report.errors.get(&ErrorKind::ConnectRefused),
        Some(&3),
        "{report:?}"
    );
    assert_eq!(report.responses(), 0);

    let bin = start(App::Httpbin(Httpbin::default())).await;
    let mut cfg = config(&format!("http://{}/delay/3", bin.address()), 2);
    cfg.timeout = Duration::from_millis(100);
    cfg.concurrency = 2;
    let report = client::run(&cfg).await;
    assert_eq!(
        report.errors.get(&ErrorKind::Timeout),
        Some(&2),
        "{report:?}"
    );

    // A server that accepts and closes without answering.
    let listener = tokio::net::TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let address = listener.local_addr().unwrap();
    let dropper = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    let report = client::run(&config(&format!("http://{address}/"), 3)).await;
    dropper.abort();
    assert_eq!(report.errors.get(&ErrorKind::Reset), Some(&3), "{report:?}");
}

fn app() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trellis-app"))
}

#[test]
fn the_binary_serves_and_counts() {
    let dir = trellis_testkit::temp_dir();
    let port = trellis_testkit::free_port(LOOPBACK);
    let mut server = app();
    server.args([
        "httpbin",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--version",
        "v7",
    ]);
    let server =
        trellis_testkit::Process::start("httpbin", server, &dir.path().join("httpbin.log"));
    let address = std::net::SocketAddr::new(LOOPBACK, port);
    trellis_testkit::wait_until("httpbin to answer", Duration::from_secs(10), || {
        trellis_testkit::get(address, "/health", &[], Duration::from_secs(1))
    });

    let url = format!("http://{address}/status/202");
    let out = app()
        .args([
            "client",
            "--url",
            &url,
            "--count",
            "6",
            "--concurrency",
            "2",
        ])
        .args([
            "--group-by-header",
            "x-trellis-app",
            "--json",
            "-H",
            "x-a: b",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", server.tail(20));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["statuses"]["202"], 6);
    assert_eq!(report["groups"]["httpbin-v7"], 6);

    let text = app()
        .args([
            "client",
            "--url",
            &url,
            "--count",
            "2",
            "--group-by-header",
            "x-trellis-app",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("httpbin-v7") && text.contains("202"),
        "{text}"
    );

    let closed = format!("http://{}/", common::closed().authority());
    let failed = app()
        .args([
            "client",
            "--url",
            &closed,
            "--count",
            "2",
            "--fail-on-error",
        ])
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let tolerated = app()
        .args(["client", "--url", &closed, "--count", "2"])
        .output()
        .unwrap();
    assert!(tolerated.status.success());

    let bad = app()
        .args(["client", "--url", "ftp://x/"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_binary_echoes_tcp() {
    let dir = trellis_testkit::temp_dir();
    let port = trellis_testkit::free_port(LOOPBACK);
    let mut server = app();
    server.args([
        "tcp-echo",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--prefix",
        "one",
    ]);
    let server = trellis_testkit::Process::start("tcp-echo", server, &dir.path().join("echo.log"));
    let address = format!("127.0.0.1:{port}");
    let out = trellis_testkit::wait_until("tcp-echo to answer", Duration::from_secs(10), || {
        let out = app()
            .args([
                "tcp-client",
                "--address",
                &address,
                "--message",
                "hi",
                "--count",
                "2",
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "one hi\none hi\n",
        "{}",
        server.tail(10)
    );
}
