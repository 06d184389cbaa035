//! `trellis demo`: Istio's Bookinfo on the local mesh. The control plane watches a
//! directory holding Bookinfo's Services and Istio's `destination-rule-all.yaml`; the six
//! Bookinfo workloads and a client run in pods with sidecars and capture; the client's
//! pages are counted by which reviews version answered.
//!
//! - [`bookinfo`]: Services and pods; the apps find each other by name through their
//!   sidecar's DNS proxy (a pod whose sidecar is a bare Envoy, which serves no DNS, gets a
//!   hosts file instead);
//! - [`traffic`]: pages requested from inside the client pod, read by their stars;
//! - [`summary`]: the live screen (counts per visitor and version, success rate, p50/p99);
//! - [`tour`]: `--check`, Istio's request-routing and fault-injection tasks step by step,
//!   each judged against what Istio's documentation says.
//!
//! Teardown is [`Demo`]'s `Drop`: pods in reverse order (each stopping app, capture rules,
//! sidecar, namespace, `/etc/netns/<pod>`), then `down` (control plane, bridge, guard
//! rules).

pub mod bookinfo;
pub mod summary;
pub mod tour;
pub mod traffic;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::capture::CaptureOptions;
use crate::control_plane::{self, UpOptions};
use crate::error::{Error, Result};
use crate::network::NetworkConfig;
use crate::sidecar::{self, Programs, ProxyKind};
use crate::state::StateDir;
use crate::workload::{Workload, WorkloadSpec};
use crate::{config_dir, exec, pod, proxy_binary, resolv};

/// The DestinationRules (subsets v1, v2, v3...) the demo starts with, from Istio's samples.
pub const DESTINATION_RULES: &str = "destination-rule-all.yaml";

/// Which sidecars the demo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMix {
    Trellis,
    Envoy,
    /// Alternating, pod by pod (the Trellis proxy first).
    Mixed,
}

impl ProxyMix {
    /// The sidecar of the `index`th pod.
    pub fn for_pod(self, index: usize) -> ProxyKind {
        match self {
            ProxyMix::Trellis => ProxyKind::Trellis,
            ProxyMix::Envoy => ProxyKind::Envoy,
            ProxyMix::Mixed if index.is_multiple_of(2) => ProxyKind::Trellis,
            ProxyMix::Mixed => ProxyKind::Envoy,
        }
    }
}

/// What `trellis demo` starts.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub proxy: ProxyMix,
    /// `envoy` (needed unless every sidecar is the Trellis proxy) and `trellis` (control
    /// plane, Trellis proxy, and the apps as `trellis app`).
    pub programs: Programs,
    /// Istio's `samples/bookinfo/networking` directory, applied unchanged.
    pub samples: PathBuf,
    pub network: NetworkConfig,
    pub xds_port: u16,
    pub debug_address: SocketAddr,
    /// uid and gid the apps run as; root when `None`.
    pub app_user: Option<(u32, u32)>,
    /// How long each sidecar may take to become ready.
    pub ready_timeout: Duration,
}

/// The running demo. Dropping it removes everything it made.
#[derive(Debug)]
pub struct Demo {
    state: StateDir,
    samples: PathBuf,
    config_dir: PathBuf,
    workloads: Vec<Workload>,
    client: traffic::Client,
    /// True once the control plane is up (so `down` is ours to run).
    up: bool,
}

impl Demo {
    /// Starts the control plane and every pod; `progress` hears each step. On failure
    /// everything made is removed again.
    pub fn start(state: &StateDir, o: &DemoOptions, progress: &dyn Fn(&str)) -> Result<Demo> {
        exec::preflight()?;
        let rules = o.samples.join(DESTINATION_RULES);
        if !rules.is_file() {
            return Err(Error::Invalid(format!(
                "{} not found: --samples must be Istio's samples/bookinfo/networking \
                 directory (from a checkout of github.com/istio/istio)",
                rules.display()
            )));
        }
        let config_dir = state.join("demo-config");
        let mut demo = Demo {
            state: state.clone(),
            samples: o.samples.clone(),
            config_dir: config_dir.clone(),
            workloads: Vec::new(),
            client: traffic::Client::new(&pod::names(bookinfo::NAMESPACE, bookinfo::CLIENT)?.netns),
            up: false,
        };
        demo.write_config()?;
        progress("control plane: Bookinfo's Services and destination-rule-all.yaml");
        control_plane::up(
            state,
            &UpOptions {
                config_dir,
                network: o.network.clone(),
                xds_port: o.xds_port,
                debug_address: o.debug_address,
                trellis: o.programs.trellis.clone(),
                ready_timeout: Duration::from_secs(30),
            },
        )?;
        demo.up = true;
        let network = state
            .load()?
            .network
            .ok_or_else(|| Error::Failed("the pod network was not recorded".into()))?;
        let xds_address = SocketAddr::from((network.gateway(), o.xds_port));
        let specs = demo.specs(o, xds_address)?;
        progress(&format!(
            "pods: {} (sidecars {:?}), starting together",
            specs
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            o.proxy
        ));
        let mut first_error = None;
        for result in start_all(state, &network, &specs) {
            match result {
                Ok(workload) => demo.workloads.push(workload),
                Err(error) => first_error = first_error.or(Some(error)),
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(demo),
        }
    }

    /// Every pod's workload (a hosts file first for a pod whose sidecar serves no DNS).
    fn specs(&mut self, o: &DemoOptions, xds_address: SocketAddr) -> Result<Vec<WorkloadSpec>> {
        // The apps run as the user behind sudo: `trellis` must be where they can run it.
        let app_binary =
            proxy_binary::for_proxy_user(&o.programs.trellis, &self.state.join("bin"))?;
        let logs = self.log_dir()?;
        let mut specs = Vec::new();
        for (index, pod) in bookinfo::pods().into_iter().enumerate() {
            let proxy = o.proxy.for_pod(index);
            if !sidecar::serves_dns(proxy) {
                write_hosts(&pod.name)?;
            }
            let command = match &pod.app {
                Some(args) => [app_binary.display().to_string(), "app".to_string()]
                    .into_iter()
                    .chain(args.iter().cloned())
                    .collect(),
                None => vec!["sleep".to_string(), "infinity".to_string()],
            };
            specs.push(WorkloadSpec {
                app_log: Some(logs.join(format!("{}.log", pod.name))),
                name: pod.name,
                namespace: bookinfo::NAMESPACE.to_string(),
                service_account: pod.service_account,
                labels: pod.labels,
                ports: pod.ports,
                proxy,
                programs: o.programs.clone(),
                xds_address,
                capture: CaptureOptions::default(),
                command,
                app_user: o.app_user,
                ready_timeout: o.ready_timeout,
                grace: Duration::from_secs(5),
                drain: Duration::ZERO,
            });
        }
        Ok(specs)
    }

    fn write_config(&self) -> Result<()> {
        if self.config_dir.exists() {
            std::fs::remove_dir_all(&self.config_dir).map_err(Error::io(format!(
                "cannot empty {}",
                self.config_dir.display()
            )))?;
        }
        std::fs::create_dir_all(&self.config_dir).map_err(Error::io(format!(
            "cannot create {}",
            self.config_dir.display()
        )))?;
        let services = self.config_dir.join("bookinfo-services.yaml");
        std::fs::write(&services, bookinfo::services_yaml())
            .map_err(Error::io(format!("cannot write {}", services.display())))?;
        self.apply(DESTINATION_RULES)
    }

    /// Where the apps' output goes (kept after the demo, for reading what happened).
    pub fn log_dir(&self) -> Result<PathBuf> {
        let dir = self.state.join("demo-logs");
        std::fs::create_dir_all(&dir)
            .map_err(Error::io(format!("cannot create {}", dir.display())))?;
        Ok(dir)
    }

    /// The state directory (`trellis apply` and `down` find the demo through it).
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// The client pod's view of Bookinfo.
    pub fn client(&self) -> &traffic::Client {
        &self.client
    }

    /// The path of one of Istio's Bookinfo networking samples.
    pub fn sample(&self, name: &str) -> PathBuf {
        self.samples.join(name)
    }

    /// Validates the sample `name` and adds it, unchanged, to the control plane's directory.
    pub fn apply(&self, name: &str) -> Result<()> {
        config_dir::apply(&self.config_dir, &self.sample(name), bookinfo::NAMESPACE).map(drop)
    }

    /// Removes the sample `name` from the control plane's directory.
    pub fn delete(&self, name: &str) -> Result<()> {
        config_dir::delete(&self.config_dir, &self.sample(name)).map(drop)
    }

    /// The first pod whose sidecar or app is gone, with what is known of why.
    pub fn broken(&self) -> Option<String> {
        let pods = self.state.load().ok()?.pods;
        self.workloads.iter().find_map(|w| {
            let record = pods.values().find(|p| p.netns == w.netns())?;
            let dead: Vec<&str> = record
                .processes
                .iter()
                .filter(|p| !p.alive())
                .map(|p| p.role.as_str())
                .collect();
            (!dead.is_empty()).then(|| format!("{}: {} exited", w.netns(), dead.join(" and ")))
        })
    }
}

/// `/etc/netns/<pod>/hosts`, which `ip netns exec` mounts over the pod's `/etc/hosts`; it
/// goes with the pod's `/etc/netns/<pod>`.
fn write_hosts(name: &str) -> Result<()> {
    let dir = resolv::dir(&pod::names(bookinfo::NAMESPACE, name)?.netns);
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("cannot create {}", dir.display())))?;
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, bookinfo::hosts_file())
        .map_err(Error::io(format!("cannot write {}", hosts.display())))
}

/// Starts every workload at once (their sidecars' start and readiness overlap).
fn start_all(
    state: &StateDir,
    network: &NetworkConfig,
    specs: &[WorkloadSpec],
) -> Vec<Result<Workload>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .iter()
            .map(|spec| scope.spawn(|| Workload::start(state, network, spec)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Failed("a pod's start panicked".into())))
            })
            .collect()
    })
}

impl Drop for Demo {
    fn drop(&mut self) {
        while let Some(workload) = self.workloads.pop() {
            workload.shutdown();
        }
        if self.up
            && let Err(error) = control_plane::down(&self.state)
        {
            tracing::warn!(%error, "cannot bring the demo's control plane down");
        }
        let _ = std::fs::remove_dir_all(&self.config_dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_alternates_trellis_first() {
        assert_eq!(ProxyMix::Mixed.for_pod(0), ProxyKind::Trellis);
        assert_eq!(ProxyMix::Mixed.for_pod(1), ProxyKind::Envoy);
        assert_eq!(ProxyMix::Mixed.for_pod(2), ProxyKind::Trellis);
        assert_eq!(ProxyMix::Envoy.for_pod(0), ProxyKind::Envoy);
        assert_eq!(ProxyMix::Trellis.for_pod(1), ProxyKind::Trellis);
    }
}
