//! What the local-mesh commands (`up`, `down`, `run`, `apply`, `delete`) share: the state
//! directory that records everything they make.

use std::path::PathBuf;

use anyhow::Context;
use trellis_local::state::{self, StateDir};

#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// Where the local mesh records what it made (pods, bridge, processes) and keeps logs.
    #[arg(long, env = "TRELLIS_STATE_DIR", default_value = state::DEFAULT_DIR, value_name = "DIR")]
    state_dir: PathBuf,
}

impl StateArgs {
    pub fn open(&self) -> anyhow::Result<StateDir> {
        StateDir::open(&self.state_dir)
            .with_context(|| format!("state directory {}", self.state_dir.display()))
    }
}
