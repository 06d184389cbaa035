//! `trellis-proxy`: the Trellis proxy alone, with exactly the flags of `trellis proxy`.
//!
//! Why a second binary: an idle proxy's resident memory is mostly the pages of its own
//! executable that it has touched, and the kernel maps those in whole page-cache folios
//! (up to megabytes with large read-ahead), so code the proxy never runs but that sits
//! between code it does run is resident too. `trellis` also carries the control plane,
//! validation and analysis; this binary links only the proxy. Measured with the bookinfo
//! sidecar configuration (release build, idle, 2 workers): `trellis proxy` 12.2 MiB RSS,
//! this binary 8.2 MiB; the anonymous memory of both is about 1 MiB, the rest is clean
//! executable pages. Sidecar images should run this one; `trellis proxy` stays for trying
//! things out. `tests/proxy_footprint.rs` prints both figures.

#[path = "../commands/ca_args.rs"]
mod ca_args;
#[path = "../commands/log_level.rs"]
mod log_level;
#[path = "../commands/node.rs"]
mod node;
#[path = "../commands/proxy.rs"]
mod proxy;

use std::process::ExitCode;

use clap::Parser;

/// The Trellis proxy: join the control plane over ADS and serve its listeners.
#[derive(Debug, Parser)]
#[command(name = "trellis-proxy", version, about)]
struct Cli {
    #[command(flatten)]
    args: proxy::Args,
}

fn main() -> ExitCode {
    let log_level = log_level::init();
    let cli = Cli::parse();
    proxy::run(&cli.args, log_level).unwrap_or_else(|error| {
        eprintln!("Error: {error:#}");
        ExitCode::FAILURE
    })
}
