//! Istio's own validation tables, run against Trellis's validator.
//!
//! The corpus (`shared/corpus/validation/`, see its README §3) holds the cases of Istio's
//! webhook validation tests and of its CRD schema fixtures, each with Istio's verdict. This
//! test prints how often Trellis agrees (per scope and per kind), lists the disagreements,
//! and fails if agreement falls below the best figures recorded in
//! `tests/ratchets/validation.txt` (raise them as the validator improves).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use trellis_api::decode_bytes;
use trellis_config::validate::{Level, validate, validate_fragment};

fn corpus_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TRELLIS_CORPUS") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

fn read_cases(file: &str) -> Vec<Value> {
    let path = corpus_dir().join("validation").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "validation corpus not found at {} ({e}); set TRELLIS_CORPUS to the corpus directory",
            path.display()
        )
    });
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSONL line: {e}")))
        .collect()
}

/// Trellis's verdict on a whole object: `Ok(())` when accepted, else the first reason.
fn judge_yaml(yaml: &str) -> Result<(), String> {
    let decoded = decode_bytes("case.yaml", yaml.as_bytes(), "default");
    if let Some(e) = decoded.errors.first() {
        return Err(format!("decode: {e}"));
    }
    if decoded.resources.is_empty() {
        return Err("no object decoded".to_string());
    }
    for res in &decoded.resources {
        if let Some(f) = validate(res).into_iter().find(|f| f.level == Level::Error) {
            return Err(f.to_string());
        }
    }
    Ok(())
}

fn judge_fragment(kind: &str, value: Value) -> Result<(), String> {
    let findings = validate_fragment(kind, value).map_err(|e| format!("decode: {e}"))?;
    match findings.into_iter().find(|f| f.level == Level::Error) {
        Some(f) => Err(f.to_string()),
        None => Ok(()),
    }
}

/// The fragment kind to use for a case, or `None` for cases that test Go's type assertion
/// (a Server passed to a resource validator), which typed Rust cannot express.
fn fragment_input(case: &Value) -> Option<(String, Value)> {
    let test = case["test"].as_str().unwrap_or_default();
    let kind = case["kind"].as_str().unwrap_or_default();
    let input = case["input"].clone();
    match (test, kind) {
        ("TestValidateDelegateHTTPRoute", _) => Some(("DelegateHTTPRoute".into(), input)),
        ("Test_validateExportTo", _) => {
            let ctx = &case["context"];
            let wrapped = serde_json::json!({
                "namespace": ctx["namespace"],
                "exportTo": input,
                "isServiceEntry": ctx["isServiceEntry"].as_bool().unwrap_or(false),
                "isDestinationRuleWithSelector":
                    ctx["isDestinationRuleWithSelector"].as_bool().unwrap_or(false),
            });
            Some(("ExportTo".into(), wrapped))
        }
        (
            "TestValidateGateway"
            | "TestValidateTelemetry"
            | "TestValidateWasmPlugin"
            | "TestValidateTrafficExtension",
            "Server",
        ) => None,
        _ => Some((kind.to_string(), input)),
    }
}

#[derive(Default)]
struct Tally {
    agree: usize,
    total: usize,
    by_kind: BTreeMap<String, (usize, usize)>,
    disagreements: Vec<String>,
    skipped: Vec<String>,
    /// Rejections where Istio's table names an expected message: (contain it, total).
    wording: (usize, usize),
}

impl Tally {
    fn record(&mut self, case: &Value, kind: &str, got: Result<(), String>) {
        let id = case["id"].as_str().unwrap_or_default();
        let expect_valid = case["valid"].as_bool().unwrap_or(false);
        if let (Some(want), Err(msg)) = (case["error_contains"].as_str(), &got) {
            self.wording.1 += 1;
            if msg.contains(want) {
                self.wording.0 += 1;
            }
        }
        let agrees = expect_valid == got.is_ok();
        self.total += 1;
        let entry = self.by_kind.entry(kind.to_string()).or_default();
        entry.1 += 1;
        if agrees {
            self.agree += 1;
            entry.0 += 1;
        } else {
            let why = match got {
                Ok(()) => "Trellis accepts".to_string(),
                Err(e) => format!("Trellis rejects: {e}"),
            };
            let istio = if expect_valid { "valid" } else { "invalid" };
            self.disagreements
                .push(format!("  {id} [{kind}] Istio: {istio}; {why}"));
        }
    }

    fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            100.0 * self.agree as f64 / self.total as f64
        }
    }

    fn print(&self, name: &str) {
        println!(
            "{name}: {}/{} agree ({:.1}%)",
            self.agree,
            self.total,
            self.percent()
        );
        println!(
            "  Istio's error key words found in {}/{} rejections",
            self.wording.0, self.wording.1
        );
        for (kind, (a, t)) in &self.by_kind {
            println!("    {kind:<28} {a:>4}/{t:<4}");
        }
        if !self.skipped.is_empty() {
            println!("  skipped ({}):", self.skipped.len());
            for s in &self.skipped {
                println!("  {s}");
            }
        }
        if !self.disagreements.is_empty() {
            println!("  disagreements ({}):", self.disagreements.len());
            for d in &self.disagreements {
                println!("{d}");
            }
        }
    }
}

fn ratchets() -> BTreeMap<String, f64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ratchets/validation.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn istio_validation_tables() {
    let mut resource = Tally::default();
    let mut fragment = Tally::default();
    for case in read_cases("webhook_validation_cases.jsonl") {
        let id = case["id"].as_str().unwrap_or_default();
        let kind = case["kind"].as_str().unwrap_or("?");
        match case["scope"].as_str() {
            Some("resource") => {
                let yaml = case["resource_yaml"].as_str().unwrap_or_default();
                resource.record(&case, kind, judge_yaml(yaml));
            }
            Some("fragment") => match fragment_input(&case) {
                Some((k, input)) => fragment.record(&case, &k, judge_fragment(&k, input)),
                None => fragment.skipped.push(format!(
                    "{id}: wrong message type given to a resource validator"
                )),
            },
            _ => {}
        }
    }
    let mut crd = Tally::default();
    for case in read_cases("crd_openapi_cel_cases.jsonl") {
        let kind = case["kind"].as_str().unwrap_or("?");
        let yaml = case["resource_yaml"].as_str().unwrap_or_default();
        crd.record(&case, kind, judge_yaml(yaml));
    }

    resource.print("webhook resource scope");
    fragment.print("webhook fragment scope");
    crd.print("CRD OpenAPI/CEL cases");

    let floors = ratchets();
    let mut failures = Vec::new();
    for (name, tally) in [
        ("resource", &resource),
        ("fragment", &fragment),
        ("crd", &crd),
    ] {
        let floor = floors.get(name).copied().unwrap_or(0.0);
        println!("{name}: {:.1}% (ratchet {floor:.1}%)", tally.percent());
        if tally.percent() + 1e-9 < floor {
            failures.push(format!(
                "{name} agreement {:.1}% fell below the ratchet {floor:.1}%",
                tally.percent()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
