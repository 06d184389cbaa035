//! The store against a real directory: edits, broken files and deletions on disk reach
//! subscribers as updates.

use std::sync::mpsc;
use std::time::Duration;

use trellis_config::store::{ChangeKind, FileStore, Update};

const WAIT: Duration = Duration::from_secs(10);

fn vs(name: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: shop}}\nspec: {{hosts: [{host}], http: [{{route: [{{destination: {{host: {host}}}}}]}}]}}\n"
    )
}

fn next(rx: &mpsc::Receiver<Update>) -> Update {
    rx.recv_timeout(WAIT)
        .expect("no update from the store within 10 s")
}

#[test]
fn watches_a_directory_and_publishes_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, vs("reviews", "reviews")).expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not config").expect("write");

    let store = FileStore::open(vec![dir.path().to_path_buf()], "default");
    assert_eq!(store.snapshot().revision, 1);
    assert_eq!(store.snapshot().objects.len(), 1);
    assert!(store.problems().is_empty(), "{:?}", store.problems());

    let (tx, rx) = mpsc::channel();
    let _handle = store.watch(move |u| drop(tx.send(u))).expect("watch");

    std::fs::write(&file, vs("reviews", "ratings")).expect("write");
    let update = next(&rx);
    assert_eq!(update.snapshot.revision, 2);
    assert_eq!(update.changes.len(), 1);
    assert_eq!(update.changes[0].kind, ChangeKind::Updated);

    std::fs::write(&file, "kind: [broken").expect("write");
    let update = next(&rx);
    assert_eq!(
        update.snapshot.objects.len(),
        1,
        "last good version stays in force"
    );
    assert_eq!(update.problems.len(), 1);
    assert_eq!(update.snapshot.revision, 2);

    std::fs::remove_file(&file).expect("remove");
    let update = next(&rx);
    assert!(update.snapshot.objects.is_empty());
    assert_eq!(update.changes[0].kind, ChangeKind::Removed);
}
