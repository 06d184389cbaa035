//! `trellis apply -f` / `trellis delete -f`: add or remove configuration files in the
//! directory the local control plane watches, validated first.

use std::path::PathBuf;
use std::process::ExitCode;

use trellis_local::config_dir;

use super::local::StateArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files of Istio YAML (or JSON).
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Namespace for objects that do not name one (validation only; the control plane
    /// applies its own default).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[command(flatten)]
    state: StateArgs,
}

/// Validates every file, then copies each into the config directory.
pub fn apply(args: &Args) -> anyhow::Result<ExitCode> {
    let dir = config_dir::of(&args.state.open()?)?;
    for file in &args.files {
        let (objects, warnings) = config_dir::apply(&dir, file, &args.namespace)?;
        for warning in warnings {
            eprintln!("Warning: {warning}");
        }
        for object in objects {
            println!("{object} applied");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes the files of these names from the config directory.
pub fn delete(args: &Args) -> anyhow::Result<ExitCode> {
    let dir = config_dir::of(&args.state.open()?)?;
    for file in &args.files {
        let removed = config_dir::delete(&dir, file)?;
        println!("{} deleted", removed.display());
    }
    Ok(ExitCode::SUCCESS)
}
