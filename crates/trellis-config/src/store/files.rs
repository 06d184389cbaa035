//! Finding and reading configuration files: the store's only contact with the file system.

use std::path::{Path, PathBuf};

use trellis_api::{Decoded, decode_bytes};

use super::Problem;

/// One configuration file and what it decoded to.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub decoded: Decoded,
}

/// True for the file names the store reads.
pub fn is_config_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    !name.starts_with('.')
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        )
}

/// Reads every configuration file under `paths` (files, or directories walked recursively
/// in name order). Unreadable paths become problems; the rest is still read.
pub fn read_sources(paths: &[PathBuf], default_namespace: &str) -> (Vec<SourceFile>, Vec<Problem>) {
    let mut problems = Vec::new();
    let sources = list(paths, &mut problems)
        .into_iter()
        .filter_map(|path| match read_file(&path) {
            Ok(bytes) => {
                let decoded = decode_bytes(&path.display().to_string(), &bytes, default_namespace);
                Some(SourceFile { path, decoded })
            }
            Err(message) => {
                problems.push(Problem::in_file(&path, message));
                None
            }
        })
        .collect();
    (sources, problems)
}

/// The configuration files under `paths`, in the order [`read_sources`] reads them; paths
/// that cannot be listed become problems.
pub(super) fn list(paths: &[PathBuf], problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        collect(path, true, &mut files, problems);
    }
    files
}

pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(bytes);
    }
    std::fs::read(path).map_err(|e| format!("cannot read: {e}"))
}

fn collect(path: &Path, explicit: bool, files: &mut Vec<PathBuf>, problems: &mut Vec<Problem>) {
    if path == Path::new("-") {
        files.push(path.to_path_buf());
        return;
    }
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => {
            problems.push(Problem::in_file(path, format!("cannot read: {e}")));
            return;
        }
    };
    if meta.is_file() {
        // A file named on the command line is read whatever its extension.
        if explicit || is_config_file(path) {
            files.push(path.to_path_buf());
        }
        return;
    }
    let mut entries = match std::fs::read_dir(path) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect::<Vec<_>>(),
        Err(e) => {
            problems.push(Problem::in_file(
                path,
                format!("cannot list directory: {e}"),
            ));
            return;
        }
    };
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if !hidden {
            collect(&entry, false, files, problems);
        }
    }
}
