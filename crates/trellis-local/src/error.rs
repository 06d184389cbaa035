//! The errors of the local runtime, each naming what the user sees and what to do.

use std::path::PathBuf;

/// A failure of the local runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`{0}` was not found on PATH; the local mesh needs iproute2 (`ip`) and iptables \
         (Debian: apt-get install iproute2 iptables)"
    )]
    MissingTool(String),
    #[error(
        "pods need root (network namespaces, veth links and iptables); run as root, or join \
         workloads in explicit mode instead: a Sidecar resource with `captureMode: NONE` \
         egress/ingress listeners bound on 127.0.0.1, and the app calling its sidecar's port \
         (docs/local-runtime.md)"
    )]
    NotRoot,
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path}: {message}")]
    State { path: PathBuf, message: String },
    /// Bad input from the user (a name, a port, a file).
    #[error("{0}")]
    Invalid(String),
    /// Something the runtime started did not come up or went away.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
