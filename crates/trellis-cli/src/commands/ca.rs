//! `trellis ca`: manage the self-signed root in the control plane's state directory.
//! Root rotation: `rotate-root` (new root signs, old root stays trusted) → restart the
//! control plane → wait until every workload renewed (half of 24 h) → `remove-root OLD`
//! → restart again.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use trellis_control_plane::ca::store;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Make a new root the signer; keep trusting the old ones until removed.
    RotateRoot(Args),
    /// List the trusted roots (SHA-256 fingerprints), the signing one first.
    Roots(Args),
    /// Stop trusting a root (by fingerprint or a unique prefix of it).
    RemoveRoot {
        #[command(flatten)]
        args: Args,
        fingerprint: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The control plane's state directory.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The trust domain written into a new root's subject.
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
}

impl Args {
    fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(store::default_state_dir)
    }
}

pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::RotateRoot(args) => {
            let files =
                store::rotate_root(&args.state_dir(), &args.trust_domain, SystemTime::now())?;
            let roots = store::fingerprints(&files.root_cert)?;
            println!(
                "signing root: {}",
                roots.first().map_or("?", String::as_str)
            );
            println!("trusted roots: {}", roots.len());
            println!("restart the control plane to sign with the new root");
        }
        Command::Roots(args) => {
            let files = store::read_cacerts(&args.state_dir().join(store::CA_DIR))?;
            for fingerprint in store::fingerprints(&files.root_cert)? {
                println!("{fingerprint}");
            }
        }
        Command::RemoveRoot { args, fingerprint } => {
            let removed = store::remove_root(&args.state_dir(), fingerprint)?;
            println!("removed root {removed}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
