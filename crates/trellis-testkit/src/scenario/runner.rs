//! Runs a [`Scenario`] through one data plane:
//!
//! 1. leases a loopback /24 (`127.77.K.0`) so that scenarios in parallel — in this process
//!    or in another one — never share an address: the client sidecar binds `127.77.K.1`,
//!    workloads listen on `127.77.K.10...`;
//! 2. starts the scripted workloads and writes the config directory: a Service and
//!    WorkloadEntries per service, the client's Sidecar (egress listeners with
//!    `captureMode: NONE` bound to `127.77.K.1`, one per service port), then the scenario's
//!    own files verbatim;
//! 3. starts `trellis control-plane` and the data plane, and waits until the data plane is
//!    ready: the configuration was complete before the control plane started, so it is
//!    in force from then on;
//! 4. sends each check's batch and judges it; expectations on what happens after the
//!    responses (mirrors, counters) are polled for a bounded time;
//! 5. finally, when the data plane exports counters, checks it rejected no configuration.
//!
//! Processes and workloads are owned by guards and stopped when the run ends, also on
//! panic. The returned [`Report`] holds every outcome, for comparing data planes.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::backend::{ScriptedBackend, Seen};
use super::client::{self, Outcome};
use super::data_plane::{DataPlane, NodeSpec, RunningDataPlane, start_ready};
use super::expect::{self, Expect, Observed, SKIPPED};
use super::{Check, Scenario, workload_name};
use crate::mesh;
use crate::{Process, free_port, temp_dir};

/// How long processes get to start and configuration to arrive.
const CONVERGE: Duration = Duration::from_secs(30);
/// How long expectations on late effects (mirrors, counters) are polled.
const EVENTUAL: Duration = Duration::from_secs(10);
/// A port held on `127.77.K.1` for as long as the /24 is in use.
const LEASE_PORT: u16 = 15999;

/// Runs scenarios with one `trellis` binary through one data plane.
pub struct Runner<'a> {
    pub trellis: PathBuf,
    pub data_plane: &'a dyn DataPlane,
}

/// What one run saw.
#[derive(Debug)]
pub struct Report {
    pub scenario: &'static str,
    pub summary: &'static str,
    pub data_plane: String,
    pub checks: Vec<CheckReport>,
    /// Logs of the control plane and the data plane (tails), for failures.
    pub logs: String,
}

#[derive(Debug)]
pub struct CheckReport {
    pub name: &'static str,
    pub outcomes: Vec<Outcome>,
    /// One line per expectation that failed.
    pub failures: Vec<String>,
    /// Expectations this data plane could not judge (`skipped: ...`).
    pub notes: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.failures.is_empty())
    }

    /// Panics with the whole report unless every check passed; prints the tallies and
    /// skipped checks either way (`--nocapture` shows them).
    pub fn assert_passed(&self) {
        eprintln!("scenario {} via {}:", self.scenario, self.data_plane);
        for c in &self.checks {
            eprintln!("  {}: {}", c.name, expect::tally(&c.outcomes));
            for note in &c.notes {
                eprintln!("    {note}");
            }
        }
        assert!(self.passed(), "{self}");
    }

    /// Outcomes of each check tallied by `status backend`: what two data planes must agree
    /// on (up to the statistical tolerance of weighted checks).
    pub fn tallies(&self) -> BTreeMap<&'static str, String> {
        self.checks
            .iter()
            .map(|c| (c.name, expect::tally(&c.outcomes)))
            .collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "scenario {} via {}: {}",
            self.scenario, self.data_plane, self.summary
        )?;
        for c in &self.checks {
            let verdict = if c.failures.is_empty() {
                "ok"
            } else {
                "FAILED"
            };
            writeln!(f, "  {} {verdict}: {}", c.name, expect::tally(&c.outcomes))?;
            for line in c.failures.iter().chain(&c.notes) {
                writeln!(f, "    {line}")?;
            }
        }
        write!(f, "{}", self.logs)
    }
}

impl Runner<'_> {
    pub fn run(&self, scenario: &Scenario) -> Report {
        let lease = Lease::take();
        let dir = temp_dir();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).expect("config dir");

        let mut backends: BTreeMap<String, ScriptedBackend> = BTreeMap::new();
        let mut registry = String::new();
        let mut next_ip = 10u8;
        for service in &scenario.services {
            registry.push_str(&service_yaml(service.name, service.port));
            for w in &service.workloads {
                let name = workload_name(service.name, w.version);
                let ip = lease.ip(next_ip);
                next_ip += 1;
                let backend = ScriptedBackend::start(SocketAddr::new(ip, 0), &name, w.behaviour);
                registry.push_str(&workload_entry_yaml(
                    service.name,
                    w.version,
                    ip,
                    backend.address.port(),
                ));
                backends.insert(name, backend);
            }
        }
        write(&config, "00-registry.yaml", &registry);
        let mut ports: Vec<u16> = scenario.services.iter().map(|s| s.port).collect();
        ports.extend(scenario.checks.iter().map(|c| c.request.port));
        ports.sort_unstable();
        ports.dedup();
        write(
            &config,
            "00-client-sidecar.yaml",
            &sidecar_yaml(lease.client(), &ports, scenario.outbound_traffic_policy),
        );
        for (name, text) in &scenario.config {
            write(&config, name, text);
        }

        let control_plane = ControlPlane::start(
            &self.trellis,
            dir.path(),
            lease.client(),
            scenario.mesh_config.as_deref(),
        );
        let node = NodeSpec {
            trellis: self.trellis.clone(),
            xds: control_plane.xds,
            ip: lease.client(),
            name: "productpage-v1".into(),
            namespace: "default".into(),
            service_account: "bookinfo-productpage".into(),
            labels: vec![
                ("app".into(), "productpage".into()),
                ("version".into(), "v1".into()),
            ],
            admin: SocketAddr::new(
                Ipv4Addr::LOCALHOST.into(),
                free_port(Ipv4Addr::LOCALHOST.into()),
            ),
            dir: dir.path().to_path_buf(),
            router: false,
            ca_token: None,
        };
        let data_plane = start_ready(self.data_plane, &node, CONVERGE).unwrap_or_else(|e| {
            panic!(
                "{} did not start: {e}\n{}",
                self.data_plane.name(),
                control_plane.process.tail(15)
            )
        });

        let mut checks: Vec<CheckReport> = scenario
            .checks
            .iter()
            .map(|check| run_check(check, lease.client(), &backends, data_plane.as_ref()))
            .collect();
        checks.push(nothing_rejected(data_plane.as_ref()));

        Report {
            scenario: scenario.name,
            summary: scenario.summary,
            data_plane: self.data_plane.name().to_string(),
            checks,
            logs: format!("{}\n{}", control_plane.process.tail(20), data_plane.logs()),
        }
    }
}

fn run_check(
    check: &Check,
    client_ip: IpAddr,
    backends: &BTreeMap<String, ScriptedBackend>,
    data_plane: &dyn RunningDataPlane,
) -> CheckReport {
    let before: BTreeMap<String, (u64, usize)> = backends
        .iter()
        .map(|(n, b)| (n.clone(), (b.seen.hits(), b.seen.hosts().len())))
        .collect();
    let address = SocketAddr::new(client_ip, check.request.port);
    let outcomes = client::send_batch(address, &check.request, check.count, check.concurrency);
    let observed = Since {
        before,
        seen: backends
            .iter()
            .map(|(n, b)| (n.clone(), b.seen.clone()))
            .collect(),
        data_plane,
    };
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for e in &check.expect {
        match judge_in_time(e, &outcomes, &observed) {
            Ok(None) => {}
            Ok(Some(note)) => notes.push(note),
            Err(why) => failures.push(format!("{e:?}: {why}")),
        }
    }
    CheckReport {
        name: check.name,
        outcomes,
        failures,
        notes,
    }
}

/// Judges `e`; one that may still change is polled until it holds, for [`EVENTUAL`].
fn judge_in_time(
    e: &Expect,
    outcomes: &[Outcome],
    observed: &dyn Observed,
) -> Result<Option<String>, String> {
    let deadline = Instant::now() + EVENTUAL;
    loop {
        match expect::judge(e, outcomes, observed) {
            Err(_) if e.eventual() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            verdict => return verdict,
        }
    }
}

/// Envoy counts every NACK in `*.update_rejected`; none may have happened.
fn nothing_rejected(data_plane: &dyn RunningDataPlane) -> CheckReport {
    let (failures, notes) = match data_plane.stats() {
        Ok(Some(stats)) => {
            let rejected: Vec<_> = stats
                .iter()
                .filter(|(n, v)| n.ends_with("update_rejected") && **v > 0)
                .collect();
            if rejected.is_empty() {
                (vec![], vec![])
            } else {
                (
                    vec![format!("configuration rejected: {rejected:?}")],
                    vec![],
                )
            }
        }
        Ok(None) => (
            vec![],
            vec![format!("{SKIPPED} no stats to count rejections")],
        ),
        Err(e) => (vec![format!("stats: {e}")], vec![]),
    };
    CheckReport {
        name: "no configuration rejected",
        outcomes: Vec::new(),
        failures,
        notes,
    }
}

/// What workloads and the data plane observed since a check started.
struct Since<'a> {
    before: BTreeMap<String, (u64, usize)>,
    seen: BTreeMap<String, Arc<Seen>>,
    data_plane: &'a dyn RunningDataPlane,
}

impl Observed for Since<'_> {
    fn hits(&self, workload: &str) -> u64 {
        let Some(seen) = self.seen.get(workload) else {
            panic!("scenario names unknown workload {workload}");
        };
        seen.hits() - self.before[workload].0
    }

    fn hosts(&self, workload: &str) -> Vec<String> {
        let Some(seen) = self.seen.get(workload) else {
            panic!("scenario names unknown workload {workload}");
        };
        seen.hosts()[self.before[workload].1..].to_vec()
    }

    fn stats(&self) -> Result<Option<BTreeMap<String, u64>>, String> {
        self.data_plane.stats()
    }
}

/// A loopback /24 nobody else uses while this lease lives: held by listening on
/// `127.77.K.1:15999`, which fails for any other holder, in any process.
pub struct Lease {
    k: u8,
    _held: TcpListener,
}

impl Lease {
    pub fn take() -> Lease {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let start = std::process::id().wrapping_mul(31) + NEXT.fetch_add(1, Ordering::SeqCst);
        for i in 0..254u32 {
            let k = ((start + i) % 254 + 1) as u8;
            if let Ok(held) = TcpListener::bind((Ipv4Addr::new(127, 77, k, 1), LEASE_PORT)) {
                return Lease { k, _held: held };
            }
        }
        panic!("no free loopback /24 in 127.77.0.0/16");
    }

    /// `127.77.K.host`.
    pub fn ip(&self, host: u8) -> IpAddr {
        Ipv4Addr::new(127, 77, self.k, host).into()
    }

    /// `127.77.K.1`, where the client's sidecar listens.
    pub fn client(&self) -> IpAddr {
        self.ip(1)
    }
}

struct ControlPlane {
    process: Process,
    xds: SocketAddr,
}

impl ControlPlane {
    fn start(trellis: &Path, dir: &Path, ip: IpAddr, mesh_config: Option<&str>) -> ControlPlane {
        let xds = SocketAddr::new(ip, free_port(ip));
        let debug = SocketAddr::new(ip, free_port(ip));
        let mut command = mesh::control_plane_command(trellis, dir, xds, debug);
        if let Some(mesh) = mesh_config {
            let path = dir.join("mesh.yaml");
            std::fs::write(&path, mesh).expect("write mesh config");
            command.arg("--mesh-config").arg(path);
        }
        let process = mesh::run_control_plane(command, dir, debug, CONVERGE);
        ControlPlane { process, xds }
    }
}

/// Writes a config file atomically (the store must never see half a file).
fn write(config: &Path, name: &str, text: &str) {
    let staging = config.join(format!("..{name}.tmp"));
    std::fs::write(&staging, text).expect("write");
    std::fs::rename(&staging, config.join(name)).expect("rename");
}

fn service_yaml(name: &str, port: u16) -> String {
    format!(
        "---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{app: {name}}}
  ports:
  - {{name: http, port: {port}}}
"
    )
}

fn workload_entry_yaml(service: &str, version: &str, ip: IpAddr, port: u16) -> String {
    format!(
        "---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {service}-{version}, namespace: default}}
spec:
  address: {ip}
  ports: {{http: {port}}}
  labels: {{app: {service}, version: {version}, security.istio.io/tlsMode: disabled}}
"
    )
}

fn sidecar_yaml(bind: IpAddr, ports: &[u16], outbound: Option<&str>) -> String {
    let mut out = String::from(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector:
    labels: {app: productpage}
  egress:
",
    );
    for port in ports {
        out.push_str(&format!(
            "  - port: {{number: {port}, protocol: HTTP, name: http-{port}}}
    bind: {bind}
    captureMode: NONE
    hosts: [./*]
"
        ));
    }
    if let Some(mode) = outbound {
        out.push_str(&format!("  outboundTrafficPolicy: {{mode: {mode}}}\n"));
    }
    out
}
