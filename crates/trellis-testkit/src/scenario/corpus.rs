//! Istio's own material from `shared/corpus` (or `$TRELLIS_CORPUS`): bookinfo's networking
//! samples, read verbatim, and the documents of one snippet of a documentation task.

use std::path::{Path, PathBuf};

pub fn corpus() -> PathBuf {
    std::env::var_os("TRELLIS_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"))
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A file of `istio/samples/bookinfo/networking`, verbatim.
pub fn bookinfo(file: &str) -> String {
    read(
        corpus()
            .join("istio/samples/bookinfo/networking")
            .join(file),
    )
}

/// The documents of `snip` in `istio-docs-tasks/TASK.yaml`, verbatim. A document belongs
/// to a snippet when one of its leading comment lines is `# SNIP` (optionally followed by
/// a note such as `(doc 1 of 2)`).
pub fn task_snip(task: &str, snip: &str) -> String {
    let text = read(
        corpus()
            .join("istio-docs-tasks")
            .join(format!("{task}.yaml")),
    );
    let docs = snip_documents(&text, snip);
    assert!(!docs.is_empty(), "{task}.yaml has no snippet {snip}");
    docs.join("---\n")
}

/// Like [`task_snip`], keeping only the documents of `kind` (a snippet may apply a
/// VirtualService and a DestinationRule together; a scenario may want one of them).
pub fn task_snip_of_kind(task: &str, snip: &str, kind: &str) -> String {
    let all = task_snip(task, snip);
    let docs: Vec<&str> = all
        .split("---\n")
        .filter(|d| d.lines().any(|l| l.trim() == format!("kind: {kind}")))
        .collect();
    assert!(!docs.is_empty(), "{task}.yaml {snip} has no {kind}");
    docs.join("---\n")
}

fn snip_documents<'a>(text: &'a str, snip: &str) -> Vec<&'a str> {
    let marker = format!("# {snip}");
    text.split("\n---\n")
        .filter(|doc| {
            doc.lines()
                .take_while(|l| l.starts_with('#') || l.trim().is_empty())
                .any(|l| l == marker || l.starts_with(&format!("{marker} ")))
        })
        .map(|doc| doc.trim_start_matches("---\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_picked_by_their_comment() {
        let text = "# source: x\n# snip_a_1\nkind: A\n---\n# snip_a_10 (doc 1 of 2)\nkind: B\n---\n# snip_a_10 (doc 2 of 2)\nkind: C\n";
        assert_eq!(
            snip_documents(text, "snip_a_1"),
            ["# source: x\n# snip_a_1\nkind: A"]
        );
        assert_eq!(snip_documents(text, "snip_a_10").len(), 2);
    }

    #[test]
    fn the_mirroring_task_has_its_snippets() {
        let mirror = task_snip("mirroring", "snip_mirroring_traffic_to_v2_1");
        assert!(mirror.contains("mirror:"), "{mirror}");
        let dr = task_snip_of_kind(
            "mirroring",
            "snip_creating_a_default_routing_policy_1",
            "DestinationRule",
        );
        assert!(
            dr.contains("subsets:") && !dr.contains("VirtualService"),
            "{dr}"
        );
    }
}
