//! `trellis up`: the local mesh's bridge and a detached control plane watching a directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use trellis_local::control_plane::{self, UpOptions};
use trellis_local::network::NetworkConfig;

use super::local::StateArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The directory of Istio YAML the control plane watches (`trellis apply` writes there).
    #[arg(long, value_name = "DIR")]
    config: PathBuf,
    /// The pods' bridge.
    #[arg(long, default_value = "trellis0")]
    bridge: String,
    /// The pods' subnet; the bridge takes its first address.
    #[arg(long, default_value = "10.241.0.0/16")]
    subnet: String,
    /// The control plane's xDS port, on the bridge address.
    #[arg(long, default_value_t = 15010)]
    xds_port: u16,
    /// The control plane's debug and metrics address.
    #[arg(long, default_value = "127.0.0.1:15014")]
    debug_address: SocketAddr,
    #[command(flatten)]
    state: StateArgs,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    trellis_local::exec::preflight()?;
    let state = args.state.open()?;
    let options = UpOptions {
        config_dir: args.config.clone(),
        network: NetworkConfig {
            bridge: args.bridge.clone(),
            subnet: args.subnet.parse().context("--subnet")?,
        },
        xds_port: args.xds_port,
        debug_address: args.debug_address,
        trellis: std::env::current_exe().context("cannot find the trellis binary")?,
        ready_timeout: Duration::from_secs(30),
    };
    let record = control_plane::up(&state, &options)?;
    let pid = record.process.map(|p| p.pid).unwrap_or_default();
    println!(
        "control plane up (pid {pid}): xDS {} for pods, debug http://{}, config {}, log {}",
        record.xds_address,
        record.debug_address,
        record.config_dir.display(),
        record.log.display()
    );
    println!(
        "bridge {} ({}); state in {}",
        options.network.bridge,
        options.network.subnet,
        state.path().display()
    );
    Ok(ExitCode::SUCCESS)
}
