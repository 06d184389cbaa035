//! Running the system's network tools (`ip`, `iptables`, `iptables-restore`): every call
//! checked, its stderr carried into the error.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// The tools the local mesh calls.
pub const TOOLS: [&str; 3] = ["ip", "iptables", "iptables-restore"];

/// Fails with [`Error::NotRoot`] unless the effective user is root.
pub fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::NotRoot)
    }
}

/// Fails with [`Error::MissingTool`] naming the first of `tools` not on `PATH`.
pub fn require_tools(tools: &[&str]) -> Result<()> {
    match tools.iter().find(|t| find_on_path(t).is_none()) {
        Some(missing) => Err(Error::MissingTool(missing.to_string())),
        None => Ok(()),
    }
}

/// Root and the tools: what every command that makes pods needs.
pub fn preflight() -> Result<()> {
    require_root()?;
    require_tools(&TOOLS)
}

/// The path of `program` in `PATH`.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Runs `program args`, returning its stdout; a non-zero exit is an error with stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    run_with_input(program, args, None)
}

/// Runs `program args` with `input` on its stdin.
pub fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    let line = format!("{program} {}", args.join(" "));
    tracing::debug!(command = %line, "run");
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::MissingTool(program.to_string()),
            _ => Error::Io {
                what: format!("cannot start `{line}`"),
                source: e,
            },
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(Error::io(format!("writing to `{line}`")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(Error::io(format!("waiting for `{line}`")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: line,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs `program args` for its effect, ignoring a failure (cleanup of something that may
/// already be gone); the failure is logged at debug level.
pub fn run_quietly(program: &str, args: &[&str]) {
    if let Err(error) = run(program, args) {
        tracing::debug!(%error, "cleanup step failed (already gone?)");
    }
}
