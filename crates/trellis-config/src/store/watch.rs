//! The live store: reads the tree, then watches it and publishes an [`Update`] whenever
//! what is in force (or the list of problems) changes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::cache::FileCache;
use super::{Problem, Snapshot, StoreState, Update};

/// Editors write a file in several steps; changes closer together than this are read once.
const SETTLE: Duration = Duration::from_millis(100);

/// Why the store cannot watch its files.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// A configuration store over files and directories.
#[derive(Debug)]
pub struct FileStore {
    roots: Vec<PathBuf>,
    default_namespace: String,
    state: StoreState,
    problems: Vec<Problem>,
    cache: FileCache,
}

impl FileStore {
    /// Reads everything under `roots`; problems are recorded, never fatal.
    pub fn open(roots: Vec<PathBuf>, default_namespace: &str) -> Self {
        let mut store = Self {
            roots,
            default_namespace: default_namespace.to_string(),
            state: StoreState::default(),
            problems: Vec::new(),
            cache: FileCache::default(),
        };
        store.reload();
        store
    }

    /// The objects in force now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.state.snapshot.clone()
    }

    /// What is not in force, and why.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Reads the files again and moves to the next revision if anything changed; only
    /// files whose content changed are decoded and validated again.
    pub fn reload(&mut self) -> Update {
        let read = self.cache.refresh(&self.roots, &self.default_namespace);
        tracing::debug!(
            files = read.files.len(),
            decoded = read.decoded,
            "config files read"
        );
        let applied = self.state.apply_checked(&read.files, read.problems);
        for change in &applied.changes {
            tracing::info!(object = %change.key, change = ?change.kind, revision = applied.state.snapshot.revision, "config changed");
        }
        for problem in applied
            .problems
            .iter()
            .filter(|p| !self.problems.contains(p))
        {
            tracing::warn!(%problem, "config problem");
        }
        self.state = applied.state;
        self.problems = applied.problems.clone();
        Update {
            snapshot: self.state.snapshot.clone(),
            changes: applied.changes,
            problems: applied.problems,
        }
    }

    /// Watches the roots and calls `on_update` after each change that alters what is in
    /// force or the problems. Watching stops when the handle is dropped.
    pub fn watch(
        mut self,
        mut on_update: impl FnMut(Update) + Send + 'static,
    ) -> Result<WatchHandle, StoreError> {
        let (tx, rx) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            // The receiver is gone only when the store is shutting down.
            let _ = tx.send(event);
        })
        .map_err(|source| StoreError::Watch {
            path: PathBuf::new(),
            source,
        })?;
        for root in &self.roots {
            watcher
                .watch(root, RecursiveMode::Recursive)
                .map_err(|source| StoreError::Watch {
                    path: root.clone(),
                    source,
                })?;
        }
        let thread = std::thread::spawn(move || {
            while rx.recv().is_ok() {
                loop {
                    match rx.recv_timeout(SETTLE) {
                        Ok(_) => continue,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                let before = self.problems.clone();
                let update = self.reload();
                if !update.changes.is_empty() || update.problems != before {
                    on_update(update);
                }
            }
        });
        Ok(WatchHandle {
            watcher: Some(watcher),
            thread: Some(thread),
        })
    }
}

/// Keeps a store watching; dropping it stops the watch and waits for the worker.
pub struct WatchHandle {
    watcher: Option<notify::RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        // Dropping the watcher closes the event channel, which ends the worker's loop.
        self.watcher.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
