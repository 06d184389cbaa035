//! `trellis proxy`: run the Trellis proxy beside a workload. It introduces itself to the
//! control plane exactly as `trellis bootstrap envoy` makes Envoy do (same flags, same node
//! id and metadata), so registration and translation cannot tell the two apart.

use std::net::SocketAddr;
use std::process::ExitCode;

use trellis_control_plane::bootstrap::envoy_bootstrap;

use super::node::NodeArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    node: NodeArgs,
    /// Worker threads (Istio's sidecar default is 2).
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Print one access log line per request on stdout.
    #[arg(long)]
    access_log: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let options = args.node.options("trellis-proxy", false)?;
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
        xds_address: args.node.xds_address().to_string(),
        admin: SocketAddr::from(([127, 0, 0, 1], args.node.admin_port())),
        access_log: args.access_log,
    }))?;
    Ok(ExitCode::SUCCESS)
}
