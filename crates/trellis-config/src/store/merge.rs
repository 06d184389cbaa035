//! Deciding the next snapshot from freshly read files: a pure function, tested without a
//! file system.
//!
//! Rules, in order:
//! 1. An object that decodes and validates is in force, owned by its file. If two files
//!    define the same object, the first in path order wins and the other is a problem.
//! 2. An object with a validation error is not taken; a file with any problem keeps every
//!    object it held before that it no longer yields validly (we cannot tell a deleted
//!    object from one broken beyond recognition, so the safe reading is "broken").
//! 3. Objects of a file that cleanly no longer declares them, or of a file that is gone,
//!    are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use trellis_api::Resource;

use super::{Change, ChangeKind, ObjectKey, Problem, Snapshot, SourceFile};
use crate::validate::{Level, validate};

/// What the store holds between revisions: the snapshot and which file owns each object.
#[derive(Debug, Clone, Default)]
pub struct StoreState {
    pub snapshot: Arc<Snapshot>,
    owners: BTreeMap<ObjectKey, PathBuf>,
}

/// The outcome of applying a fresh read of the files to a state.
#[derive(Debug, Clone)]
pub struct Applied {
    pub state: StoreState,
    pub changes: Vec<Change>,
    pub problems: Vec<Problem>,
}

impl StoreState {
    /// Computes the next state from every file's fresh decoding plus the problems met while
    /// reading (files that could not be read keep their objects).
    pub fn apply(&self, sources: &[SourceFile], read_problems: Vec<Problem>) -> Applied {
        let mut problems = read_problems;
        let mut claimed: BTreeMap<ObjectKey, (Arc<Resource>, PathBuf)> = BTreeMap::new();
        let mut troubled: BTreeSet<PathBuf> = problems.iter().map(|p| p.file.clone()).collect();
        for source in sources {
            let before = problems.len();
            take_file(source, &mut claimed, &mut problems);
            if problems.len() > before {
                troubled.insert(source.path.clone());
            }
        }
        for (key, owner) in &self.owners {
            if !claimed.contains_key(key)
                && troubled.contains(owner)
                && let Some(previous) = self.snapshot.objects.get(key)
            {
                claimed.insert(key.clone(), (previous.clone(), owner.clone()));
            }
        }
        self.next(claimed, problems)
    }

    fn next(
        &self,
        claimed: BTreeMap<ObjectKey, (Arc<Resource>, PathBuf)>,
        problems: Vec<Problem>,
    ) -> Applied {
        let previous = &self.snapshot.objects;
        let mut changes = Vec::new();
        let mut objects = BTreeMap::new();
        let mut owners = BTreeMap::new();
        for (key, (resource, owner)) in claimed {
            let kept = match previous.get(&key) {
                Some(old) if same_content(old, &resource) => old.clone(),
                Some(_) => {
                    changes.push(change(&key, ChangeKind::Updated));
                    resource
                }
                None => {
                    changes.push(change(&key, ChangeKind::Added));
                    resource
                }
            };
            objects.insert(key.clone(), kept);
            owners.insert(key, owner);
        }
        for key in previous.keys().filter(|k| !objects.contains_key(*k)) {
            changes.push(change(key, ChangeKind::Removed));
        }
        let revision = self.snapshot.revision + u64::from(!changes.is_empty());
        Applied {
            state: StoreState {
                snapshot: Arc::new(Snapshot { revision, objects }),
                owners,
            },
            changes,
            problems,
        }
    }
}

fn take_file(
    source: &SourceFile,
    claimed: &mut BTreeMap<ObjectKey, (Arc<Resource>, PathBuf)>,
    problems: &mut Vec<Problem>,
) {
    for error in &source.decoded.errors {
        problems.push(Problem {
            file: source.path.clone(),
            line: error.origin.line,
            object: error.object.clone(),
            message: match &error.path {
                Some(path) => format!("{path}: {}", error.message),
                None => error.message.clone(),
            },
        });
    }
    for resource in &source.decoded.resources {
        let key = ObjectKey::of(resource);
        let problem = |message: String| Problem {
            file: source.path.clone(),
            line: resource.origin.line,
            object: Some(key.to_string()),
            message,
        };
        let errors: Vec<_> = validate(resource)
            .into_iter()
            .filter(|f| f.level == Level::Error)
            .collect();
        if !errors.is_empty() {
            problems.extend(
                errors
                    .into_iter()
                    .map(|f| problem(format!("{}: {}", f.path, f.message))),
            );
            continue;
        }
        if let Some((_, owner)) = claimed.get(&key) {
            problems.push(problem(format!(
                "also defined in {}; that definition is used",
                owner.display()
            )));
            continue;
        }
        claimed.insert(key, (Arc::new(resource.clone()), source.path.clone()));
    }
}

fn change(key: &ObjectKey, kind: ChangeKind) -> Change {
    Change {
        key: key.clone(),
        kind,
    }
}

/// Two versions of an object are the same when what they say is the same, wherever in the
/// file they are.
fn same_content(a: &Resource, b: &Resource) -> bool {
    a.api_version == b.api_version && a.meta == b.meta && a.spec == b.spec
}

#[cfg(test)]
mod tests;
