//! The cached reload against a full one: after every step of a history of edits, renames,
//! deletions and breakages, both give the same objects, problems and changes.

use std::path::{Path, PathBuf};

use super::*;
use crate::store::{Change, StoreState, read_sources};

fn vs(name: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: shop}}\nspec: {{hosts: [{host}], http: [{{route: [{{destination: {{host: {host}}}}}]}}]}}\n"
    )
}

/// A cached store and a full-reload store over one directory.
struct Twins {
    roots: Vec<PathBuf>,
    cache: FileCache,
    cached: StoreState,
    full: StoreState,
}

/// What one reload produced, in a comparable form.
#[derive(Debug, PartialEq)]
struct Outcome {
    objects: Vec<(String, String)>,
    problems: Vec<Problem>,
    changes: Vec<Change>,
    revision: u64,
}

fn outcome(state: &StoreState, problems: Vec<Problem>, changes: Vec<Change>) -> Outcome {
    Outcome {
        objects: state
            .snapshot
            .objects
            .iter()
            .map(|(k, r)| (k.to_string(), format!("{:?}", r.spec)))
            .collect(),
        problems,
        changes,
        revision: state.snapshot.revision,
    }
}

impl Twins {
    fn new(dir: &Path) -> Twins {
        Twins {
            roots: vec![dir.to_path_buf()],
            cache: FileCache::default(),
            cached: StoreState::default(),
            full: StoreState::default(),
        }
    }

    /// Reloads both; asserts they agree and returns the outcome and how many files the
    /// cached one decoded.
    fn reload(&mut self) -> (Outcome, usize) {
        let read = self.cache.refresh(&self.roots, "default");
        let cached = self.cached.apply_checked(&read.files, read.problems);
        let (sources, problems) = read_sources(&self.roots, "default");
        let full = self.full.apply(&sources, problems);
        let a = outcome(&cached.state, cached.problems, cached.changes);
        let b = outcome(&full.state, full.problems, full.changes);
        assert_eq!(a, b, "cached reload differs from a full one");
        self.cached = cached.state;
        self.full = full.state;
        (a, read.decoded)
    }
}

/// A store that never saw the history.
fn fresh(dir: &Path) -> Outcome {
    let (outcome, _) = Twins::new(dir).reload();
    Outcome {
        changes: Vec::new(),
        revision: 0,
        ..outcome
    }
}

fn settled(outcome: &Outcome) -> Outcome {
    Outcome {
        objects: outcome.objects.clone(),
        problems: outcome.problems.clone(),
        changes: Vec::new(),
        revision: 0,
    }
}

#[test]
fn a_history_of_edits_gives_the_store_a_full_reload_gives() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let write = |name: &str, text: &str| std::fs::write(path(name), text).unwrap();
    std::fs::create_dir(path("sub")).unwrap();
    write("a.yaml", &vs("a", "x"));
    write(
        "b.yaml",
        &format!("{}---\n{}", vs("b", "why"), vs("c", "z")),
    );
    write("sub/c.yaml", &vs("d", "w"));
    write("notes.txt", "not config");
    let mut twins = Twins::new(dir.path());

    let (first, decoded) = twins.reload();
    assert_eq!((first.objects.len(), decoded), (4, 3), "{first:?}");
    assert_eq!(settled(&first), fresh(dir.path()));

    let (same, decoded) = twins.reload();
    assert_eq!((same.changes.len(), decoded), (0, 0), "nothing re-read");

    write("a.yaml", &vs("a", "q"));
    let (edited, decoded) = twins.reload();
    assert_eq!((edited.changes.len(), decoded), (1, 1));
    assert_eq!(settled(&edited), fresh(dir.path()));

    std::fs::rename(path("b.yaml"), path("e.yaml")).unwrap();
    let (renamed, decoded) = twins.reload();
    assert_eq!(
        (renamed.changes.len(), decoded),
        (0, 1),
        "moved, not changed"
    );
    assert_eq!(settled(&renamed), fresh(dir.path()));

    write(
        "a.yaml",
        &format!(
            "{}---\n{}",
            vs("a", "q").replace("hosts", "hostz"),
            vs("new", "m")
        ),
    );
    let (broken, decoded) = twins.reload();
    assert_eq!(decoded, 1);
    assert_eq!(broken.problems.len(), 1, "{:?}", broken.problems);
    assert!(
        broken.objects.iter().any(|(k, _)| k.ends_with("shop/a")),
        "last good a kept"
    );
    assert!(
        broken.objects.iter().any(|(k, _)| k.ends_with("shop/new")),
        "rest applied"
    );

    write("sub/c.yaml", &vs("d", "v"));
    let (same_length, decoded) = twins.reload();
    assert_eq!(
        (same_length.changes.len(), decoded),
        (1, 1),
        "same length, new content"
    );
    assert_eq!(
        same_length.problems, broken.problems,
        "the broken file's error stays"
    );

    std::fs::remove_file(path("sub/c.yaml")).unwrap();
    write("0.yaml", &vs("b", "other"));
    let (moved, decoded) = twins.reload();
    assert_eq!(decoded, 1);
    assert!(
        moved
            .problems
            .iter()
            .any(|p| p.message.contains("also defined in"))
    );

    write("a.yaml", &vs("a", "fixed"));
    std::fs::remove_file(path("0.yaml")).unwrap();
    let (fixed, _) = twins.reload();
    assert!(fixed.problems.is_empty(), "{:?}", fixed.problems);
    assert_eq!(settled(&fixed), fresh(dir.path()));
}
