//! `trellis up` and `trellis down`: the control plane as a detached local process (its PID
//! and log in the state directory) serving xDS and the CA on the bridge address, where
//! sidecars in pods reach it; and the removal of everything the state records. The CA
//! keeps its root and token key in `<state>/ca`, from which each workload's bootstrap
//! token is minted (docs/ca.md).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::network::{self, NetworkConfig};
use crate::process::{self, ProcessRecord};
use crate::state::{ControlPlaneRecord, State, StateDir};
use crate::{exec, netns, pod};

/// What `trellis up` starts.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The directory of Istio YAML the control plane watches.
    pub config_dir: PathBuf,
    pub network: NetworkConfig,
    /// The xDS port, on the bridge address.
    pub xds_port: u16,
    /// The debug/metrics address (`/ready`, `/debug/*`), on the host.
    pub debug_address: SocketAddr,
    /// The `trellis` binary.
    pub trellis: PathBuf,
    pub ready_timeout: Duration,
}

/// Starts the bridge and the control plane and waits for its `/ready`. Whatever an earlier
/// crash left in the state is removed first; a running mesh is an error.
pub fn up(state: &StateDir, o: &UpOptions) -> Result<ControlPlaneRecord> {
    exec::preflight()?;
    let config_dir = o
        .config_dir
        .canonicalize()
        .ok()
        .filter(|d| d.is_dir())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "--config {} is not a directory",
                o.config_dir.display()
            ))
        })?;
    if let Some(pid) = running(&state.load()?) {
        return Err(Error::Invalid(format!(
            "trellis is already up in {} (pid {pid} runs); `trellis down` first",
            state.path().display()
        )));
    }
    down(state)?;
    port_free(o.debug_address)?;
    // From here on something is made: a failure removes all of it again.
    start(state, o, config_dir).inspect_err(|_| {
        let _ = down(state);
    })
}

fn port_free(address: SocketAddr) -> Result<()> {
    TcpListener::bind(address).map(drop).map_err(|e| {
        Error::Invalid(format!(
            "cannot listen on {address} ({e}): is something else using it?"
        ))
    })
}

fn start(state: &StateDir, o: &UpOptions, config_dir: PathBuf) -> Result<ControlPlaneRecord> {
    let network = network::ensure(state, &o.network)?;
    let xds_address = SocketAddr::from((network.gateway(), o.xds_port));
    port_free(xds_address)?;
    let log = state.join("control-plane.log");
    let ca_dir = state.join("ca");
    let mut record = ControlPlaneRecord {
        process: None,
        config_dir: config_dir.clone(),
        xds_address,
        debug_address: o.debug_address,
        log: log.clone(),
        ca_dir: Some(ca_dir.clone()),
    };
    let mut command = Command::new(&o.trellis);
    command
        .arg("control-plane")
        .arg("--config-dir")
        .arg(&config_dir)
        .args(["--xds-address", &xds_address.to_string()])
        .args(["--debug-address", &o.debug_address.to_string()])
        .arg("--state-dir")
        .arg(&ca_dir)
        .env(
            "TRELLIS_LOG",
            std::env::var("TRELLIS_LOG").unwrap_or_else(|_| "info".into()),
        );
    let mut child = process::spawn_logged(command, "the control plane", &log)?;
    record.process = ProcessRecord::of("control plane", child.id());
    state.update(|s| {
        s.control_plane = Some(record.clone());
        Ok(())
    })?;
    let deadline = Instant::now() + o.ready_timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = process::tail(&log, 20);
            return Err(Error::Failed(format!(
                "the control plane exited ({status}); its log ({}):\n{tail}",
                log.display()
            )));
        }
        if ready(o.debug_address) {
            return Ok(record);
        }
        if Instant::now() >= deadline {
            return Err(Error::Failed(format!(
                "the control plane was not ready after {:?}; its log ({}):\n{}",
                o.ready_timeout,
                log.display(),
                process::tail(&log, 20)
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ready(debug: SocketAddr) -> bool {
    let timeout = Duration::from_secs(2);
    TcpStream::connect_timeout(&debug, timeout)
        .ok()
        .and_then(|s| netns::request_over(s, "GET", debug, "/ready", &[], timeout).ok())
        .is_some_and(|r| r.status == 200)
}

/// A recorded process that still runs, other than this one.
fn running(state: &State) -> Option<u32> {
    let me = std::process::id();
    state
        .control_plane
        .iter()
        .filter_map(|c| c.process.as_ref())
        .chain(
            state
                .pods
                .values()
                .flat_map(|p| p.supervisor.iter().chain(&p.processes)),
        )
        .find(|p| p.pid != me && p.alive())
        .map(|p| p.pid)
}

/// What `down` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownReport {
    pub pods: Vec<String>,
    pub control_plane: bool,
    pub bridge: Option<String>,
}

/// Stops and removes everything the state records: each `trellis run` is asked to stop
/// (SIGTERM) and given time to stop its app and sidecar in order; what is left of its pod
/// is then removed by force; then the control plane, the bridge and its rules.
pub fn down(state: &StateDir) -> Result<DownReport> {
    let before = state.load()?;
    let me = std::process::id();
    let supervisors: Vec<&ProcessRecord> = before
        .pods
        .values()
        .filter_map(|p| p.supervisor.as_ref())
        .filter(|p| p.pid != me)
        .collect();
    for supervisor in &supervisors {
        supervisor.signal(nix::sys::signal::Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while supervisors.iter().any(|s| s.alive()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut report = DownReport {
        pods: before.pods.keys().cloned().collect(),
        ..DownReport::default()
    };
    let left = state.load()?;
    for (key, record) in &left.pods {
        if let Some(supervisor) = record.supervisor.as_ref().filter(|s| s.pid != me) {
            supervisor.signal(nix::sys::signal::Signal::SIGKILL);
        }
        pod::remove_objects(record);
        pod::forget(state, key)?;
    }
    if let Some(cp) = &left.control_plane {
        if let Some(process) = &cp.process {
            process.stop(Duration::from_secs(5));
        }
        report.control_plane = true;
    }
    if let Some(network) = &left.network {
        network::teardown(network);
        report.bridge = Some(network.bridge.clone());
    }
    state.update(|s| {
        *s = State::default();
        Ok(())
    })?;
    Ok(report)
}
