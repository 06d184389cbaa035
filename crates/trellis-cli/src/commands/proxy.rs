//! `trellis proxy`: run the Trellis proxy beside a workload. It introduces itself to the
//! control plane exactly as `trellis bootstrap envoy` makes Envoy do (same flags, same node
//! id and metadata), so registration and translation cannot tell the two apart.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context;
use trellis_control_plane::bootstrap::{BootstrapOptions, envoy_bootstrap};
use trellis_control_plane::proxy::ProxyKind;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Kind {
    Sidecar,
    Router,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Istio node id (`sidecar~IP~NAME.NS~NS.svc.cluster.local`); built from --type, --ip,
    /// --name and --namespace when absent.
    #[arg(long)]
    node_id: Option<String>,
    /// The control plane's xDS address, HOST:PORT.
    #[arg(long)]
    xds_address: String,
    /// The workload's name (pod name).
    #[arg(long, default_value = "trellis-proxy")]
    name: String,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[arg(long, default_value = "default")]
    service_account: String,
    /// Workload labels, `k=v,k2=v2`.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// The workload's IP address.
    #[arg(long, default_value = "127.0.0.1")]
    ip: IpAddr,
    /// Port of the admin interface (on 127.0.0.1).
    #[arg(long, default_value_t = 15000)]
    admin_port: u16,
    #[arg(long = "type", value_enum, default_value = "sidecar")]
    kind: Kind,
    /// Worker threads (Istio's sidecar default is 2).
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Print one access log line per request on stdout.
    #[arg(long)]
    access_log: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (host, port) = args
        .xds_address
        .rsplit_once(':')
        .context("--xds-address must be HOST:PORT")?;
    let port: u16 = port.parse().context("--xds-address: bad port")?;
    let mut labels = BTreeMap::new();
    for label in args.labels.iter().filter(|l| !l.is_empty()) {
        let (k, v) = label
            .split_once('=')
            .with_context(|| format!("--labels: {label:?} is not k=v"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    let options = BootstrapOptions {
        node_id: args.node_id.clone(),
        kind: match args.kind {
            Kind::Sidecar => ProxyKind::Sidecar,
            Kind::Router => ProxyKind::Router,
        },
        name: args.name.clone(),
        namespace: args.namespace.clone(),
        service_account: args.service_account.clone(),
        labels,
        ip: args.ip,
        xds_host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        xds_port: port,
        admin_port: args.admin_port,
        delta: false,
    };
    // The node exactly as Envoy's bootstrap would carry it.
    let bootstrap = envoy_bootstrap(&options);
    let node = &bootstrap["node"];
    let identity = trellis_proxy::NodeIdentity {
        id: node["id"].as_str().unwrap_or_default().to_string(),
        cluster: node["cluster"].as_str().unwrap_or_default().to_string(),
        metadata: node["metadata"].as_object().cloned().unwrap_or_default(),
    };
    // Two workers by default, like Istio's sidecar (`--concurrency 2`). Thread stacks keep
    // tokio's 2 MiB: that is reserved address space, not resident memory (only the pages a
    // thread touches count, and an idle proxy's anonymous memory is about 1 MiB in all, see
    // tests/proxy_footprint.rs), while a smaller stack risks overflow in deep futures.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.concurrency.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(trellis_proxy::run(trellis_proxy::Options {
        node: identity,
        xds_address: args.xds_address.clone(),
        admin: SocketAddr::from(([127, 0, 0, 1], args.admin_port)),
        access_log: args.access_log,
    }))?;
    Ok(ExitCode::SUCCESS)
}
