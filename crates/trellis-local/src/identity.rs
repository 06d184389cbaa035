//! Workload identity in pods. A sidecar's certificate request is authorised by a
//! short-lived bootstrap token (docs/ca.md), minted from the CA's state directory when the
//! workload starts and minted again while it runs (the sidecar asks again at each renewal),
//! in a file of the pod's directory that only the proxy user may read (0400, uid 1337):
//! the app, running as another user, cannot take the workload's identity.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::capture::PROXY_UID;
use crate::error::{Error, Result};

/// How long a token is good for: enough for the first certificate, not worth stealing.
pub const TOKEN_TTL: Duration = Duration::from_secs(600);

/// A bootstrap token file for one workload.
#[derive(Debug)]
pub struct TokenFile {
    ca_dir: PathBuf,
    namespace: String,
    service_account: String,
    path: PathBuf,
    written: Instant,
}

impl TokenFile {
    /// Mints a token for `namespace`/`service_account` with the CA in `ca_dir` and writes
    /// it to `path`.
    pub fn mint(
        ca_dir: &Path,
        namespace: &str,
        service_account: &str,
        path: PathBuf,
    ) -> Result<TokenFile> {
        let mut file = TokenFile {
            ca_dir: ca_dir.to_path_buf(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
            path,
            written: Instant::now(),
        };
        file.write()?;
        Ok(file)
    }

    /// The token file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Mints a fresh token once half of the current one's lifetime has passed, so the
    /// file always holds a valid token when the sidecar renews its certificate.
    pub fn refresh(&mut self) -> Result<()> {
        if self.written.elapsed() < TOKEN_TTL / 2 {
            return Ok(());
        }
        self.write()
    }

    fn write(&mut self) -> Result<()> {
        let token = trellis_control_plane::ca::mint_token(
            &self.ca_dir,
            &self.namespace,
            &self.service_account,
            TOKEN_TTL,
        )
        .map_err(|e| {
            Error::Failed(format!(
                "cannot mint a bootstrap token with the CA in {}: {e}",
                self.ca_dir.display()
            ))
        })?;
        write_private(&self.path, &token)?;
        self.written = Instant::now();
        Ok(())
    }
}

/// Writes `text` to `path` as a file only the proxy user may read, replacing any older one
/// at once (the sidecar never reads half a token).
fn write_private(path: &Path, text: &str) -> Result<()> {
    let fresh = path.with_extension("new");
    let _ = std::fs::remove_file(&fresh);
    let what = || format!("cannot write {}", fresh.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&fresh)
        .map_err(Error::io(what()))?;
    file.write_all(text.as_bytes()).map_err(Error::io(what()))?;
    std::os::unix::fs::chown(&fresh, Some(PROXY_UID), Some(PROXY_UID))
        .map_err(Error::io(format!("cannot chown {}", fresh.display())))?;
    std::fs::rename(&fresh, path).map_err(Error::io(format!(
        "cannot move {} to {}",
        fresh.display(),
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn the_token_names_the_workload_and_only_the_proxy_user_reads_it() {
        if crate::exec::require_root().is_err() {
            println!("skipped: chown to uid {PROXY_UID} needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca-token");
        let mut file = TokenFile::mint(
            &dir.path().join("ca"),
            "default",
            "bookinfo-reviews",
            path.clone(),
        )
        .unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o400);
        assert_eq!((meta.uid(), meta.gid()), (PROXY_UID, PROXY_UID));
        let token = std::fs::read_to_string(&path).unwrap();
        assert!(token.starts_with("trellis1."), "{token}");
        // Fresh: not minted again yet.
        file.refresh().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), token);
        file.written = Instant::now().checked_sub(TOKEN_TTL).unwrap();
        file.refresh().unwrap();
        assert_ne!(std::fs::read_to_string(&path).unwrap(), token);
        assert!(!path.with_extension("new").exists());
    }
}
