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

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use trellis_api::Resource;

use super::checked::{CheckedFile, Entry};
use super::{Change, ChangeKind, ObjectKey, Problem, Snapshot, SourceFile};

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
        let checked: Vec<CheckedFile> = sources.iter().map(CheckedFile::of).collect();
        self.apply_checked(&checked, read_problems)
    }

    /// [`StoreState::apply`] over files already checked, in path order (the store keeps
    /// the checks of unchanged files between reloads).
    pub fn apply_checked(
        &self,
        files: &[impl Borrow<CheckedFile>],
        read_problems: Vec<Problem>,
    ) -> Applied {
        let mut problems = read_problems;
        let mut claimed: BTreeMap<ObjectKey, (Arc<Resource>, PathBuf)> = BTreeMap::new();
        let mut troubled: BTreeSet<PathBuf> = problems.iter().map(|p| p.file.clone()).collect();
        for file in files {
            let file = file.borrow();
            let before = problems.len();
            take_file(file, &mut claimed, &mut problems);
            if problems.len() > before {
                troubled.insert(file.path.clone());
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
    file: &CheckedFile,
    claimed: &mut BTreeMap<ObjectKey, (Arc<Resource>, PathBuf)>,
    problems: &mut Vec<Problem>,
) {
    for entry in &file.entries {
        match entry {
            Entry::Invalid(found) => problems.extend(found.iter().cloned()),
            Entry::Valid { key, resource } => {
                if let Some((_, owner)) = claimed.get(key) {
                    problems.push(Problem {
                        file: file.path.clone(),
                        line: resource.origin.line,
                        object: Some(key.to_string()),
                        message: format!(
                            "also defined in {}; that definition is used",
                            owner.display()
                        ),
                    });
                } else {
                    claimed.insert(key.clone(), (resource.clone(), file.path.clone()));
                }
            }
        }
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
fn same_content(a: &Arc<Resource>, b: &Arc<Resource>) -> bool {
    Arc::ptr_eq(a, b) || a.api_version == b.api_version && a.meta == b.meta && a.spec == b.spec
}

#[cfg(test)]
mod tests;
