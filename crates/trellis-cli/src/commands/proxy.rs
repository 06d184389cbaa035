//! `trellis proxy`: run the Trellis proxy beside a workload. It introduces itself to the
//! control plane exactly as `trellis bootstrap envoy` makes Envoy do (same flags, same node
//! id and metadata), so registration and translation cannot tell the two apart.
//!
//! With traffic capture (iptables `REDIRECT` to 15001/15006, as `istio-init` installs it)
//! run it as uid 1337: the rules let that user's traffic out uncaptured
//! (`-m owner --uid-owner 1337 -j RETURN`), which is how the proxy's own upstream
//! connections avoid being captured again. It needs no other privilege.
//!
//! Mutual TLS: with a bootstrap token (`--ca-token-file` or $TRELLIS_CA_TOKEN) the proxy
//! gets its workload certificate from the CA before it joins the control plane, says so in
//! its node metadata (`SDS: "true"`, so the control plane sends it TLS contexts), and keeps
//! the certificate renewed. Without a token it stays in plain text.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use tokio::sync::watch;
use trellis_control_plane::bootstrap::envoy_bootstrap;
use trellis_control_plane::proxy::SDS_METADATA;
use trellis_identity::client::CaClientConfig;
use trellis_identity::spiffe::SpiffeId;
use trellis_proxy::tls::secrets::Identity;

use super::ca_args::CaArgs;
use super::log_level::LogLevel;
use super::node::NodeArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    node: NodeArgs,
    /// Worker threads (Istio's sidecar default is 2).
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Port of Istio's standard metrics (`/stats/prometheus`) on the workload's IP; 0: off.
    #[arg(long, default_value_t = 15090)]
    stats_port: u16,
    /// Port of the merged proxy + application metrics on the workload's IP; 0: off.
    #[arg(long, default_value_t = 15020)]
    merged_metrics_port: u16,
    /// The application's metrics (`http://127.0.0.1:8080/metrics`), merged on
    /// --merged-metrics-port.
    #[arg(long)]
    app_metrics_url: Option<String>,
    /// The status port: `/healthz/ready` on every address (Istio's 15021); 0 serves none.
    #[arg(long, default_value_t = 15021)]
    status_port: u16,
    /// After SIGTERM/SIGINT, how long in-flight requests and connections may take before
    /// the proxy exits (Istio's `terminationDrainDuration`), e.g. `5s`, `500ms`.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain_duration: Duration,
    /// Mutual TLS: where the workload certificate comes from.
    #[command(flatten)]
    ca: CaArgs,
    /// Proxy the workload's DNS here, as Istio's agent does on 127.0.0.1:15053 (capture
    /// sends the pod's port 53 there): mesh host names answered from the control plane's
    /// name table, anything else NXDOMAIN. Off when absent.
    #[arg(long, value_name = "ADDRESS")]
    dns_address: Option<SocketAddr>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = trellis_api::Duration::parse(s).map_err(|e| e.to_string())?;
    if d.is_negative() {
        return Err(format!("{s}: a duration cannot be negative"));
    }
    Ok(d.to_std())
}

pub fn run(args: &Args, log_level: Arc<LogLevel>) -> anyhow::Result<ExitCode> {
    let options = args.node.options("trellis-proxy", false)?;
    // The node exactly as Envoy's bootstrap would carry it.
    let bootstrap = envoy_bootstrap(&options);
    let node = &bootstrap["node"];
    let mut identity = trellis_proxy::NodeIdentity {
        id: node["id"].as_str().unwrap_or_default().to_string(),
        cluster: node["cluster"].as_str().unwrap_or_default().to_string(),
        metadata: node["metadata"].as_object().cloned().unwrap_or_default(),
    };
    let mtls = match args.ca.token() {
        None => None,
        Some(_) => {
            let id = args
                .ca
                .spiffe_id(&options.namespace, &options.service_account)?;
            identity
                .metadata
                .insert(SDS_METADATA.to_string(), "true".into());
            Some((args.ca.client(args.node.xds_address())?, id))
        }
    };
    // Two workers by default, like Istio's sidecar (`--concurrency 2`). Thread stacks keep
    // tokio's 2 MiB: that is reserved address space, not resident memory (only the pages a
    // thread touches count, and an idle proxy's anonymous memory is about 1 MiB in all, see
    // tests/proxy_footprint.rs), while a smaller stack risks overflow in deep futures.
    // One worker runs everything on the main thread: no task ever hops threads, which is
    // where a multi-threaded runtime spends most of a lightly loaded proxy's CPU (wake-ups
    // and context switches, see BENCHMARKS.md's profile).
    let runtime = match args.concurrency {
        0 | 1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    let _guard = runtime.enter();
    let workload_identity = mtls.map(|(ca, id)| workload_identity(ca, id));
    runtime.block_on(trellis_proxy::run(trellis_proxy::Options {
        node: identity,
        xds_address: args.node.xds_address().to_string(),
        admin: SocketAddr::from(([127, 0, 0, 1], args.node.admin_port())),
        stats: port(args.node.ip(), args.stats_port),
        merged_metrics: port(args.node.ip(), args.merged_metrics_port),
        app_metrics_url: args
            .app_metrics_url
            .as_deref()
            .map(str::parse)
            .transpose()
            .context("--app-metrics-url")?,
        logging: Some(log_level),
        status: (args.status_port != 0).then(|| SocketAddr::from(([0, 0, 0, 0], args.status_port))),
        drain_duration: args.drain_duration,
        identity: workload_identity,
        dns: args.dns_address,
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// Fetches the workload identity from the CA and keeps it renewed, in the background; the
/// channel says `None` until the first arrives and closes if the CA never answers.
fn workload_identity(ca: CaClientConfig, id: SpiffeId) -> watch::Receiver<Option<Arc<Identity>>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let mut issued = match trellis_identity::manager::start(ca, id.clone()).await {
            Ok(issued) => issued,
            Err(e) => {
                tracing::error!(id = %id, error = %e, "cannot get the workload certificate");
                return;
            }
        };
        loop {
            let current = issued.borrow_and_update().clone();
            match Identity::from_pem(&current.chain_pem, &current.key_pem, &current.roots_pem) {
                Ok(identity) => {
                    if tx.send(Some(Arc::new(identity))).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::error!(id = %id, error = %e, "unusable workload certificate"),
            }
            if issued.changed().await.is_err() {
                return;
            }
        }
    });
    rx
}

fn port(ip: std::net::IpAddr, port: u16) -> Option<SocketAddr> {
    (port != 0).then_some(SocketAddr::new(ip, port))
}
