//! `trellis demo`: Istio's Bookinfo on the local mesh. The control plane (the mesh's CA)
//! watches a directory holding Bookinfo's Services and Istio's `destination-rule-all.yaml`;
//! the six Bookinfo workloads and a client run in pods with sidecars, capture and workload
//! certificates (mutual TLS between sidecars); the client's pages are counted by which
//! reviews version answered. A seventh pod, `legacy/sleep`, has no sidecar: the plain-text
//! client of Istio's mTLS migration task, calling productpage's pod directly.
//!
//! - [`bookinfo`]: Services and pods; the apps find each other by name through their
//!   sidecar's DNS proxy (a pod whose sidecar is a bare Envoy, which serves no DNS, gets a
//!   hosts file instead);
//! - [`traffic`]: pages requested from inside the client pod, read by their stars;
//! - [`summary`]: the live screen (counts per visitor and version, success rate, p50/p99);
//! - [`mtls`]: which inbound traffic of each server's sidecar was mutual TLS;
//! - [`tour`]: `--check`, Istio's request-routing and fault-injection tasks step by step,
//!   each judged against what Istio's documentation says.
//!
//! Teardown is [`Demo`]'s `Drop`: pods in reverse order (each stopping app, capture rules,
//! sidecar, namespace, `/etc/netns/<pod>`), then `down` (control plane, bridge, guard
//! rules).

pub mod bookinfo;
pub mod mtls;
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

/// The namespace and name of the pod without a sidecar (Istio's `sleep.legacy`).
pub const LEGACY_NAMESPACE: &str = "legacy";
pub const PLAIN_CLIENT: &str = "sleep";

/// The demo's own policy (applied like a sample, by this name): Istio's mTLS migration
/// task locking a namespace down to mutual TLS, for Bookinfo's namespace.
pub const STRICT_MTLS: &str = "peer-authentication-default-strict.yaml";

/// The PeerAuthentication of Istio's "lock down to mutual TLS by namespace" step.
pub fn strict_mtls_yaml() -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: {}\nspec:\n  mtls:\n    mode: STRICT\n",
        bookinfo::NAMESPACE
    )
}

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
    /// The demo's own policies ([`STRICT_MTLS`]).
    policies: PathBuf,
    workloads: Vec<Workload>,
    /// Each Bookinfo server's pod name, network namespace and sidecar.
    servers: Vec<(String, String, ProxyKind)>,
    client: traffic::Client,
    /// `legacy/sleep` asking productpage's pod in plain text (set once the pods run).
    plain: Option<traffic::Client>,
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
            policies: state.join("demo-policies"),
            workloads: Vec::new(),
            servers: Vec::new(),
            client: traffic::Client::new(&pod::names(bookinfo::NAMESPACE, bookinfo::CLIENT)?.netns),
            plain: None,
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
        let recorded = state.load()?;
        let network = recorded
            .network
            .ok_or_else(|| Error::Failed("the pod network was not recorded".into()))?;
        let ca_dir = recorded.control_plane.and_then(|c| c.ca_dir);
        let xds_address = SocketAddr::from((network.gateway(), o.xds_port));
        let specs = demo.specs(o, xds_address, ca_dir)?;
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
        if let Some(error) = first_error {
            return Err(error);
        }
        demo.plain = demo.pod_ip("productpage-v1").map(|ip| traffic::Client {
            netns: demo.legacy_netns(),
            productpage: SocketAddr::from((ip, bookinfo::PORT)),
        });
        Ok(demo)
    }

    fn pod_ip(&self, name: &str) -> Option<std::net::Ipv4Addr> {
        let netns = pod::names(bookinfo::NAMESPACE, name).ok()?.netns;
        self.workloads
            .iter()
            .find(|w| w.netns() == netns)
            .map(Workload::ip)
    }

    fn legacy_netns(&self) -> String {
        pod::names(LEGACY_NAMESPACE, PLAIN_CLIENT)
            .map(|n| n.netns)
            .unwrap_or_default()
    }

    /// Every pod's workload (a hosts file first for a pod whose sidecar serves no DNS); the
    /// sidecars get identities from the CA in `ca_dir`; last the plain-text client, without
    /// a sidecar.
    fn specs(
        &mut self,
        o: &DemoOptions,
        xds_address: SocketAddr,
        ca_dir: Option<PathBuf>,
    ) -> Result<Vec<WorkloadSpec>> {
        // The apps run as the user behind sudo: `trellis` must be where they can run it.
        let app_binary =
            proxy_binary::for_proxy_user(&o.programs.trellis, &self.state.join("bin"))?;
        let logs = self.log_dir()?;
        let mut specs = Vec::new();
        for (index, pod) in bookinfo::pods().into_iter().enumerate() {
            let proxy = o.proxy.for_pod(index);
            if !sidecar::serves_dns(proxy, ca_dir.is_some()) {
                write_hosts(&pod.name)?;
            }
            let command = match &pod.app {
                Some(args) => [app_binary.display().to_string(), "app".to_string()]
                    .into_iter()
                    .chain(args.iter().cloned())
                    .collect(),
                None => sleep(),
            };
            if !pod.ports.is_empty() {
                let netns = pod::names(bookinfo::NAMESPACE, &pod.name)?.netns;
                self.servers.push((pod.name.clone(), netns, proxy));
            }
            specs.push(WorkloadSpec {
                app_log: Some(logs.join(format!("{}.log", pod.name))),
                name: pod.name,
                namespace: bookinfo::NAMESPACE.to_string(),
                service_account: pod.service_account,
                labels: pod.labels,
                ports: pod.ports,
                proxy: Some(proxy),
                programs: o.programs.clone(),
                xds_address,
                ca_dir: ca_dir.clone(),
                capture: CaptureOptions::default(),
                command,
                app_user: o.app_user,
                ready_timeout: o.ready_timeout,
                grace: Duration::from_secs(5),
                drain: Duration::ZERO,
            });
        }
        specs.push(WorkloadSpec {
            name: PLAIN_CLIENT.to_string(),
            namespace: LEGACY_NAMESPACE.to_string(),
            service_account: PLAIN_CLIENT.to_string(),
            labels: [("app".to_string(), PLAIN_CLIENT.to_string())].into(),
            ports: Vec::new(),
            proxy: None,
            programs: o.programs.clone(),
            xds_address,
            ca_dir: None,
            capture: CaptureOptions::default(),
            command: sleep(),
            app_user: o.app_user,
            app_log: Some(logs.join(format!("{PLAIN_CLIENT}.log"))),
            ready_timeout: o.ready_timeout,
            grace: Duration::from_secs(5),
            drain: Duration::ZERO,
        });
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
        std::fs::create_dir_all(&self.policies).map_err(Error::io(format!(
            "cannot create {}",
            self.policies.display()
        )))?;
        let strict = self.policies.join(STRICT_MTLS);
        std::fs::write(&strict, strict_mtls_yaml())
            .map_err(Error::io(format!("cannot write {}", strict.display())))?;
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

    /// The plain-text client: `legacy/sleep`, no sidecar, asking productpage's pod.
    pub fn plain_client(&self) -> Option<&traffic::Client> {
        self.plain.as_ref()
    }

    /// What each Bookinfo server's sidecar counted of mutual TLS on its inbound side.
    pub fn inbound_mtls(&self) -> Vec<(String, std::result::Result<mtls::Inbound, String>)> {
        self.servers
            .iter()
            .map(|(name, netns, kind)| {
                let inbound = self
                    .pod_ip(name)
                    .ok_or_else(|| "no pod".to_string())
                    .and_then(|ip| mtls::read(netns, ip, *kind));
                (name.clone(), inbound)
            })
            .collect()
    }

    /// The path of one of Istio's Bookinfo networking samples, or of the demo's own policy
    /// of that name ([`STRICT_MTLS`]).
    pub fn sample(&self, name: &str) -> PathBuf {
        if name == STRICT_MTLS {
            self.policies.join(name)
        } else {
            self.samples.join(name)
        }
    }

    /// Validates the sample `name` and adds it, unchanged, to the control plane's directory.
    pub fn apply(&self, name: &str) -> Result<()> {
        config_dir::apply(&self.config_dir, &self.sample(name), bookinfo::NAMESPACE).map(drop)
    }

    /// Removes the sample `name` from the control plane's directory.
    pub fn delete(&self, name: &str) -> Result<()> {
        config_dir::delete(&self.config_dir, &self.sample(name)).map(drop)
    }

    /// Keeps every sidecar's bootstrap token valid (see [`Workload::keep_identity`]).
    pub fn keep_identities(&mut self) {
        self.workloads.iter_mut().for_each(Workload::keep_identity);
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
        let _ = std::fs::remove_dir_all(&self.policies);
    }
}

fn sleep() -> Vec<String> {
    vec!["sleep".to_string(), "infinity".to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strict_policy_is_istios_namespace_lock_down_and_validates() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(STRICT_MTLS);
        std::fs::write(&file, strict_mtls_yaml()).unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        let (objects, warnings) = config_dir::apply(&config, &file, bookinfo::NAMESPACE).unwrap();
        assert_eq!(objects.len(), 1, "{objects:?}");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(strict_mtls_yaml().contains("kind: PeerAuthentication"));
        assert!(strict_mtls_yaml().contains("mode: STRICT"));
    }

    #[test]
    fn mixed_alternates_trellis_first() {
        assert_eq!(ProxyMix::Mixed.for_pod(0), ProxyKind::Trellis);
        assert_eq!(ProxyMix::Mixed.for_pod(1), ProxyKind::Envoy);
        assert_eq!(ProxyMix::Mixed.for_pod(2), ProxyKind::Trellis);
        assert_eq!(ProxyMix::Envoy.for_pod(0), ProxyKind::Envoy);
        assert_eq!(ProxyMix::Trellis.for_pod(1), ProxyKind::Trellis);
    }
}
