//! The file-backed configuration store.
//!
//! It loads a directory tree of YAML/JSON, keeps the objects that decode and validate, and
//! publishes immutable, revisioned [`Snapshot`]s together with what changed. Its rule for
//! bad input: a broken file or object is reported as a [`Problem`] and everything else keeps
//! flowing; an object that turns invalid keeps its last good version until it is fixed or
//! deleted. Reading files is in [`files`]; deciding the next snapshot is the pure [`merge`].

mod cache;
pub mod checked;
pub mod files;
pub mod merge;
mod watch;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trellis_api::{Kind, Resource};

pub use files::{SourceFile, read_sources};
pub use merge::StoreState;
pub use watch::{FileStore, StoreError, WatchHandle};

/// Identifies an object in the mesh: its kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// The key of a decoded object.
    pub fn of(resource: &Resource) -> Self {
        Self {
            kind: resource.kind(),
            namespace: resource.meta.namespace.clone(),
            name: resource.meta.name.clone(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// An immutable view of all objects in force, at one revision.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Grows by one each time the set of objects changes.
    pub revision: u64,
    pub objects: BTreeMap<ObjectKey, Arc<Resource>>,
}

impl Snapshot {
    /// The objects of one kind, in key order.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Arc<Resource>> {
        self.objects
            .iter()
            .filter(move |(key, _)| key.kind == kind)
            .map(|(_, r)| r)
    }

    /// All objects, in key order, as a vector (for analysis).
    pub fn resources(&self) -> Vec<Resource> {
        self.objects.values().map(|r| (**r).clone()).collect()
    }
}

/// How an object changed between two revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Updated,
    Removed,
}

/// One object that changed, for consumers that recompute only what is affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: ObjectKey,
    pub kind: ChangeKind,
}

/// Something in the configuration that is not in force, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line, or 0 when the problem is with the whole file.
    pub line: usize,
    /// The object concerned, when known.
    pub object: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: ", self.file.display())?,
            line => write!(f, "{}:{line}: ", self.file.display())?,
        }
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl Problem {
    fn in_file(file: &Path, message: String) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 0,
            object: None,
            message,
        }
    }
}

/// A new revision: the snapshot, the objects that changed to reach it, and the current
/// problems.
#[derive(Debug, Clone)]
pub struct Update {
    pub snapshot: Arc<Snapshot>,
    pub changes: Vec<Change>,
    pub problems: Vec<Problem>,
}
