//! The Trellis proxy's idle footprint with the bookinfo configuration: `trellis
//! control-plane` with bookinfo's Services, `destination-rule-all` and
//! `virtual-service-all-v1`, and two productpage sidecars (default `--concurrency`): `trellis
//! proxy` and the proxy-only binary `trellis-proxy`. Once each is ready and has ACKed every
//! type, and they have idled a few seconds, this prints each one's RSS (VmRSS, RssAnon,
//! RssFile from `/proc/PID/status`, Pss from `smaps_rollup`) and thread count.
//!
//! The figures are of the binary this test build produced — a debug build unless the tests
//! run with `--release` — and are printed, never asserted: benchmarks report figures, tests
//! do not fail on a number. The test asserts only that the proxy is up and in sync. Run with
//! `cargo test -p trellis-cli --test proxy_footprint -- --nocapture` to see them.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use trellis_testkit::mesh;
use trellis_testkit::mesh_yaml::bookinfo_sample;
use trellis_testkit::trellis_proxy::{self, ProxyIdentity};
use trellis_testkit::{Process, free_port, get, temp_dir, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const TRELLIS_PROXY: &str = env!("CARGO_BIN_EXE_trellis-proxy");
const CONVERGE: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_secs(3);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// `key: value kB` lines of a `/proc` file, for the keys asked.
fn proc_kib(path: &str, keys: &[&str]) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    keys.iter()
        .filter_map(|key| {
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((key.to_string(), value))
        })
        .collect()
}

#[test]
fn idle_bookinfo_sidecar_footprint() {
    let dir = temp_dir();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    for (from, to) in [
        ("platform/kube/bookinfo.yaml", "bookinfo.yaml"),
        ("networking/destination-rule-all.yaml", "dr.yaml"),
        ("networking/virtual-service-all-v1.yaml", "vs.yaml"),
    ] {
        std::fs::write(config.join(to), bookinfo_sample(from)).expect("write");
    }
    let at = ip("127.0.0.61");
    let (cp, xds, debug) = mesh::control_plane(Path::new(TRELLIS), dir.path(), at, CONVERGE);
    let admin = SocketAddr::new(ip("127.0.0.1"), free_port(ip("127.0.0.1")));
    let mut proxy = trellis_proxy::start(
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
    acked(debug, "productpage-v1-0", &cp);
    // The proxy-only binary, with the same flags (no `proxy` subcommand).
    let admin2 = SocketAddr::new(ip("127.0.0.1"), free_port(ip("127.0.0.1")));
    let mut command = Command::new(TRELLIS_PROXY);
    command
        .args(["--xds-address", &xds.to_string()])
        .args(["--name", "productpage-v1-1", "--namespace", "default"])
        .args(["--service-account", "bookinfo-productpage"])
        .args(["--labels", "app=productpage,version=v1"])
        .args(["--ip", "127.0.0.62"])
        .args(["--admin-port", &admin2.port().to_string()])
        .args(["--status-port", "0"])
        .env("TRELLIS_LOG", "info");
    let mut proxy2 = Process::start("trellis-proxy", command, &dir.path().join("proxy2.log"));
    acked(debug, "productpage-v1-1", &cp);

    std::thread::sleep(IDLE);
    for (name, process, admin) in [
        ("trellis proxy", &mut proxy, admin),
        ("trellis-proxy", &mut proxy2, admin2),
    ] {
        assert!(process.running(), "{name} exited\n{}", process.tail(30));
        let ready = get(admin, "/ready", &[], Duration::from_secs(2)).expect("admin /ready");
        assert_eq!(ready.status, 200, "{name}: {}", ready.body);
        let pid = process.pid().expect("pid");
        println!("{name} idle, bookinfo sidecar: {}", footprint(pid));
    }
}

/// Waits until the control plane's `/debug/syncz` shows `node` has ACKed cds/eds/lds/rds
/// and NACKed nothing.
fn acked(debug: SocketAddr, node: &str, cp: &Process) {
    wait_until("every type ACKed in /debug/syncz", CONVERGE, || {
        mesh::synced(debug, node).map_err(|e| format!("{e}\n{}", cp.tail(10)))
    });
}

/// RSS figures and thread count of `pid`, and which build they are of.
fn footprint(pid: u32) -> String {
    let status = proc_kib(
        &format!("/proc/{pid}/status"),
        &["VmRSS", "RssAnon", "RssFile", "VmHWM"],
    );
    let rollup = proc_kib(&format!("/proc/{pid}/smaps_rollup"), &["Pss", "Pss_Anon"]);
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or_default();
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let figures: Vec<String> = status
        .iter()
        .chain(&rollup)
        .map(|(k, v)| format!("{k} {v} KiB"))
        .collect();
    assert!(
        status.iter().any(|(k, _)| k == "VmRSS"),
        "no VmRSS for {pid}"
    );
    format!("{build} build: {}, {threads} threads", figures.join(", "))
}
