//! `trellis token`: print a bootstrap token with which a workload's proxy or agent gets
//! its first certificate from the control plane's CA (`authorization: Bearer`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use trellis_control_plane::ca;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(short = 'n', long)]
    namespace: String,
    #[arg(long)]
    service_account: String,
    /// How long the token is good for (Go syntax: 10m, 1h).
    #[arg(long, default_value = "10m")]
    ttl: trellis_api::Duration,
    /// The control plane's state directory (where the token key lives).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!args.ttl.is_negative(), "--ttl must not be negative");
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(ca::store::default_state_dir);
    let token = ca::mint_token(
        &state_dir,
        &args.namespace,
        &args.service_account,
        args.ttl.to_std(),
    )
    .with_context(|| {
        format!(
            "cannot mint a token with the key in {}",
            state_dir.display()
        )
    })?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
