//! Test helpers: a config snapshot from YAML text, the way the store would build it.

use std::path::PathBuf;
use std::sync::Arc;

use trellis_config::store::{Snapshot, SourceFile, StoreState};

/// Decodes, validates and stores `yaml`; panics on any problem (tests write valid YAML).
pub fn snapshot(yaml: &str) -> Arc<Snapshot> {
    let source = SourceFile {
        path: PathBuf::from("test.yaml"),
        decoded: trellis_api::decode_bytes("test.yaml", yaml.as_bytes(), "default"),
    };
    let applied = StoreState::default().apply(&[source], vec![]);
    assert!(applied.problems.is_empty(), "{:?}", applied.problems);
    applied.state.snapshot
}
