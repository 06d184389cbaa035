//! `trellis agent`: Istio's pilot-agent for a stock Envoy — get the workload certificate
//! from the CA, serve it to Envoy over SDS (`default`, `ROOTCA`) on a Unix socket, write
//! the bootstrap (with the `sds-grpc` cluster) and run Envoy; exit with Envoy's status.
//! With `--dns-address`, also proxy the workload's DNS (Istio's DNS proxying).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use trellis_control_plane::bootstrap::envoy_bootstrap;
use trellis_identity::agent::{self, AgentDns, AgentOptions};

use super::ca_args::CaArgs;
use super::node::NodeArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    ca: CaArgs,
    /// Where to serve SDS (Istio's path, relative to the working directory).
    #[arg(long, default_value = "./var/run/secrets/workload-spiffe-uds/socket")]
    sds_socket: PathBuf,
    /// Where to write Envoy's bootstrap.
    #[arg(long, default_value = "./envoy-rev.json")]
    bootstrap_out: PathBuf,
    /// The Envoy binary.
    #[arg(long, default_value = "envoy")]
    envoy: PathBuf,
    /// Use incremental xDS (DELTA_GRPC) instead of state of the world.
    #[arg(long)]
    delta: bool,
    /// Proxy the workload's DNS here, as pilot-agent does on 127.0.0.1:15053 (capture
    /// sends the pod's port 53 there): mesh host names answered from the control plane's
    /// name table, anything else NXDOMAIN. Off when absent.
    #[arg(long, value_name = "ADDRESS")]
    dns_address: Option<std::net::SocketAddr>,
    /// Further Envoy arguments (after `--`).
    #[arg(last = true)]
    envoy_args: Vec<String>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut node = args.node.options("envoy", args.delta)?;
    node.sds_socket = Some(args.sds_socket.clone());
    let id = args.ca.spiffe_id(&node.namespace, &node.service_account)?;
    let bootstrap = envoy_bootstrap(&node);
    let ca = args.ca.client(args.node.xds_address())?;
    let options = AgentOptions {
        ca,
        id,
        sds_socket: args.sds_socket.clone(),
        bootstrap: serde_json::to_string_pretty(&bootstrap)?,
        bootstrap_path: args.bootstrap_out.clone(),
        envoy: args.envoy.clone(),
        envoy_args: args.envoy_args.clone(),
        dns: args.dns_address.map(|address| AgentDns {
            address,
            xds_address: args.node.xds_address().to_string(),
            node_id: bootstrap["node"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            cluster: bootstrap["node"]["cluster"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let status = runtime.block_on(agent::run(options, super::control_plane::shutdown_signal()))?;
    Ok(exit_code(status))
}

/// Envoy's exit status as ours: its code, or 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
