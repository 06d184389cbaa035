//! Starting `trellis proxy` in tests: the same identity flags as `trellis bootstrap envoy`,
//! info logs, no status port (tests run many proxies side by side; 15021 is for
//! the one proxy of a network namespace, see [`command`]), and a wait for its admin
//! `/ready`; and [`TrellisProxy`], the proxy as a scenario [`DataPlane`].

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::scenario::data_plane::AdminProcess;
use crate::scenario::{DataPlane, NodeSpec, RunningDataPlane};
use crate::{Process, get, wait_until};

/// Who the proxy is and where it finds its control plane.
#[derive(Debug, Clone)]
pub struct ProxyIdentity<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub service_account: &'a str,
    /// `k=v,k2=v2`.
    pub labels: &'a str,
    pub ip: IpAddr,
}

/// Starts `trellis proxy` (the binary at `trellis`) and waits until it is ready.
pub fn start(
    trellis: &Path,
    xds: SocketAddr,
    admin: SocketAddr,
    who: &ProxyIdentity<'_>,
    log: &Path,
    timeout: Duration,
) -> Process {
    let command = proxy_command(trellis, xds, admin, who);
    let mut process = Process::start("trellis proxy", command, log);
    wait_ready(&mut process, admin, timeout);
    process
}

/// Waits until the proxy's admin `/ready` says 200; panics with its log if it exits.
pub fn wait_ready(process: &mut Process, admin: SocketAddr, timeout: Duration) {
    wait_until("trellis proxy ready", timeout, || {
        if !process.running() {
            panic!("trellis proxy exited\n{}", process.tail(30));
        }
        get(admin, "/ready", &[], Duration::from_secs(2)).and_then(|r| {
            (r.status == 200)
                .then_some(())
                .ok_or(format!("{} {}", r.status, r.body))
        })
    });
}

/// The `trellis proxy` command (the binary at `trellis`) for `who`, with ADS at `xds`, the
/// admin listener at `admin`'s port, info logs and no status port. Access logs are the
/// control plane's to configure (meshConfig `accessLogFile`), as for Envoy.
fn proxy_command(
    trellis: &Path,
    xds: SocketAddr,
    admin: SocketAddr,
    who: &ProxyIdentity<'_>,
) -> Command {
    command(trellis, xds, admin, who, 0)
}

/// [`proxy_command`] with the status port (`/healthz/ready` on every address) at
/// `status_port`, 0 for none.
pub fn command(
    trellis: &Path,
    xds: SocketAddr,
    admin: SocketAddr,
    who: &ProxyIdentity<'_>,
    status_port: u16,
) -> Command {
    let mut command = node_command(trellis, xds, admin, who, status_port);
    command.env("TRELLIS_LOG", "info");
    command
}

/// Only what makes the proxy `who` (default log level): the sidecar as a
/// production mesh runs it, for measurements.
pub fn node_command(
    trellis: &Path,
    xds: SocketAddr,
    admin: SocketAddr,
    who: &ProxyIdentity<'_>,
    status_port: u16,
) -> Command {
    let mut command = Command::new(trellis);
    command
        .args(["proxy", "--xds-address", &xds.to_string()])
        .args(["--name", who.name, "--namespace", who.namespace])
        .args(["--service-account", who.service_account])
        .args(["--labels", who.labels])
        .args(["--ip", &who.ip.to_string()])
        .args(["--admin-port", &admin.port().to_string()])
        .args(["--status-port", &status_port.to_string()]);
    command
}

/// The resident set size of a process, in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// `trellis proxy` as a [`DataPlane`] for the behaviour scenarios: the same identity
/// flags as `trellis bootstrap envoy` gives Envoy, its admin `/ready` and its Envoy-named
/// `/stats` counters; with a [`NodeSpec::ca_token`], its certificate from the control
/// plane's CA (`--ca-address`, `--ca-token-file`).
#[derive(Debug, Clone, Default)]
pub struct TrellisProxy;

impl DataPlane for TrellisProxy {
    fn name(&self) -> &str {
        "trellis proxy"
    }

    fn start(&self, node: &NodeSpec) -> Result<Box<dyn RunningDataPlane>, String> {
        let labels = node
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut command = proxy_command(
            &node.trellis,
            node.xds,
            node.admin,
            &ProxyIdentity {
                name: &node.name,
                namespace: &node.namespace,
                service_account: &node.service_account,
                labels: &labels,
                ip: node.ip,
            },
        );
        if node.router {
            command.args(["--type", "router"]);
        }
        if let Some(token) = &node.ca_token {
            command
                .args(["--ca-address", &format!("http://{}", node.xds)])
                .arg("--ca-token-file")
                .arg(token);
        }
        let admin = SocketAddr::new([127, 0, 0, 1].into(), node.admin.port());
        Ok(Box::new(AdminProcess {
            name: "trellis proxy",
            process: Process::start("trellis proxy", command, &node.dir.join("proxy.log")),
            admin,
        }))
    }
}
