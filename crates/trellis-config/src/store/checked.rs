//! One file's decoding and validation, which depend on that file alone: computed once per
//! version of the file and kept while the file is unchanged, so a reload re-parses only
//! the files that changed. What depends on other files (which definition of a duplicated
//! object wins, which objects a broken file keeps) is decided by [`super::merge`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use trellis_api::Resource;

use super::{ObjectKey, Problem, SourceFile};
use crate::validate::{Level, validate};

/// A file's entries in document order: its decoding errors, then each object, valid or
/// with its validation errors.
#[derive(Debug, Clone)]
pub struct CheckedFile {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

/// One finding of a file, in the order the merge reports it.
#[derive(Debug, Clone)]
pub enum Entry {
    /// Problems: a document that did not decode, or an object that did not validate.
    Invalid(Vec<Problem>),
    /// An object that decoded and validated.
    Valid {
        key: ObjectKey,
        resource: Arc<Resource>,
    },
}

impl CheckedFile {
    /// Validates every object `source` decoded to.
    pub fn of(source: &SourceFile) -> CheckedFile {
        let path = &source.path;
        let mut entries: Vec<Entry> = source
            .decoded
            .errors
            .iter()
            .map(|error| {
                Entry::Invalid(vec![Problem {
                    file: path.clone(),
                    line: error.origin.line,
                    object: error.object.clone(),
                    message: match &error.path {
                        Some(at) => format!("{at}: {}", error.message),
                        None => error.message.clone(),
                    },
                }])
            })
            .collect();
        entries.extend(source.decoded.resources.iter().map(|r| entry(path, r)));
        CheckedFile {
            path: path.clone(),
            entries,
        }
    }
}

fn entry(path: &Path, resource: &Resource) -> Entry {
    let key = ObjectKey::of(resource);
    let errors: Vec<Problem> = validate(resource)
        .into_iter()
        .filter(|f| f.level == Level::Error)
        .map(|f| Problem {
            file: path.to_path_buf(),
            line: resource.origin.line,
            object: Some(key.to_string()),
            message: format!("{}: {}", f.path, f.message),
        })
        .collect();
    if errors.is_empty() {
        Entry::Valid {
            key,
            resource: Arc::new(resource.clone()),
        }
    } else {
        Entry::Invalid(errors)
    }
}
