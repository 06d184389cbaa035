//! `trellis-bench`: programs that measure Trellis and print figures. Never pass/fail.
//!
//! Subcommands, one per scenario family, so the benchmarks issue can add `proxy`, `all`...:
//! - `data-plane`: no proxy, Envoy and the Trellis proxy side by side on one path, under
//!   open-loop load; writes BENCHMARKS.md, benchmarks.json and SVG plots.
//! - `all`: both, into one report (`--short` for a minute or two).
//! - `control-plane`: a synthetic mesh (services × endpoints) and N proxies: snapshot build
//!   time, per-proxy translation time and size, then the push path through an in-process
//!   ADS server to N lightweight ADS clients that ACK like Envoy.

mod ads_client;
mod control_plane;
mod data_plane;
mod machine;
mod pinning;
mod stats;
mod synthetic;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "trellis-bench",
    about = "Trellis benchmarks: figures, never pass/fail"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Translation and push time for a synthetic mesh.
    ControlPlane(control_plane::Args),
    /// No proxy, Envoy and the Trellis proxy on the same path, same load, same run.
    DataPlane(data_plane::Args),
    /// Every data-plane scenario, then the live control plane; writes BENCHMARKS.md.
    All(data_plane::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::ControlPlane(args) => control_plane::run(&args),
        Command::DataPlane(args) => {
            let figures = data_plane::run(&args)?;
            data_plane::report::write(&figures, &args.out)
        }
        Command::All(args) => {
            let mut figures = data_plane::run(&args)?;
            let trellis = data_plane::topology::locate(args.trellis.as_deref())?.trellis;
            let live = control_plane::Args {
                services: 1000,
                endpoints: 10,
                proxies: args
                    .cp_proxies
                    .unwrap_or(if args.short { 200 } else { 2000 }),
                changes: if args.short { 2 } else { 5 },
                connections: 256,
                no_push: false,
                live: true,
                trellis: Some(trellis.clone()),
            };
            figures.control_plane = Some(control_plane::live::run(&live, &trellis)?);
            data_plane::report::write(&figures, &args.out)
        }
    }
}
