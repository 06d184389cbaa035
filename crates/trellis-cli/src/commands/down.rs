//! `trellis down`: stop and remove everything the local mesh recorded.

use std::process::ExitCode;

use trellis_local::control_plane;

use super::local::StateArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    state: StateArgs,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    trellis_local::exec::preflight()?;
    let state = args.state.open()?;
    let report = control_plane::down(&state)?;
    for pod in &report.pods {
        println!("pod {pod} removed");
    }
    if report.control_plane {
        println!("control plane stopped");
    }
    if let Some(bridge) = &report.bridge {
        println!("bridge {bridge} and its rules removed");
    }
    if report == control_plane::DownReport::default() {
        println!("nothing to remove in {}", state.path().display());
    }
    Ok(ExitCode::SUCCESS)
}
