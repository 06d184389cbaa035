use super::*;
use trellis_api::decode_bytes;

fn source(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: PathBuf::from(path),
        decoded: decode_bytes(path, text.as_bytes(), "default"),
    }
}

fn vs(name: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec: {{hosts: [{host}], http: [{{route: [{{destination: {{host: {host}}}}}]}}]}}\n"
    )
}

fn names(state: &StoreState) -> Vec<String> {
    state
        .snapshot
        .objects
        .keys()
        .map(|k| k.name.clone())
        .collect()
}

#[test]
fn first_load_adds_everything_and_bumps_the_revision() {
    let applied = StoreState::default().apply(
        &[source("a.yaml", &(vs("a", "x") + "---\n" + &vs("b", "h2")))],
        vec![],
    );
    assert_eq!(names(&applied.state), ["a", "b"]);
    assert_eq!(applied.state.snapshot.revision, 1);
    assert!(applied.changes.iter().all(|c| c.kind == ChangeKind::Added));
    assert!(applied.problems.is_empty());
}

#[test]
fn unchanged_content_is_not_a_change_even_when_it_moves_in_the_file() {
    let first = StoreState::default().apply(&[source("a.yaml", &vs("a", "x"))], vec![]);
    let again = first.state.apply(
        &[source(
            "a.yaml",
            &format!("# moved down\n\n{}", vs("a", "x")),
        )],
        vec![],
    );
    assert!(again.changes.is_empty());
    assert_eq!(again.state.snapshot.revision, 1);
}

#[test]
fn an_object_that_turns_invalid_keeps_its_last_good_version() {
    let first = StoreState::default().apply(
        &[source("a.yaml", &(vs("a", "x") + "---\n" + &vs("b", "h2")))],
        vec![],
    );
    let broken = vs("a", "x").replace("hosts", "hostz");
    let next = first.state.apply(
        &[source("a.yaml", &(broken + "---\n" + &vs("b", "h3")))],
        vec![],
    );
    assert_eq!(names(&next.state), ["a", "b"]);
    assert_eq!(next.changes, vec![change(&key("b"), ChangeKind::Updated)]);
    assert_eq!(next.problems.len(), 1);
    assert!(
        next.problems[0].message.contains("did you mean `hosts`"),
        "{}",
        next.problems[0]
    );
}

#[test]
fn removal_from_a_clean_file_or_file_deletion_removes() {
    let first = StoreState::default().apply(
        &[
            source("a.yaml", &vs("a", "x")),
            source("b.yaml", &vs("b", "h2")),
        ],
        vec![],
    );
    let next = first.state.apply(&[source("a.yaml", "")], vec![]);
    assert!(names(&next.state).is_empty());
    assert_eq!(next.changes.len(), 2);
    assert!(next.changes.iter().all(|c| c.kind == ChangeKind::Removed));
}

#[test]
fn unreadable_file_keeps_its_objects() {
    let first = StoreState::default().apply(&[source("a.yaml", &vs("a", "x"))], vec![]);
    let problem = Problem::in_file(std::path::Path::new("a.yaml"), "cannot read".into());
    let next = first.state.apply(&[], vec![problem]);
    assert_eq!(names(&next.state), ["a"]);
    assert!(next.changes.is_empty());
}

#[test]
fn duplicate_definitions_keep_the_first_file() {
    let applied = StoreState::default().apply(
        &[
            source("a.yaml", &vs("a", "x")),
            source("b.yaml", &vs("a", "h2")),
        ],
        vec![],
    );
    assert_eq!(applied.state.snapshot.objects.len(), 1);
    assert_eq!(applied.problems.len(), 1);
    assert!(
        applied.problems[0]
            .message
            .contains("also defined in a.yaml")
    );
}

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: trellis_api::Kind::VirtualService,
        namespace: "default".into(),
        name: name.into(),
    }
}
