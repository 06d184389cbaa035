//! Starting `trellis proxy` in tests: the same identity flags as `trellis bootstrap envoy`,
//! the access log on, and a wait for its admin `/ready`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

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
    let mut command = Command::new(trellis);
    command
        .args(["proxy", "--xds-address", &xds.to_string()])
        .args(["--name", who.name, "--namespace", who.namespace])
        .args(["--service-account", who.service_account])
        .args(["--labels", who.labels])
        .args(["--ip", &who.ip.to_string()])
        .args(["--admin-port", &admin.port().to_string()])
        .arg("--access-log")
        .env("TRELLIS_LOG", "info");
    let mut process = Process::start("trellis proxy", command, log);
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
    process
}

/// The resident set size of a process, in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
