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
}

pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    let Command::Envoy(args) = command;
    let options = args.node.options("envoy", args.delta)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&envoy_bootstrap(&options))?
    );
    Ok(ExitCode::SUCCESS)
}
