//! The state directory: one JSON file naming every object the runtime made (bridge, guard
//! chains, pods with their namespace and veth, processes), plus logs and bootstraps.
//!
//! An object is recorded *before* it is made, so a crash can leave a record without its
//! object but never an object without its record; removal tolerates objects already gone.
//! Every change happens under an exclusive lock on `state.lock`, so concurrent `trellis run`
//! commands do not lose each other's records.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::network::NetworkConfig;
use crate::process::ProcessRecord;

/// The default state directory for a root user.
pub const DEFAULT_DIR: &str = "/run/trellis";

/// Everything the runtime has made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The bridge and its guard rules, once made.
    pub network: Option<NetworkConfig>,
    pub control_plane: Option<ControlPlaneRecord>,
    /// Pods by `namespace/name`.
    pub pods: BTreeMap<String, PodRecord>,
}

/// A control plane started by `trellis up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlPlaneRecord {
    pub process: Option<ProcessRecord>,
    pub config_dir: PathBuf,
    /// Where sidecars in pods reach its xDS server (on the bridge address).
    pub xds_address: SocketAddr,
    pub debug_address: SocketAddr,
    pub log: PathBuf,
    /// The CA's state directory (its root and the bootstrap-token key): workloads' tokens
    /// are minted with it. Absent in records written before the control plane was the CA.
    #[serde(default)]
    pub ca_dir: Option<PathBuf>,
}

/// One pod: its namespace, its link into the bridge, its address, its processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    pub netns: String,
    /// The host end of the veth pair (deleting it deletes both ends).
    pub veth: String,
    pub ip: Ipv4Addr,
    /// The `trellis run` process that owns the pod.
    pub supervisor: Option<ProcessRecord>,
    /// Sidecar and app.
    pub processes: Vec<ProcessRecord>,
    /// Logs and bootstrap of this pod.
    pub dir: PathBuf,
}

impl PodRecord {
    /// True while any process of the pod (supervisor included) runs.
    pub fn in_use(&self) -> bool {
        self.supervisor
            .iter()
            .chain(&self.processes)
            .any(ProcessRecord::alive)
    }
}

/// A state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// The state directory at `path`, created if needed.
    pub fn open(path: impl Into<PathBuf>) -> Result<StateDir> {
        let path = path.into();
        std::fs::create_dir_all(&path)
            .map_err(Error::io(format!("cannot create {}", path.display())))?;
        Ok(StateDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file or directory inside the state directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn file(&self) -> PathBuf {
        self.path.join("state.json")
    }

    /// The current state (empty when nothing was recorded).
    pub fn load(&self) -> Result<State> {
        let _lock = self.lock()?;
        self.read()
    }

    /// Changes the state under the lock and saves it; returns what `change` returns.
    pub fn update<R>(&self, change: impl FnOnce(&mut State) -> Result<R>) -> Result<R> {
        let _lock = self.lock()?;
        let mut state = self.read()?;
        let out = change(&mut state)?;
        self.write(&state)?;
        Ok(out)
    }

    fn lock(&self) -> Result<File> {
        let path = self.path.join("state.lock");
        let file =
            File::create(&path).map_err(Error::io(format!("cannot open {}", path.display())))?;
        file.lock()
            .map_err(Error::io(format!("cannot lock {}", path.display())))?;
        Ok(file)
    }

    fn read(&self) -> Result<State> {
        let path = self.file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::State {
                path,
                message: format!("{e} (remove it after cleaning up by hand)"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(Error::Io {
                what: format!("cannot read {}", path.display()),
                source: e,
            }),
        }
    }

    fn write(&self, state: &State) -> Result<()> {
        let path = self.file();
        let staging = self.path.join(".state.json.tmp");
        let text = serde_json::to_vec_pretty(state).map_err(|e| Error::State {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&staging, text)
            .map_err(Error::io(format!("cannot write {}", staging.display())))?;
        std::fs::rename(&staging, &path)
            .map_err(Error::io(format!("cannot write {}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reload_and_updates_see_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("s")).unwrap();
        assert_eq!(state.load().unwrap(), State::default());
        state
            .update(|s| {
                s.pods.insert(
                    "default/a".into(),
                    PodRecord {
                        netns: "trellis-default-a".into(),
                        veth: "trl0".into(),
                        ip: Ipv4Addr::new(10, 241, 0, 2),
                        supervisor: None,
                        processes: Vec::new(),
                        dir: PathBuf::from("/tmp"),
                    },
                );
                Ok(())
            })
            .unwrap();
        let reloaded = StateDir::open(dir.path().join("s"))
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(reloaded.pods["default/a"].netns, "trellis-default-a");
        assert!(!reloaded.pods["default/a"].in_use());
    }
}
