//! The store's memory of the files it read: each file's bytes and its [`CheckedFile`], so
//! that a reload decodes and validates only the files whose content changed. Files are
//! compared by content, not by modification time, which can miss a quick rewrite of the
//! same length.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use trellis_api::decode_bytes;

use super::Problem;
use super::checked::CheckedFile;
use super::files::{SourceFile, list, read_file};

/// Each file of the last reload, by path.
#[derive(Debug, Default)]
pub struct FileCache {
    files: HashMap<PathBuf, Cached>,
}

#[derive(Debug)]
struct Cached {
    bytes: Vec<u8>,
    checked: Arc<CheckedFile>,
}

/// What a reload found: the checked files in path order, the problems met reading, and
/// how many files had to be decoded again.
#[derive(Debug)]
pub struct Read {
    pub files: Vec<Arc<CheckedFile>>,
    pub problems: Vec<Problem>,
    pub decoded: usize,
}

impl FileCache {
    /// Reads every configuration file under `roots` (as [`super::read_sources`] does),
    /// reusing the checks of files whose bytes are unchanged and forgetting files that are
    /// gone or unreadable.
    pub fn refresh(&mut self, roots: &[PathBuf], default_namespace: &str) -> Read {
        let mut problems = Vec::new();
        let mut previous = std::mem::take(&mut self.files);
        let mut files = Vec::new();
        let mut decoded = 0;
        for path in list(roots, &mut problems) {
            let bytes = match read_file(&path) {
                Ok(bytes) => bytes,
                Err(message) => {
                    problems.push(Problem::in_file(&path, message));
                    continue;
                }
            };
            let cached = match previous.remove(&path) {
                Some(cached) if cached.bytes == bytes => cached,
                _ => {
                    decoded += 1;
                    let source = SourceFile {
                        decoded: decode_bytes(
                            &path.display().to_string(),
                            &bytes,
                            default_namespace,
                        ),
                        path: path.clone(),
                    };
                    Cached {
                        bytes,
                        checked: Arc::new(CheckedFile::of(&source)),
                    }
                }
            };
            files.push(cached.checked.clone());
            self.files.insert(path, cached);
        }
        Read {
            files,
            problems,
            decoded,
        }
    }
}

#[cfg(test)]
mod tests;
