//! Istio's documented traffic behaviour through the Trellis proxy: every scenario of
//! `trellis_testkit::scenario::catalog` (the ones `envoy_behaviour.rs` proves through a
//! stock Envoy), with `trellis proxy` as the client sidecar. A scenario whose behaviour the
//! proxy does not implement yet is skipped here with a message naming
//! `docs/proxy-differences.md`, where the difference and its reason are listed; it is never
//! run with weakened expectations.

use std::path::PathBuf;

use trellis_testkit::scenario::{Runner, catalog};
use trellis_testkit::trellis_proxy::TrellisProxy;

/// Scenarios the proxy cannot match yet, and why (kept in step with
/// docs/proxy-differences.md).
const NOT_YET: &[(&str, &str)] = &[];

fn run(name: &str) {
    if let Some((_, why)) = NOT_YET.iter().find(|(n, _)| *n == name) {
        eprintln!(
            "skipped: scenario {name} through the trellis proxy: {why} (see docs/proxy-differences.md)"
        );
        return;
    }
    let runner = Runner {
        trellis: PathBuf::from(env!("CARGO_BIN_EXE_trellis")),
        data_plane: &TrellisProxy,
    };
    runner.run(&catalog::by_name(name)).assert_passed();
}

#[test]
fn all_v1() {
    run("all_v1");
}

#[test]
fn reviews_v2_v3_weights() {
    run("reviews_v2_v3_weights");
}

#[test]
fn reviews_80_20_weights() {
    run("reviews_80_20_weights");
}

#[test]
fn reviews_90_10_weights() {
    run("reviews_90_10_weights");
}

#[test]
fn header_match_jason() {
    run("header_match_jason");
}

#[test]
fn fault_delay() {
    run("fault_delay");
}

#[test]
fn fault_abort() {
    run("fault_abort");
}

#[test]
fn fault_abort_half() {
    run("fault_abort_half");
}

#[test]
fn request_timeout() {
    run("request_timeout");
}

#[test]
fn retries_recover() {
    run("retries_recover");
}

#[test]
fn default_retry_policy() {
    run("default_retry_policy");
}

#[test]
fn circuit_breaker() {
    run("circuit_breaker");
}

#[test]
fn mirroring() {
    run("mirroring");
}

#[test]
fn redirect_and_direct_response() {
    run("redirect_and_direct_response");
}

#[test]
fn header_manipulation() {
    run("header_manipulation");
}

#[test]
fn consistent_hash_by_header() {
    run("consistent_hash_by_header");
}

#[test]
fn cors_policy() {
    run("cors_policy");
}

#[test]
fn registry_only_sidecar() {
    run("registry_only_sidecar");
}

#[test]
fn registry_only_mesh_config() {
    run("registry_only_mesh_config");
}

/// Every scenario of the catalog has its test here, and every skip is documented.
#[test]
fn every_scenario_has_a_test_and_every_skip_a_reason() {
    let source = include_str!("proxy_behaviour.rs");
    for s in catalog::all() {
        assert!(
            source.contains(&format!("fn {}()", s.name)),
            "scenario {} has no test",
            s.name
        );
    }
    let doc = include_str!("../../../docs/proxy-differences.md");
    for (name, _) in NOT_YET {
        assert!(
            doc.contains(&format!("`{name}`")),
            "{name} is skipped but not listed in docs/proxy-differences.md"
        );
    }
}
