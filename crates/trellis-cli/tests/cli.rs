//! The `trellis` binary as a user runs it: exit codes, message formats, bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn trellis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run trellis")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus() -> PathBuf {
    std::env::var_os("TRELLIS_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/corpus"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn validate_accepts_the_shipped_sample() {
    let out = trellis(&["validate", "-f", "samples/bookstore"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn validate_names_object_field_and_suggestion() {
    let out = trellis(&["validate", "-f", "samples/mistakes/typo.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let expected = "Error: VirtualService bookstore/catalog: spec.http[0].route[0].wieght: \
                    unknown field, did you mean `weight`? (samples/mistakes/typo.yaml:10)";
    assert!(
        stderr(&out).lines().any(|l| l == expected),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validate_accepts_every_bookinfo_networking_sample() {
    let dir = corpus().join("istio/samples/bookinfo/networking");
    assert!(
        dir.is_dir(),
        "corpus not found at {} (set TRELLIS_CORPUS)",
        dir.display()
    );
    let out = trellis(&["validate", "-f", dir.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("in 21 file(s) are valid"));
}

#[test]
fn garbage_input_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deep = "[".repeat(100_000);
    let cases: [(&str, &[u8]); 4] = [
        ("binary.yaml", &[0xff, 0xfe, 0x00, 0x41]),
        ("deep.yaml", deep.as_bytes()),
        ("scalar.yaml", b"just a string\n"),
        (
            "unknown.yaml",
            b"apiVersion: networking.istio.io/v1\nkind: Nope\nmetadata: {name: x}\n",
        ),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        let out = trellis(&["validate", path.to_str().expect("utf-8 path")]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("{name}:")),
            "{name}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("panicked"),
            "{name}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn missing_file_is_reported_and_others_still_checked() {
    let out = trellis(&[
        "validate",
        "-f",
        "no/such/file.yaml",
        "-f",
        "samples/bookstore/routing.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no/such/file.yaml: cannot read"), "{err}");
    assert!(err.contains("5 object(s) decoded"), "{err}");
}

#[test]
fn version_help_and_completion() {
    let out = trellis(&["--version"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("trellis "));
    let out = trellis(&["help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("analyze"));
    let out = trellis(&["completion", "bash"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("complete -F"));
}

#[test]
fn analyze_finds_the_sample_mistakes_in_istio_format() {
    let out = trellis(&["analyze", "samples/bookstore", "samples/mistakes"]);
    assert_eq!(out.status.code(), Some(79), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "Error [IST0101] (VirtualService bookstore/reviews-canary) Referenced host+subset in destinationrule not found: \"reviews+v4\"",
        "Error [IST0101] (VirtualService bookstore/storefront-public) Referenced gateway not found: \"public-gateway\"",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
    assert!(
        text.contains("Error [IST0109] (VirtualService bookstore/reviews-canary)"),
        "{text}"
    );
    assert!(text.contains("Error [IST0106] (VirtualService bookstore/catalog) Schema validation error: spec.http[0].route[0].wieght"), "{text}");
}

#[test]
fn analyze_json_output_and_clean_exit() {
    let out = trellis(&[
        "analyze",
        "-o",
        "json",
        "samples/mistakes/broken-routing.yaml",
    ]);
    assert_eq!(out.status.code(), Some(79));
    let messages: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON array");
    let first = &messages[0];
    for key in ["code", "level", "origin", "message"] {
        assert!(first.get(key).is_some(), "{key} missing in {first}");
    }
    // The bookstore is clean for Istio, and Trellis translates everything it uses.
    let out = trellis(&["analyze", "samples/bookstore"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.trim().is_empty(), "{text}");
    assert!(
        stderr(&out).contains("No validation issues found"),
        "{text}"
    );
    let out = trellis(&[
        "analyze",
        "--output-threshold",
        "error",
        "samples/bookstore",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("No validation issues found"));
}

#[test]
fn app_runs_the_demo_applications_from_the_one_binary() {
    let help = trellis(&["app", "--help"]);
    assert_eq!(help.status.code(), Some(0), "{}", stderr(&help));
    let text = String::from_utf8_lossy(&help.stdout);
    for app in ["productpage", "details", "reviews", "ratings", "client"] {
        assert!(text.contains(app), "{text}");
    }
    let bad = trellis(&["app", "reviews", "--version", "v9"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[test]
fn demo_says_its_sidecars_talk_mutual_tls() {
    let help = trellis(&["demo", "--help"]);
    assert_eq!(help.status.code(), Some(0), "{}", stderr(&help));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("mutual TLS between its sidecars"), "{text}");
    assert!(text.contains("mTLS migration"), "{text}");
}
