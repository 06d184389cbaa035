//! The pieces of a mesh the end-to-end tests start by hand: a config directory written
//! atomically ([`MeshDir`]), `trellis control-plane` watching it, the reviews backends, and
//! counting the answers of a sidecar's egress listener.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::mesh_yaml::workload_entry;
use crate::{Backend, Process, free_port, get, temp_dir, wait_until};

/// A temporary directory with a `config` directory for the control plane to watch; logs
/// go beside it.
pub struct MeshDir {
    dir: tempfile::TempDir,
}

impl MeshDir {
    pub fn new() -> MeshDir {
        let dir = temp_dir();
        std::fs::create_dir(dir.path().join("config")).expect("config dir");
        MeshDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A file beside `config` (a log, a bootstrap).
    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a config file atomically (the store must never see half a file).
    pub fn write(&self, name: &str, text: &str) {
        let staging = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&staging, text).expect("write");
        std::fs::rename(&staging, self.dir.path().join("config").join(name)).expect("rename");
    }

    /// The WorkloadEntries `reviews-v1.yaml`.. of the [`reviews_backends`].
    pub fn write_reviews(&self, backends: &[Backend]) {
        for (v, b) in backends.iter().enumerate() {
            self.write(
                &format!("reviews-v{}.yaml", v + 1),
                &workload_entry(v + 1, b.address.port()),
            );
        }
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join("config").join(name)).expect("remove");
    }
}

impl Default for MeshDir {
    fn default() -> Self {
        MeshDir::new()
    }
}

/// The `trellis control-plane` command (the binary at `trellis`) on `dir/config`, serving
/// xDS at `xds` and its debug endpoints at `debug`, with its CA state in `dir/state`; add
/// flags, then [`run_control_plane`].
pub fn control_plane_command(
    trellis: &Path,
    dir: &Path,
    xds: SocketAddr,
    debug: SocketAddr,
) -> Command {
    let mut command = Command::new(trellis);
    command
        .arg("control-plane")
        .arg("--config-dir")
        .arg(dir.join("config"))
        .args(["--xds-address", &xds.to_string()])
        .args(["--debug-address", &debug.to_string()])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("TRELLIS_LOG", "info");
    command
}

/// Starts a [`control_plane_command`], logging to `dir/control-plane.log`, and waits for
/// its `/ready` at `debug`.
pub fn run_control_plane(
    command: Command,
    dir: &Path,
    debug: SocketAddr,
    timeout: Duration,
) -> Process {
    let mut process = Process::start("control plane", command, &dir.join("control-plane.log"));
    wait_until("control plane /ready", timeout, || {
        if !process.running() {
            panic!("control plane exited\n{}", process.tail(30));
        }
        get(debug, "/ready", &[], Duration::from_secs(2))
            .and_then(|r| (r.status == 200).then_some(()).ok_or(r.body))
    });
    process
}

/// Starts `trellis control-plane` (the binary at `trellis`) on `dir/config`, logging to
/// `dir/control-plane.log`, and waits for its `/ready`.
pub fn start_control_plane(
    trellis: &Path,
    dir: &Path,
    xds: SocketAddr,
    debug: SocketAddr,
    timeout: Duration,
) -> Process {
    let command = control_plane_command(trellis, dir, xds, debug);
    run_control_plane(command, dir, debug, timeout)
}

/// [`start_control_plane`] on free ports of `at`; the process, its xDS and debug addresses.
pub fn control_plane(
    trellis: &Path,
    dir: &Path,
    at: IpAddr,
    timeout: Duration,
) -> (Process, SocketAddr, SocketAddr) {
    let xds = SocketAddr::new(at, free_port(at));
    let debug = SocketAddr::new(at, free_port(at));
    let process = start_control_plane(trellis, dir, xds, debug, timeout);
    (process, xds, debug)
}

/// [`control_plane`] with a MeshConfig (`--mesh-config`, written to `dir/mesh-config.yaml`),
/// e.g. `accessLogFile: /dev/stdout` for access logs.
pub fn control_plane_with_mesh(
    trellis: &Path,
    dir: &Path,
    at: IpAddr,
    mesh_config: &str,
    timeout: Duration,
) -> (Process, SocketAddr, SocketAddr) {
    let xds = SocketAddr::new(at, free_port(at));
    let debug = SocketAddr::new(at, free_port(at));
    let process = start_control_plane_with_mesh(trellis, dir, xds, debug, mesh_config, timeout);
    (process, xds, debug)
}

/// [`start_control_plane`] with a MeshConfig (`--mesh-config`, written to
/// `dir/mesh-config.yaml`).
pub fn start_control_plane_with_mesh(
    trellis: &Path,
    dir: &Path,
    xds: SocketAddr,
    debug: SocketAddr,
    mesh_config: &str,
    timeout: Duration,
) -> Process {
    let path = dir.join("mesh-config.yaml");
    std::fs::write(&path, mesh_config).expect("write the mesh config");
    let mut command = control_plane_command(trellis, dir, xds, debug);
    command.arg("--mesh-config").arg(path);
    run_control_plane(command, dir, debug, timeout)
}

/// The reviews backends v1..v3 on 127.0.0.11..13, each answering its version.
pub fn reviews_backends() -> Vec<Backend> {
    (1..=3)
        .map(|v| {
            let address: IpAddr = format!("127.0.0.1{v}").parse().expect("ip");
            Backend::start(SocketAddr::new(address, 0), &format!("v{v}"))
        })
        .collect()
}

/// Sends `n` requests for `host` (with `headers`) to `listener`; counts the answers by body
/// (`status N` for other statuses, `error E` when there is no answer).
pub fn count_answers(
    listener: SocketAddr,
    host: &str,
    headers: &[(&str, &str)],
    n: usize,
) -> BTreeMap<String, usize> {
    let mut all = vec![("host", host)];
    all.extend_from_slice(headers);
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let key = match get(listener, "/", &all, Duration::from_secs(5)) {
            Ok(r) if r.status == 200 => r.body,
            Ok(r) => format!("status {}", r.status),
            Err(e) => format!("error {e}"),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// Starts a stock Envoy (the binary at `envoy`) as a client sidecar: `trellis bootstrap
/// envoy` (the binary at `trellis`) with ADS at `xds`, the admin listener at `admin`'s port
/// and `node_flags` (`--name`, `--labels`, `--ip`, …), written to `dir/envoy.json`; Envoy
/// logs to `dir/envoy.log`. Does not wait for it to be ready.
pub fn start_envoy_sidecar(
    trellis: &Path,
    envoy: &Path,
    dir: &Path,
    xds: SocketAddr,
    admin: SocketAddr,
    node_flags: &[&str],
) -> Process {
    let bootstrap = write_envoy_bootstrap(trellis, dir, xds, admin, node_flags);
    let command = envoy_command(envoy, &bootstrap);
    Process::start("envoy", command, &dir.join("envoy.log"))
}

/// Writes `dir/envoy.json` from `trellis bootstrap envoy` (the binary at `trellis`) with ADS
/// at `xds`, the admin listener at `admin`'s port and `node_flags`; returns its path.
pub fn write_envoy_bootstrap(
    trellis: &Path,
    dir: &Path,
    xds: SocketAddr,
    admin: SocketAddr,
    node_flags: &[&str],
) -> std::path::PathBuf {
    let bootstrap = dir.join("envoy.json");
    let out = Command::new(trellis)
        .args(["bootstrap", "envoy", "--xds-address", &xds.to_string()])
        .args(node_flags)
        .args(["--admin-port", &admin.port().to_string()])
        .output()
        .expect("trellis bootstrap");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&bootstrap, &out.stdout).expect("write bootstrap");
    bootstrap
}

/// Envoy (the binary at `envoy`) on `bootstrap`, as the tests run it: one worker, no hot
/// restart, warnings only.
pub fn envoy_command(envoy: &Path, bootstrap: &Path) -> Command {
    envoy_command_with_workers(envoy, bootstrap, 1)
}

/// [`envoy_command`] with `workers` worker threads (`--concurrency`).
pub fn envoy_command_with_workers(envoy: &Path, bootstrap: &Path, workers: usize) -> Command {
    let mut command = Command::new(envoy);
    command
        .arg("-c")
        .arg(bootstrap)
        .args(["--concurrency", &workers.to_string()])
        .args(["--disable-hot-restart", "-l", "warning"]);
    command
}

/// `trellis agent` (the binary at `trellis`) running the Envoy at `envoy` as the workload
/// `node_flags` (`--name`, `--labels`, `--ip`, …) with ADS (and the CA) at `xds`, the
/// admin listener at `admin`'s port and the bootstrap token in `token`; its SDS socket and
/// bootstrap go in `home`. The command ends with `--`: Envoy's own arguments follow.
pub fn envoy_agent_command(
    trellis: &Path,
    envoy: &Path,
    home: &Path,
    xds: SocketAddr,
    admin: SocketAddr,
    node_flags: &[&str],
    token: &Path,
) -> Command {
    let mut command = Command::new(trellis);
    command
        .args(["agent", "--xds-address", &xds.to_string()])
        .args(node_flags)
        .args(["--admin-port", &admin.port().to_string()])
        .arg("--ca-token-file")
        .arg(token)
        .arg("--sds-socket")
        .arg(home.join("sds.sock"))
        .arg("--bootstrap-out")
        .arg(home.join("envoy-rev.json"))
        .arg("--envoy")
        .arg(envoy)
        .arg("--");
    command
}

/// Whether the control plane's `/debug/syncz` (at `debug`) shows the proxy whose id
/// contains `node` with cds/eds/lds/rds ACKed and nothing NACKed; the reason when not.
pub fn synced(debug: SocketAddr, node: &str) -> Result<(), String> {
    let syncz = get(debug, "/debug/syncz", &[], Duration::from_secs(5))?;
    let all: serde_json::Value = serde_json::from_str(&syncz.body).map_err(|e| e.to_string())?;
    let entry = all
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|p| p["proxy"].as_str().is_some_and(|n| n.contains(node)))
        })
        .ok_or_else(|| format!("{node} not connected: {}", syncz.body))?;
    for t in ["cds", "eds", "lds", "rds"] {
        let s = &entry["types"][t];
        let acked = s["version_acked"].as_str().unwrap_or_default();
        if acked.is_empty() || acked != s["version_sent"].as_str().unwrap_or_default() {
            return Err(format!("{t} not ACKed: {s}"));
        }
        if !s["last_nack"].is_null() {
            return Err(format!("{t} NACKed: {}", s["last_nack"]));
        }
    }
    Ok(())
}
