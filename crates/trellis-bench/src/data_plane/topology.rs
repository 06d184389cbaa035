//! The path a request takes in a data-plane scenario, set up for one data plane:
//!
//! ```text
//! load ─► client sidecar ─► server sidecar ─► echo server / TCP sink
//!         127.0.1.1:<port>   127.0.1.2:<port>  127.0.0.1:<any>
//! ```
//!
//! on three ports of the `bench` Service: 8080 (`http`: HTTP/1.1 upstream), 8081 (`grpc`:
//! HTTP/2 upstream, for the HTTP/2 and gRPC scenarios) and 8082 (`tcp`: opaque bytes).
//!
//! Both sidecars get their configuration from a real `trellis control-plane`: the client's
//! from a Sidecar egress listener without capture (what an app in explicit mode talks to),
//! the server's from a Sidecar ingress listener without capture in front of the echo
//! server. The server sidecar registers itself as the `bench` Service's endpoint by
//! connecting. With no proxy (the floor), the load goes straight to the echo server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use trellis_testkit::mesh::{self, MeshDir};
use trellis_testkit::trellis_proxy::{self, ProxyIdentity};
use trellis_testkit::{Process, free_port, get, wait_until};

/// The proxy under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum DataPlane {
    /// No proxy: the physical floor.
    None,
    Envoy,
    Trellis,
}

impl DataPlane {
    pub fn name(self) -> &'static str {
        match self {
            DataPlane::None => "no proxy",
            DataPlane::Envoy => "Envoy",
            DataPlane::Trellis => "Trellis",
        }
    }
}

/// The binaries a topology runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub trellis: PathBuf,
    pub envoy: Option<PathBuf>,
    /// Worker threads of every sidecar.
    pub workers: usize,
}

/// The ports of the `bench` Service, each with a sidecar listener on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Http = 8080,
    Grpc = 8081,
    Tcp = 8082,
}

impl Port {
    const ALL: [Port; 3] = [Port::Http, Port::Grpc, Port::Tcp];

    fn name(self) -> &'static str {
        match self {
            Port::Http => "http",
            Port::Grpc => "grpc",
            Port::Tcp => "tcp",
        }
    }

    fn protocol(self) -> &'static str {
        match self {
            Port::Http => "HTTP",
            Port::Grpc => "GRPC",
            Port::Tcp => "TCP",
        }
    }

    /// The authority the client sidecar routes on.
    pub fn authority(self) -> String {
        format!("bench.default.svc.cluster.local:{}", self as u16)
    }
}

/// The servers behind the server sidecar.
#[derive(Debug, Clone, Copy)]
pub struct Apps {
    pub echo: SocketAddr,
    pub sink: SocketAddr,
}
const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1));
const SERVER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 2));
pub const CONVERGE: Duration = Duration::from_secs(60);

/// A running path; everything stops when dropped.
pub struct Topology {
    entries: Option<IpAddr>,
    apps: Apps,
    /// The sidecar processes (client first), for CPU and memory readings.
    pub proxies: Vec<Process>,
    _control_plane: Option<Process>,
    _dir: MeshDir,
}

impl Topology {
    /// Starts the path for `plane` in front of `apps`.
    pub fn start(plane: DataPlane, bins: &Binaries, apps: Apps) -> anyhow::Result<Topology> {
        let dir = MeshDir::new();
        if plane == DataPlane::None {
            return Ok(Topology {
                entries: None,
                apps,
                proxies: Vec::new(),
                _control_plane: None,
                _dir: dir,
            });
        }
        dir.write("bench.yaml", &config(apps));
        let (cp, xds, _) = mesh::control_plane(&bins.trellis, dir.path(), CLIENT_IP, CONVERGE);
        let server = start_sidecar(plane, bins, &dir, xds, &SERVER)?;
        let client = start_sidecar(plane, bins, &dir, xds, &CLIENT)?;
        let entry = SocketAddr::new(CLIENT_IP, Port::Http as u16);
        let authority = Port::Http.authority();
        wait_until("the path answers", CONVERGE, || {
            get(
                entry,
                "/echo",
                &[("host", &authority)],
                Duration::from_secs(2),
            )
            .and_then(|r| (r.status == 200).then_some(()).ok_or(r.status.to_string()))
        });
        Ok(Topology {
            entries: Some(CLIENT_IP),
            apps,
            proxies: vec![client, server],
            _control_plane: Some(cp),
            _dir: dir,
        })
    }
}

impl Topology {
    /// Where the load for `port` is sent.
    pub fn entry(&self, port: Port) -> SocketAddr {
        match (self.entries, port) {
            (Some(ip), _) => SocketAddr::new(ip, port as u16),
            (None, Port::Tcp) => self.apps.sink,
            (None, _) => self.apps.echo,
        }
    }
}

/// A sidecar's workload: pod name, namespace, `app` label (also its service account), IP.
pub struct Workload<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub app: &'a str,
    pub ip: IpAddr,
}

const CLIENT: Workload<'static> = Workload {
    name: "bench-client-0",
    namespace: "default",
    app: "bench-client",
    ip: CLIENT_IP,
};
const SERVER: Workload<'static> = Workload {
    name: "bench-server-0",
    namespace: "default",
    app: "bench-server",
    ip: SERVER_IP,
};

/// Starts `plane`'s sidecar for `w` with ADS at `xds`, logging into `dir`.
pub fn start_sidecar(
    plane: DataPlane,
    bins: &Binaries,
    dir: &MeshDir,
    xds: SocketAddr,
    w: &Workload<'_>,
) -> anyhow::Result<Process> {
    let Workload {
        name,
        namespace,
        app,
        ip,
    } = *w;
    let labels = format!("app={app}");
    let admin = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_port(ip));
    let who = ProxyIdentity {
        name,
        namespace,
        service_account: app,
        labels: &labels,
        ip,
    };
    let log = dir.join(&format!("{name}.log"));
    match plane {
        DataPlane::Trellis => {
            let mut command = trellis_proxy::node_command(&bins.trellis, xds, admin, &who, 0);
            command.args(["--concurrency", &bins.workers.to_string()]);
            let mut process = Process::start("trellis proxy", command, &log);
            trellis_proxy::wait_ready(&mut process, admin, CONVERGE);
            Ok(process)
        }
        DataPlane::Envoy => {
            let envoy = bins
                .envoy
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("no envoy binary (set ENVOY or PATH)"))?;
            let sub = dir.join(name);
            std::fs::create_dir_all(&sub)?;
            let ip = ip.to_string();
            let flags = [
                "--name",
                name,
                "--namespace",
                namespace,
                "--service-account",
                app,
                "--labels",
                &labels,
                "--ip",
                &ip,
            ];
            let bootstrap = mesh::write_envoy_bootstrap(&bins.trellis, &sub, xds, admin, &flags);
            let command = mesh::envoy_command_with_workers(envoy, &bootstrap, bins.workers);
            Ok(Process::start("envoy", command, &sub.join("envoy.log")))
        }
        DataPlane::None => anyhow::bail!("no sidecar without a data plane"),
    }
}

/// The `bench` Service and the two Sidecars.
fn config(apps: Apps) -> String {
    let service_ports: String = Port::ALL
        .iter()
        .map(|p| format!("  - {{name: {}, port: {}}}\n", p.name(), *p as u16))
        .collect();
    let listener = |p: Port| {
        format!(
            "port: {{number: {}, protocol: {}, name: {}}}",
            p as u16,
            p.protocol(),
            p.name()
        )
    };
    let egress: String = Port::ALL
        .iter()
        .map(|p| {
            format!(
                "  - {}\n    bind: {CLIENT_IP}\n    captureMode: NONE\n    hosts: [./*]\n",
                listener(*p)
            )
        })
        .collect();
    let ingress: String = Port::ALL
        .iter()
        .map(|p| {
            let app = if *p == Port::Tcp { apps.sink } else { apps.echo };
            format!("  - {}\n    defaultEndpoint: 127.0.0.1:{}\n    captureMode: NONE\n    bind: {SERVER_IP}\n", listener(*p), app.port())
        })
        .collect();
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: bench, namespace: default}}
spec:
  selector: {{app: bench-server}}
  ports:
{service_ports}---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: bench-client, namespace: default}}
spec:
  workloadSelector:
    labels: {{app: bench-client}}
  egress:
{egress}---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: bench-server, namespace: default}}
spec:
  workloadSelector:
    labels: {{app: bench-server}}
  ingress:
{ingress}  egress:
  - hosts: [./*]
"
    )
}

/// `trellis` beside the running benchmark binary (`target/release`), built first.
pub fn locate(trellis: Option<&Path>) -> anyhow::Result<Binaries> {
    let trellis = match trellis {
        Some(p) => p.to_path_buf(),
        None => {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "--release", "-p", "trellis-cli", "--bins"])
                .status()?;
            anyhow::ensure!(status.success(), "building trellis failed");
            std::env::current_exe()?
                .parent()
                .map(|d| d.join("trellis"))
                .ok_or_else(|| anyhow::anyhow!("no directory for the benchmark binary"))?
        }
    };
    anyhow::ensure!(
        trellis.is_file(),
        "no trellis binary at {}",
        trellis.display()
    );
    Ok(Binaries {
        trellis,
        envoy: trellis_testkit::envoy(),
        workers: 1,
    })
}
