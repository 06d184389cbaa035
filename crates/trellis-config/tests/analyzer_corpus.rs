//! Istio's analyzer test table (`analyzers/analyzer_cases.jsonl` of the shared corpus) run
//! against Trellis's analyzers.
//!
//! For each case, the case's files are decoded (objects without a namespace keep none, as in
//! Istio's test harness, so origins read `Kind name`), the case's analyzer runs alone, and
//! the messages produced are compared with the expected ones by code and origin. The test
//! prints the share of expected messages produced, per analyzer and overall, and every
//! unexpected message; it fails when a figure falls below the best recorded in
//! `tests/ratchets/analyzers.txt`, or when unexpected messages rise above the recorded count.
//! Set `TRELLIS_RATCHET_UPDATE=1` to rewrite the ratchet after an improvement.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use trellis_api::istio::mesh::MeshConfig;
use trellis_config::analyze::{ANALYZERS, Input, Message, analyze_input};

/// Analyzers whose cases need state only a live cluster (or kinds Trellis does not read)
/// provides, with the reason. Their cases are run and reported, but not counted.
const NEEDS_CLUSTER: &[(&str, &str)] = &[
    (
        "injection.Analyzer",
        "sidecar injection state of running pods and the injector's cluster config",
    ),
    (
        "injection.ImageAnalyzer",
        "proxy images of running pods against the injector ConfigMap",
    ),
    (
        "injection.ImageAutoAnalyzer",
        "MutatingWebhookConfiguration selectors of the cluster",
    ),
    (
        "webhook.Analyzer",
        "MutatingWebhookConfiguration objects of the cluster",
    ),
    (
        "externalcontrolplane.ExternalControlPlaneAnalyzer",
        "webhook configurations of the cluster",
    ),
    (
        "conditions.ConditionAnalyzer",
        "status conditions written by a running control plane",
    ),
    (
        "k8sgateway.SelectorAnalyzer",
        "Gateway API objects (not read by Trellis)",
    ),
    (
        "k8sgateway.CRDVersionAnalyzer",
        "installed CustomResourceDefinitions",
    ),
    (
        "multicluster.MeshNetworksAnalyzer",
        "remote-cluster secrets and meshNetworks of a multicluster install",
    ),
];

/// The upstream case "dupmatches" runs Istio's VirtualService schema validation, where Istio
/// computes IST0130/IST0131; Trellis has a dedicated analyzer for them.
fn analyzer_name(case: &Value) -> String {
    match &case["analyzer"] {
        Value::String(s) if s != "CALL" => s.clone(),
        _ if case["name"] == "dupmatches" => "virtualservice.UnreachableRulesAnalyzer".into(),
        other => other.to_string(),
    }
}

fn corpus_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TRELLIS_CORPUS") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // crates/trellis-config -> workspace root -> ../shared/corpus
    manifest.join("../../../shared/corpus")
}

#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    expected: usize,
    produced: usize,
    level_agrees: usize,
    unexpected: usize,
}

struct CaseResult {
    analyzer: String,
    name: String,
    missing: Vec<String>,
    unexpected: Vec<Message>,
    tally: Tally,
}

fn run_case(corpus: &Path, case: &Value) -> CaseResult {
    let istio = corpus.join("istio");
    let mut resources = Vec::new();
    let mut errors = Vec::new();
    for f in case["input_files"].as_array().expect("input_files") {
        let rel = f.as_str().expect("file");
        let path = istio.join(rel);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let decoded = trellis_api::decode_bytes(rel, &bytes, "");
        resources.extend(decoded.resources);
        errors.extend(decoded.errors);
    }
    let mesh = match case.get("meshConfigFile").and_then(Value::as_str) {
        Some(rel) => {
            let bytes = std::fs::read(istio.join(rel)).expect("mesh config file");
            trellis_api::decode_mesh_config(rel, &bytes).unwrap_or_else(|e| {
                eprintln!("  mesh config {rel}: {e} (using defaults)");
                MeshConfig::default()
            })
        }
        None => MeshConfig::default(),
    };
    let analyzer = analyzer_name(case);
    let input = Input {
        resources: &resources,
        mesh: &mesh,
        decode_errors: &errors,
    };
    let produced = analyze_input(&input, |n| n == analyzer);
    let mut left: Vec<Option<&Message>> = produced.iter().map(Some).collect();
    let mut tally = Tally::default();
    let mut missing = Vec::new();
    for exp in case["expected"].as_array().expect("expected") {
        tally.expected += 1;
        let code = exp["code"].as_str().unwrap_or_default();
        let origin = exp["origin"].as_str().unwrap_or_default();
        let level = exp["level"].as_str().unwrap_or_default();
        let hit = left
            .iter_mut()
            .find(|m| m.is_some_and(|m| m.code == code && m.origin == origin));
        match hit {
            Some(slot) => {
                let m = slot.take().expect("present");
                tally.produced += 1;
                if m.level.as_str() == level {
                    tally.level_agrees += 1;
                }
            }
            None => missing.push(format!("{code} {origin}")),
        }
    }
    let unexpected: Vec<Message> = left.into_iter().flatten().cloned().collect();
    tally.unexpected = unexpected.len();
    CaseResult {
        analyzer,
        name: case["name"].as_str().unwrap_or_default().to_string(),
        missing,
        unexpected,
        tally,
    }
}

fn read_ratchet(path: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.trim().to_string(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn istio_analyzer_cases() {
    let corpus = corpus_dir();
    let table = corpus.join("analyzers/analyzer_cases.jsonl");
    let text = std::fs::read_to_string(&table).unwrap_or_else(|e| {
        panic!(
            "analyzer corpus not found at {} ({e}); set TRELLIS_CORPUS to the shared corpus",
            table.display()
        )
    });
    let cases: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("case is JSON"))
        .collect();

    let mut per_analyzer: BTreeMap<String, Tally> = BTreeMap::new();
    let mut counted = Tally::default();
    let mut all = Tally::default();
    for case in &cases {
        let res = run_case(&corpus, case);
        let cluster = NEEDS_CLUSTER.iter().any(|(n, _)| *n == res.analyzer);
        let known = ANALYZERS.iter().any(|a| a.name == res.analyzer);
        if !res.missing.is_empty() || !res.unexpected.is_empty() {
            println!("case {:?} ({}):", res.name, res.analyzer);
            for m in &res.missing {
                println!("  missing    {m}");
            }
            for m in &res.unexpected {
                println!("  unexpected {m}");
            }
        }
        let t = per_analyzer.entry(res.analyzer.clone()).or_default();
        for acc in [t, &mut all] {
            acc.expected += res.tally.expected;
            acc.produced += res.tally.produced;
            acc.level_agrees += res.tally.level_agrees;
            acc.unexpected += res.tally.unexpected;
        }
        if !cluster {
            counted.expected += res.tally.expected;
            counted.produced += res.tally.produced;
            counted.level_agrees += res.tally.level_agrees;
            counted.unexpected += res.tally.unexpected;
        }
        let _ = known;
    }

    println!("\nper analyzer (produced/expected, unexpected):");
    for (name, t) in &per_analyzer {
        let note = if NEEDS_CLUSTER.iter().any(|(n, _)| n == name) {
            " [needs a cluster]"
        } else if !ANALYZERS.iter().any(|a| a.name == name) {
            " [not implemented]"
        } else {
            ""
        };
        println!(
            "  {name:58} {:3}/{:3}  unexpected {}{note}",
            t.produced, t.expected, t.unexpected
        );
    }
    println!("\nnot counted (need a live cluster or kinds Trellis does not read):");
    for (name, why) in NEEDS_CLUSTER {
        println!("  {name}: {why}");
    }
    let pct = |t: &Tally| 100.0 * t.produced as f64 / t.expected.max(1) as f64;
    println!(
        "\ncounted analyzers: {}/{} expected messages produced ({:.1}%), level agrees on {}, \
         {} unexpected",
        counted.produced,
        counted.expected,
        pct(&counted),
        counted.level_agrees,
        counted.unexpected
    );
    println!(
        "all cases:         {}/{} ({:.1}%), {} unexpected",
        all.produced,
        all.expected,
        pct(&all),
        all.unexpected
    );
    println!(
        "(the table names each expected message but not its text; the text follows Istio's \
         messages.yaml templates, and its level is checked above)"
    );

    let ratchet_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ratchets/analyzers.txt");
    let mut now: BTreeMap<String, usize> = BTreeMap::new();
    now.insert("overall produced".into(), counted.produced);
    now.insert("overall level".into(), counted.level_agrees);
    for (name, t) in &per_analyzer {
        now.insert(format!("produced {name}"), t.produced);
    }
    if std::env::var("TRELLIS_RATCHET_UPDATE").is_ok() {
        let mut text = String::from(
            "# Best figures reached by tests/analyzer_corpus.rs: expected messages produced\n\
             # (overall counts only analyzers that need no cluster) and the most unexpected\n\
             # messages allowed. Rewrite with TRELLIS_RATCHET_UPDATE=1 after an improvement.\n",
        );
        for (k, v) in &now {
            text.push_str(&format!("{k} {v}\n"));
        }
        text.push_str(&format!("max unexpected {}\n", all.unexpected));
        std::fs::write(&ratchet_path, text).expect("write ratchet");
        return;
    }
    let stored = read_ratchet(&ratchet_path);
    let mut failures = Vec::new();
    for (k, best) in &stored {
        if k == "max unexpected" {
            if all.unexpected > *best {
                failures.push(format!(
                    "unexpected messages rose: {} > {best}",
                    all.unexpected
                ));
            }
            continue;
        }
        let got = now.get(k).copied().unwrap_or(0);
        if got < *best {
            failures.push(format!("{k}: {got} < {best}"));
        }
    }
    assert!(
        failures.is_empty(),
        "analyzer ratchet regressed:\n{}",
        failures.join("\n")
    );
}
