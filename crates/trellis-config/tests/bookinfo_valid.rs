//! Every networking sample of Istio's bookinfo decodes and validates without an error.

use std::path::{Path, PathBuf};

use trellis_api::decode_bytes;
use trellis_config::validate::{Level, validate};

fn corpus_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TRELLIS_CORPUS") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

#[test]
fn bookinfo_networking_samples_are_valid() {
    let dir = corpus_dir().join("istio/samples/bookinfo/networking");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "bookinfo samples not found at {} ({e}); set TRELLIS_CORPUS",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML files in {}", dir.display());
    let mut problems = Vec::new();
    let mut objects = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_default();
        let name = file.display().to_string();
        let decoded = decode_bytes(&name, &bytes, "default");
        problems.extend(decoded.errors.iter().map(|e| e.to_string()));
        for res in &decoded.resources {
            objects += 1;
            for f in validate(res) {
                if f.level == Level::Error {
                    problems.push(format!("{name}: {}: {f}", res.display_name()));
                }
            }
        }
    }
    println!("{} files, {objects} objects", files.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
