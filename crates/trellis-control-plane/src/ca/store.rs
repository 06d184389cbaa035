//! The control plane's state directory and Istio's `cacerts` layout on disk.
//!
//! ```text
//! <state-dir>/            (mode 0700; --state-dir, default $XDG_STATE_HOME/trellis or
//!   token-key             ~/.local/state/trellis) HMAC key of bootstrap tokens, 0600
//!   ca/                   the self-signed CA, in Istio's cacerts layout:
//!     ca-cert.pem         the signing certificate (here: the current root)
//!     ca-key.pem          its key, 0600
//!     cert-chain.pem      the signing chain up to the root
//!     root-cert.pem       the trust bundle: every trusted root (old and new in a rotation)
//! ```
//!
//! With `--cacerts DIR` the CA files come from DIR instead (same four names; an
//! organisation's intermediate signs, its root is trusted) and only `token-key` lives in
//! the state directory. The first start creates the self-signed CA atomically: it is built
//! in a staging directory and renamed into place, so two racing starts agree on one root.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use trellis_identity::files;
use trellis_identity::token::{TokenError, TokenKey};

use super::authority::{self, AuthorityError, CaFiles};

pub const TOKEN_KEY: &str = "token-key";
pub const CA_DIR: &str = "ca";
pub const CA_CERT: &str = "ca-cert.pem";
pub const CA_KEY: &str = "ca-key.pem";
pub const CERT_CHAIN: &str = "cert-chain.pem";
pub const ROOT_CERT: &str = "root-cert.pem";
/// How long a self-signed root lives (Istio's is ten years too).
pub const ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Why the state directory or the CA files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{dir}: {source}")]
    Authority {
        dir: PathBuf,
        #[source]
        source: AuthorityError,
    },
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("{0}")]
    Refused(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The default state directory: `$XDG_STATE_HOME/trellis`, else `$HOME/.local/state/trellis`,
/// else `.trellis-state` in the working directory.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("trellis");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/state/trellis");
    }
    PathBuf::from(".trellis-state")
}

/// Creates `dir` (mode 0700) if needed.
pub fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

/// The bootstrap-token key of the state directory, created on first use.
pub fn token_key(state_dir: &Path) -> Result<TokenKey, StoreError> {
    ensure_dir(state_dir)?;
    Ok(TokenKey::load_or_create(&state_dir.join(TOKEN_KEY))?)
}

/// Reads CA files in Istio's cacerts layout; `cert-chain.pem` may be absent.
pub fn read_cacerts(dir: &Path) -> Result<CaFiles, StoreError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| StoreError::Io { path, source })
    };
    let cert_chain = match read(CERT_CHAIN) {
        Ok(text) => text,
        Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            String::new()
        }
        Err(e) => return Err(e),
    };
    Ok(CaFiles {
        ca_cert: read(CA_CERT)?,
        ca_key: read(CA_KEY)?,
        cert_chain,
        root_cert: read(ROOT_CERT)?,
    })
}

/// The self-signed CA of the state directory, created on first start.
pub fn load_or_create_self_signed(
    state_dir: &Path,
    trust_domain: &str,
    now: SystemTime,
) -> Result<CaFiles, StoreError> {
    let ca_dir = state_dir.join(CA_DIR);
    if !ca_dir.join(CA_CERT).exists() {
        ensure_dir(state_dir)?;
        let files = authority::new_root(trust_domain, ROOT_TTL, now).map_err(|source| {
            StoreError::Authority {
                dir: ca_dir.clone(),
                source,
            }
        })?;
        let staging = state_dir.join(format!(".ca.{}.tmp", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        ensure_dir(&staging)?;
        write_all(&staging, &files)?;
        if std::fs::rename(&staging, &ca_dir).is_err() {
            // Someone else created it first (or a directory is in the way): use theirs.
            let _ = std::fs::remove_dir_all(&staging);
        } else {
            tracing::info!(dir = %ca_dir.display(), "created a self-signed root CA");
        }
    }
    read_cacerts(&ca_dir)
}

fn write_all(dir: &Path, files: &CaFiles) -> Result<(), StoreError> {
    for (name, text, mode) in [
        (ROOT_CERT, &files.root_cert, 0o644),
        (CA_KEY, &files.ca_key, 0o600),
        (CA_CERT, &files.ca_cert, 0o644),
        (CERT_CHAIN, &files.cert_chain, 0o644),
    ] {
        let path = dir.join(name);
        files::replace(&path, text.as_bytes(), mode).map_err(io(&path))?;
    }
    Ok(())
}

/// Rotates the self-signed root: a new root becomes the signer, and the trust bundle
/// holds it *and* every root trusted before, until [`remove_root`] drops the old one.
/// Workloads that renew get certificates from the new root while peers still holding
/// old-root certificates stay trusted. Restart the control plane to sign with the new root.
pub fn rotate_root(
    state_dir: &Path,
    trust_domain: &str,
    now: SystemTime,
) -> Result<CaFiles, StoreError> {
    let ca_dir = state_dir.join(CA_DIR);
    let old = read_cacerts(&ca_dir)?;
    let mut new = authority::new_root(trust_domain, ROOT_TTL, now).map_err(|source| {
        StoreError::Authority {
            dir: ca_dir.clone(),
            source,
        }
    })?;
    new.root_cert = format!("{}{}", new.root_cert, old.root_cert);
    write_all(&ca_dir, &new)?;
    Ok(new)
}

/// The trusted roots of a bundle with their SHA-256 fingerprints (hex).
pub fn fingerprints(bundle: &str) -> Result<Vec<String>, StoreError> {
    let certs = trellis_identity::pem::certificates(bundle)
        .map_err(|e| StoreError::Refused(e.to_string()))?;
    Ok(certs.iter().map(|der| fingerprint(der)).collect())
}

fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Drops the root with this fingerprint (a prefix will do) from the trust bundle; the
/// root that signs cannot be dropped.
pub fn remove_root(state_dir: &Path, fingerprint_prefix: &str) -> Result<String, StoreError> {
    let ca_dir = state_dir.join(CA_DIR);
    let files = read_cacerts(&ca_dir)?;
    let certs = trellis_identity::pem::certificates(&files.root_cert)
        .map_err(|e| StoreError::Refused(e.to_string()))?;
    let prefix = fingerprint_prefix.to_ascii_lowercase();
    let matching: Vec<_> = certs
        .iter()
        .filter(|der| fingerprint(der).starts_with(&prefix))
        .collect();
    let [doomed] = matching.as_slice() else {
        return Err(StoreError::Refused(format!(
            "{} roots match {fingerprint_prefix:?}; name exactly one",
            matching.len()
        )));
    };
    let signer = trellis_identity::pem::certificates(&files.ca_cert)
        .map_err(|e| StoreError::Refused(e.to_string()))?;
    if signer.first() == Some(*doomed) {
        return Err(StoreError::Refused(
            "that root signs workload certificates; rotate first".into(),
        ));
    }
    let removed = fingerprint(doomed);
    let kept: String = certs
        .iter()
        .filter(|der| fingerprint(der) != removed)
        .map(|der| trellis_identity::pem::to_pem(der))
        .collect();
    let path = ca_dir.join(ROOT_CERT);
    files::replace(&path, kept.as_bytes(), 0o644).map_err(io(&path))?;
    Ok(removed)
}
