//! Helpers for tests that run the upstream corpus (`shared/corpus`) through real processes:
//!
//! - [`corpus_dir`]: where the corpus is (`TRELLIS_CORPUS` or `../shared/corpus` from the
//!   workspace);
//! - [`in_namespace`]: a manifest as `kubectl apply -n NS` would read it;
//! - [`documents`]: a YAML stream split into its documents;
//! - [`envoy_stat_sum`]: the sum of an Envoy admin's counters matching a filter.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The corpus directory: `$TRELLIS_CORPUS`, or `shared/corpus` beside the workspace.
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("TRELLIS_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"))
}

/// Places every document of `yaml` that names no namespace in `namespace`, the way
/// `kubectl apply -n` does. Works on the block-style manifests of the corpus (top-level
/// `metadata:` followed by indented fields); documents that already name a namespace, or
/// whose metadata is written in flow style, are left as they are.
pub fn in_namespace(yaml: &str, namespace: &str) -> String {
    let mut out = String::with_capacity(yaml.len() + 64);
    for (i, document) in documents(yaml).into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&document_in_namespace(&document, namespace));
    }
    out
}

/// The documents of a YAML stream, split at `---` lines (block-style streams, as in the
/// corpus).
pub fn documents(yaml: &str) -> Vec<String> {
    let mut documents = vec![String::new()];
    for line in yaml.lines() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            documents.push(String::new());
            continue;
        }
        let current = documents.last_mut().expect("one document");
        current.push_str(line);
        current.push('\n');
    }
    documents
}

fn document_in_namespace(document: &str, namespace: &str) -> String {
    let lines: Vec<&str> = document.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim_end() == "metadata:") else {
        return document.to_string();
    };
    // The metadata block: the indented lines after `metadata:`.
    let block = lines[start + 1..]
        .iter()
        .take_while(|l| l.starts_with(' ') || l.trim().is_empty() || l.starts_with('#'));
    let mut indent: Option<usize> = None;
    for line in block {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let width = line.len() - line.trim_start().len();
        let first = *indent.get_or_insert(width);
        if width == first && line.trim_start().starts_with("namespace:") {
            return document.to_string();
        }
    }
    let pad = " ".repeat(indent.unwrap_or(2));
    let mut out = String::with_capacity(document.len() + 32);
    for (i, line) in lines.iter().enumerate() {
        out.push_str(line);
        out.push('\n');
        if i == start {
            out.push_str(&format!("{pad}namespace: {namespace}\n"));
        }
    }
    out
}

/// The sum of the counters an Envoy admin at `admin` reports for `/stats?filter=FILTER`,
/// `FILTER` taken literally. The Trellis proxy's admin ignores the query and lists every
/// counter, so the names are filtered here too: this works for both.
pub fn envoy_stat_sum(admin: SocketAddr, filter: &str) -> Result<u64, String> {
    let reply = crate::get(
        admin,
        &format!("/stats?filter={filter}"),
        &[],
        Duration::from_secs(5),
    )?;
    if reply.status != 200 {
        return Err(format!("envoy stats: {} {}", reply.status, reply.body));
    }
    Ok(reply
        .body
        .lines()
        .filter_map(|l| l.rsplit_once(": "))
        .filter(|(name, _)| name.contains(filter))
        .filter_map(|(_, value)| value.trim().parse::<u64>().ok())
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_added_only_where_missing() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  labels:\n    namespace: x\nspec: {}\n---\nkind: Service\nmetadata:\n  name: b\n  namespace: keep\n";
        let out = in_namespace(yaml, "foo");
        assert_eq!(
            out,
            "apiVersion: v1\nkind: Service\nmetadata:\n  namespace: foo\n  name: a\n  labels:\n    namespace: x\nspec: {}\n---\nkind: Service\nmetadata:\n  name: b\n  namespace: keep\n"
        );
    }
}
