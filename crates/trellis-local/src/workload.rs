//! `trellis run`: a workload in its own pod, beside its sidecar, with its traffic captured.
//!
//! Start, in this order, each step undone if a later one fails: the pod; the capture rules
//! (before the sidecar, as Istio's init container: rules added under an open connection
//! cut it — the first packet the control plane sends afterwards is taken for a new
//! connection and redirected to 15006, and Envoy waits up to 30 s to reconnect); with a CA,
//! the sidecar's bootstrap token (crate::identity); the sidecar as uid/gid 1337 (its own
//! traffic is never redirected); wait until the sidecar is ready (the app never starts
//! before its proxy); the app. Stop, in the reverse order: the app (SIGTERM, then SIGKILL
//! after the grace period) — when it is still running, the sidecar first drains its
//! inbound listeners for the drain period, so callers finish and go elsewhere while the app
//! still answers; the capture rules; the sidecar (SIGTERM, then SIGKILL; its xDS stream
//! ends, so the control plane deregisters the workload); the pod. Capture rules never
//! outlive a running sidecar: if the sidecar dies, the app is stopped (rather than its
//! traffic let out uncaptured, which would bypass the mesh's policy), then the rules and
//! the pod are removed.
//!
//! A workload without a sidecar (`proxy: None`) gets a pod and nothing else: no capture, no
//! identity — a plain-text client outside the mesh, as Istio's `legacy` namespace holds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::capture::{self, CaptureOptions, PROXY_PORTS, PROXY_UID};
use crate::error::{Error, Result};
use crate::identity::TokenFile;
use crate::network::NetworkConfig;
use crate::process::{self, ProcessRecord};
use crate::sidecar::{self, Programs, ProxyKind};
use crate::state::{PodRecord, StateDir};
use crate::{exec, netns, pod, proxy_binary};

/// Everything `trellis run` says about a workload.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    pub labels: BTreeMap<String, String>,
    /// The ports the app serves (checked against the proxy's own ports).
    pub ports: Vec<u16>,
    /// The sidecar; `None` for a pod outside the mesh (no sidecar, no capture).
    pub proxy: Option<ProxyKind>,
    pub programs: Programs,
    /// The control plane's xDS address, reachable from the pod (the bridge address).
    pub xds_address: SocketAddr,
    /// The CA's state directory (`trellis up`'s control plane is the CA): the sidecar gets
    /// a workload certificate, hence mTLS. `None`: no identity, plain text.
    pub ca_dir: Option<std::path::PathBuf>,
    pub capture: CaptureOptions,
    /// The app's command line.
    pub command: Vec<String>,
    /// uid and gid the app runs as; root when `None`.
    pub app_user: Option<(u32, u32)>,
    /// Where the app's output goes; inherited from this process when `None`.
    pub app_log: Option<std::path::PathBuf>,
    /// How long the sidecar may take to become ready.
    pub ready_timeout: Duration,
    /// How long a process may take to stop after SIGTERM.
    pub grace: Duration,
    /// How long the sidecar drains inbound connections before a running app is stopped
    /// (Istio's `terminationDrainDuration`, 5 s by default).
    pub drain: Duration,
}

impl WorkloadSpec {
    /// Checks what can be checked before anything is made.
    pub fn validate(&self) -> Result<()> {
        pod::names(&self.namespace, &self.name)?;
        if self.command.is_empty() {
            return Err(Error::Invalid(
                "no command given: trellis run [OPTIONS] -- COMMAND [ARGS...]".into(),
            ));
        }
        let reserved =
            |p: &u16| PROXY_PORTS.contains(p) || *p == capture::DNS_CAPTURE_PORT || *p == 0;
        if let Some(port) = self.ports.iter().find(|p| reserved(p)) {
            return Err(Error::Invalid(format!(
                "--port {port}: the sidecar uses ports {PROXY_PORTS:?} and {} in the pod; \
                 the app must serve others",
                capture::DNS_CAPTURE_PORT
            )));
        }
        if self.app_user.is_some_and(|(uid, _)| uid == PROXY_UID) {
            return Err(Error::Invalid(format!(
                "the app cannot run as uid {PROXY_UID}: its traffic would not be captured"
            )));
        }
        Ok(())
    }
}

/// How a running workload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    AppExited(ExitStatus),
    /// The sidecar went away; the app was stopped. With the last lines of the sidecar's
    /// log (the log goes with the pod).
    SidecarExited(ExitStatus, String),
    /// Asked to stop (Ctrl-C, SIGTERM).
    Stopped,
}

/// A workload running in its pod. Dropping it stops everything and removes the pod.
#[derive(Debug)]
pub struct Workload {
    state: StateDir,
    key: String,
    record: PodRecord,
    sidecar: Option<Child>,
    app: Option<Child>,
    captured: bool,
    token: Option<TokenFile>,
    grace: Duration,
    drain: Duration,
}

impl Workload {
    /// Starts `spec` on `network` (which must exist): pod, capture, sidecar, readiness,
    /// app. Needs root. On failure, whatever was made is removed again.
    pub fn start(
        state: &StateDir,
        network: &NetworkConfig,
        spec: &WorkloadSpec,
    ) -> Result<Workload> {
        exec::preflight()?;
        spec.validate()?;
        let record = pod::create(state, network, &spec.namespace, &spec.name)?;
        let mut workload = Workload {
            state: state.clone(),
            key: format!("{}/{}", spec.namespace, spec.name),
            record,
            sidecar: None,
            app: None,
            captured: false,
            token: None,
            grace: spec.grace,
            drain: spec.drain,
        };
        if let Some(kind) = spec.proxy {
            let mut capture = spec.capture.clone();
            if sidecar::serves_dns(kind, spec.ca_dir.is_some()) {
                capture.dns_capture_port = Some(capture::DNS_CAPTURE_PORT);
            }
            workload.apply_capture(&capture)?;
            workload.start_sidecar(spec, kind)?;
            workload.wait_ready(spec, kind)?;
        }
        workload.start_app(spec)?;
        Ok(workload)
    }

    /// The pod's address on the bridge.
    pub fn ip(&self) -> std::net::Ipv4Addr {
        self.record.ip
    }

    /// The pod's network namespace.
    pub fn netns(&self) -> &str {
        &self.record.netns
    }

    /// The sidecar's log file.
    pub fn sidecar_log(&self) -> std::path::PathBuf {
        self.record.dir.join("sidecar.log")
    }

    fn start_sidecar(&mut self, spec: &WorkloadSpec, kind: ProxyKind) -> Result<()> {
        if !proxy_binary::reachable_by_others(&self.record.dir) {
            return Err(Error::Invalid(format!(
                "the sidecar (uid {PROXY_UID}) cannot enter {}: a directory above it is \
                 closed to other users; choose a --state-dir such as /run/trellis",
                self.record.dir.display()
            )));
        }
        let identity = self.mint_identity(spec)?;
        let dir = &self.proxy_dir()?;
        let node = sidecar::node(
            &spec.name,
            &spec.namespace,
            &spec.service_account,
            &spec.labels,
            self.record.ip,
            spec.xds_address,
            sidecar::sds_socket(kind, dir, identity.as_ref()),
        );
        let mut programs = spec.programs.clone();
        let bin = self.state.join("bin");
        // `trellis` runs the Trellis proxy, and Envoy's agent.
        if kind == ProxyKind::Trellis || identity.is_some() {
            programs.trellis = proxy_binary::for_proxy_user(&programs.trellis, &bin)?;
        }
        if kind == ProxyKind::Envoy {
            programs.envoy = proxy_binary::for_proxy_user(&programs.envoy, &bin)?;
        }
        let args = sidecar::command(kind, &programs, &node, dir, identity.as_ref())?;
        let user = Some((PROXY_UID, PROXY_UID));
        let command = in_pod(&self.record.netns, user, &args);
        let child = process::spawn_logged(command, "the sidecar", &self.sidecar_log())?;
        self.remember("sidecar", &child)?;
        self.sidecar = Some(child);
        Ok(())
    }

    /// With a CA: the sidecar's bootstrap token, minted into the pod's directory, and where
    /// the sidecar is to present it.
    fn mint_identity(&mut self, spec: &WorkloadSpec) -> Result<Option<sidecar::Identity>> {
        let Some(ca_dir) = &spec.ca_dir else {
            return Ok(None);
        };
        let token = TokenFile::mint(
            ca_dir,
            &spec.namespace,
            &spec.service_account,
            self.record.dir.join("ca-token"),
        )?;
        let identity = sidecar::Identity {
            ca_address: format!("http://{}", spec.xds_address),
            token_file: token.path().to_path_buf(),
        };
        self.token = Some(token);
        Ok(Some(identity))
    }

    /// The sidecar's own directory in the pod's (its bootstrap, the agent's SDS socket),
    /// owned by the proxy user, who writes there.
    fn proxy_dir(&self) -> Result<std::path::PathBuf> {
        let dir = self.record.dir.join("proxy");
        std::fs::create_dir_all(&dir)
            .map_err(Error::io(format!("cannot create {}", dir.display())))?;
        std::os::unix::fs::chown(&dir, Some(PROXY_UID), Some(PROXY_UID))
            .map_err(Error::io(format!("cannot chown {}", dir.display())))?;
        Ok(dir)
    }

    fn wait_ready(&mut self, spec: &WorkloadSpec, kind: ProxyKind) -> Result<()> {
        let (admin, path) = sidecar::readiness(kind);
        let deadline = Instant::now() + spec.ready_timeout;
        let mut last = String::from("not asked yet");
        while Instant::now() < deadline {
            if let Some(status) = self
                .sidecar
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(Error::Failed(format!(
                    "the sidecar exited ({status}) before it was ready; its log ({}):\n{}",
                    self.sidecar_log().display(),
                    process::tail(&self.sidecar_log(), 20)
                )));
            }
            match netns::request_in(
                &self.record.netns,
                "GET",
                admin,
                path,
                &[],
                Duration::from_secs(2),
            ) {
                Ok(reply) if reply.status == 200 => return Ok(()),
                Ok(reply) => last = format!("{} {}", reply.status, reply.body.trim()),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::Failed(format!(
            "the sidecar was not ready after {:?} (last answer of {path}: {last}); is the control \
             plane at {} up (`trellis up`)? Sidecar log ({}):\n{}",
            spec.ready_timeout,
            spec.xds_address,
            self.sidecar_log().display(),
            process::tail(&self.sidecar_log(), 20)
        )))
    }

    fn apply_capture(&mut self, options: &CaptureOptions) -> Result<()> {
        // Marked first: a half-applied restore is removed like a whole one.
        self.captured = true;
        restore(&self.record.netns, &capture::rules(options))
    }

    fn start_app(&mut self, spec: &WorkloadSpec) -> Result<()> {
        let command = in_pod(&self.record.netns, spec.app_user, &spec.command);
        let child = match &spec.app_log {
            Some(log) => process::spawn_logged(command, "the app", log)?,
            None => spawn_inheriting(command)?,
        };
        self.remember("app", &child)?;
        self.app = Some(child);
        Ok(())
    }

    fn remember(&self, role: &str, child: &Child) -> Result<()> {
        match ProcessRecord::of(role, child.id()) {
            Some(record) => pod::record_process(&self.state, &self.key, record),
            // Already gone: nothing to record; the caller sees it exit.
            None => Ok(()),
        }
    }

    /// Runs until the app exits, the sidecar exits, or `stop` returns true (polled every
    /// 100 ms). When the sidecar exits first, the app is stopped before this returns.
    pub fn wait(&mut self, stop: &dyn Fn() -> bool) -> Result<Outcome> {
        loop {
            if let Some(status) = exited(&mut self.app) {
                return Ok(Outcome::AppExited(status));
            }
            if let Some(status) = exited(&mut self.sidecar) {
                if let Some(app) = self.app.as_mut() {
                    process::stop_child(app, self.grace);
                }
                let log = process::tail(&self.sidecar_log(), 20);
                return Ok(Outcome::SidecarExited(status, log));
            }
            if stop() {
                return Ok(Outcome::Stopped);
            }
            self.keep_identity();
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Keeps a valid bootstrap token in the sidecar's token file (a fresh one at half of
    /// the last one's lifetime), so its certificate renewals are authorised; call it now and
    /// then while the workload runs ([`Workload::wait`] does).
    pub fn keep_identity(&mut self) {
        if let Some(Err(error)) = self.token.as_mut().map(TokenFile::refresh) {
            tracing::warn!(%error, "cannot renew the sidecar's bootstrap token");
        }
    }

    /// Asks the sidecar (Envoy or the Trellis proxy, both serve Envoy's admin endpoint) to
    /// drain its inbound listeners gracefully, as pilot-agent does on a sidecar's
    /// shutdown, then waits the drain period.
    fn drain_sidecar(&self) {
        if self.drain.is_zero() {
            return;
        }
        let admin = sidecar::admin();
        let path = "/drain_listeners?inboundonly&graceful";
        match netns::request_in(
            &self.record.netns,
            "POST",
            admin,
            path,
            &[],
            Duration::from_secs(2),
        ) {
            Ok(reply) if reply.status == 200 => std::thread::sleep(self.drain),
            Ok(reply) => tracing::warn!(status = reply.status, "the sidecar refused to drain"),
            Err(error) => tracing::warn!(%error, "cannot ask the sidecar to drain"),
        }
    }

    /// Stops everything in order and removes the pod (what dropping does, made explicit).
    pub fn shutdown(self) {}

    fn teardown(&mut self) {
        if let Some(mut app) = self.app.take() {
            if self.sidecar.is_some()
                && exited(&mut self.sidecar).is_none()
                && matches!(app.try_wait(), Ok(None))
            {
                self.drain_sidecar();
            }
            process::stop_child(&mut app, self.grace);
        }
        if std::mem::take(&mut self.captured)
            && let Err(error) = restore(&self.record.netns, &capture::removal())
        {
            tracing::warn!(%error, "cannot remove the capture rules (the pod goes next)");
        }
        if let Some(mut sidecar) = self.sidecar.take() {
            process::stop_child(&mut sidecar, self.grace);
        }
        pod::remove_objects(&self.record);
        if let Err(error) = pod::forget(&self.state, &self.key) {
            tracing::warn!(%error, pod = %self.key, "cannot update the state file");
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn exited(child: &mut Option<Child>) -> Option<ExitStatus> {
    child.as_mut().and_then(|c| c.try_wait().ok().flatten())
}

/// `iptables-restore` of `lines` inside the pod's namespace only.
fn restore(netns: &str, lines: &[String]) -> Result<()> {
    let input = lines.join("\n") + "\n";
    exec::run_with_input(
        "ip",
        &["netns", "exec", netns, "iptables-restore"],
        Some(&input),
    )
    .map(|_| ())
}

/// `args` run inside `netns`, as `user` (uid, gid) when given: `ip netns exec` enters the
/// namespace as root, `setpriv` then drops to the user, both by exec (the PID is the
/// program's own).
pub fn in_pod(netns: &str, user: Option<(u32, u32)>, args: &[String]) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", netns]);
    if let Some((uid, gid)) = user {
        command.args([
            "setpriv".to_string(),
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--clear-groups".to_string(),
            "--".to_string(),
        ]);
    }
    command.args(args);
    command
}

fn spawn_inheriting(mut command: Command) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    command
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(Error::io("cannot start the app"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WorkloadSpec {
        WorkloadSpec {
            name: "reviews-v1".into(),
            namespace: "default".into(),
            service_account: "default".into(),
            labels: BTreeMap::new(),
            ports: vec![9080],
            proxy: Some(ProxyKind::Envoy),
            programs: Programs {
                envoy: "envoy".into(),
                trellis: "trellis".into(),
            },
            xds_address: "10.241.0.1:15010".parse().unwrap(),
            ca_dir: None,
            capture: CaptureOptions::default(),
            command: vec!["sleep".into(), "1".into()],
            app_user: None,
            app_log: None,
            ready_timeout: Duration::from_secs(1),
            grace: Duration::from_secs(1),
            drain: Duration::from_secs(1),
        }
    }

    #[test]
    fn bad_specs_are_refused_before_anything_is_made() {
        spec().validate().unwrap();
        let proxy_port = WorkloadSpec {
            ports: vec![9080, 15001],
            ..spec()
        };
        assert!(
            proxy_port
                .validate()
                .unwrap_err()
                .to_string()
                .contains("--port 15001")
        );
        let no_command = WorkloadSpec {
            command: Vec::new(),
            ..spec()
        };
        assert!(no_command.validate().is_err());
        let as_proxy = WorkloadSpec {
            app_user: Some((1337, 1337)),
            ..spec()
        };
        assert!(as_proxy.validate().is_err());
    }

    #[test]
    fn commands_enter_the_pod_then_drop_privileges() {
        let c = in_pod("trellis-default-a", Some((1337, 1337)), &["envoy".into()]);
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "netns",
                "exec",
                "trellis-default-a",
                "setpriv",
                "--reuid=1337",
                "--regid=1337",
                "--clear-groups",
                "--",
                "envoy"
            ]
        );
    }
}
