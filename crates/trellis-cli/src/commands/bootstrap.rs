//! `trellis bootstrap envoy`: print the bootstrap that makes a stock Envoy a mesh proxy.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::Context;
use trellis_control_plane::bootstrap::{BootstrapOptions, envoy_bootstrap};
use trellis_control_plane::proxy::ProxyKind;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// An Envoy v3 bootstrap (JSON, which Envoy also reads as YAML).
    Envoy(EnvoyArgs),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Kind {
    Sidecar,
    Router,
}

#[derive(Debug, clap::Args)]
pub struct EnvoyArgs {
    /// Istio node id (`sidecar~IP~NAME.NS~NS.svc.cluster.local`); built from --type, --ip,
    /// --name and --namespace when absent.
    #[arg(long)]
    node_id: Option<String>,
    /// The control plane's xDS address, HOST:PORT.
    #[arg(long)]
    xds_address: String,
    /// The workload's name (pod name).
    #[arg(long, default_value = "envoy")]
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
    /// Port of Envoy's admin interface (on 127.0.0.1).
    #[arg(long, default_value_t = 15000)]
    admin_port: u16,
    #[arg(long = "type", value_enum, default_value = "sidecar")]
    kind: Kind,
    /// Use incremental xDS (DELTA_GRPC) instead of state of the world.
    #[arg(long)]
    delta: bool,
}

pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    let Command::Envoy(args) = command;
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
        delta: args.delta,
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&envoy_bootstrap(&options))?
    );
    Ok(ExitCode::SUCCESS)
}
