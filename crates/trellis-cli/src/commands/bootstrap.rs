//! `trellis bootstrap envoy`: print the bootstrap that makes a stock Envoy a mesh proxy.

use std::process::ExitCode;

use trellis_control_plane::bootstrap::envoy_bootstrap;

use super::node::NodeArgs;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// An Envoy v3 bootstrap (JSON, which Envoy also reads as YAML).
    Envoy(EnvoyArgs),
}

#[derive(Debug, clap::Args)]
pub struct EnvoyArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Use incremental xDS (DELTA_GRPC) instead of state of the world.
    #[arg(long)]
    delta: bool,
    /// The node agent's SDS Unix socket: adds Istio's `sds-grpc` cluster, so the proxy
    /// takes part in Istio mTLS with the certificates served there.
    #[arg(long)]
    sds_socket: Option<std::path::PathBuf>,
}

pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    let Command::Envoy(args) = command;
    let mut options = args.node.options("envoy", args.delta)?;
    options.sds_socket = args.sds_socket.clone();
    println!(
        "{}",
        serde_json::to_string_pretty(&envoy_bootstrap(&options))?
    );
    Ok(ExitCode::SUCCESS)
}
