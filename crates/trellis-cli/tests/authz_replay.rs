//! Istio's authorization behaviour replayed through both data planes — a real Envoy and
//! the Trellis proxy: the rows of Istio's own authz integration tests
//! (`shared/corpus/authz/integration_authz_request_cases.jsonl`, with their policy
//! templates) and of the security docs tasks
//! (`shared/corpus/istio-docs-tasks/expected_observations.jsonl`).
//!
//! Each policy state is a world of its own (`authz_replay/world.rs`): a `trellis
//! control-plane` with the state's policies, and the server workload's sidecar with Sidecar
//! ingress listeners (`captureMode: NONE`) bound to a leased loopback address, in front of
//! a tiny HTTP application. Rows without a peer identity go straight to those listeners,
//! so what answers is the inbound chain with its RBAC and jwt_authn filters. JWKS are
//! served by a loopback HTTP server and fetched by the control plane (the docs' GitHub URI
//! is replaced by a loopback copy of the same file).
//!
//! Rows that need a peer identity (principals, namespaces, service accounts, trust
//! domains, `source.*` and `connection.sni` keys) run in worlds with client sidecars as
//! Istio's tests have them — `a` in `ns1` (allowed) and `a` in `ns2` (denied) — each with
//! its own certificate from the control plane's CA, an egress listener toward `b.foo` on
//! its own loopback address, and STRICT mutual TLS as the `mtls.yaml.tmpl` templates say.
//! A row is run from each client and judged on what the server saw. The docs' mTLS
//! migration runs the same way: httpbin and sleep in `foo` and `bar`, and `sleep.legacy`
//! (no sidecar) as a plain request.
//!
//! Istio's ingress gateway rows (`TestAuthz_IngressGateway`, `TestAuthz_NotHost`) and the
//! docs' ingress rows run through an ingress gateway (the data plane as a router) in front
//! of the server's sidecar; the docs' alternative snippets of a step are each a world of
//! their own (a row agrees when all do). The mesh trusts one proxy in front of the gateway
//! (`gatewayTopology.numTrustedProxies: 1`), as Istio's tests set it, so the rows' client
//! addresses travel in `X-Forwarded-For`.
//!
//! Istio's egress gateway rows (`TestAuthz_EgressGateway`) run through an egress gateway
//! (the data plane as a router with its own certificate, on ports 80 and 443 of its own
//! loopback address): the clients call port 80 of hosts outside the mesh, their sidecars
//! route to the gateway in plain text or over `ISTIO_MUTUAL`, and the gateway's policy
//! decides (`authz_replay/egress.rs`).
//!
//! Rows that need an external authorizer (CUSTOM) are counted apart; the two `source.ip`
//! rows need distinct client addresses and run in pods instead (`authz_source_ip.rs`). Prints `<data plane> authz rows: N/M agree, ...`;
//! the counts are held by `tests/ratchets/authz.txt` (`TRELLIS_RATCHET_UPDATE=1` rewrites
//! the line of the data plane that ran).

mod authz_replay {
    pub mod docs;
    pub mod egress;
    pub mod rows;
    pub mod world;
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use authz_replay::docs::docs_worlds;
use authz_replay::rows::{Pending, integration_worlds, tokens};
use authz_replay::world::{observe, start};
use trellis_testkit::scenario::{DataPlane, Envoy, Lease};
use trellis_testkit::trellis_proxy::TrellisProxy;

fn ratchet_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ratchets/authz.txt")
}

/// The ratchet's `<key> agree N` lines.
fn ratchet() -> BTreeMap<String, usize> {
    std::fs::read_to_string(ratchet_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, n) = l.split_once(" agree ")?;
            Some((key.trim().to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

fn write_ratchet(counts: &BTreeMap<String, usize>) {
    let mut text = String::from(
        "# Rows of Istio's authz integration tests and docs tasks that agree, per data plane\n\
         # (tests/authz_replay.rs). Rewrite with TRELLIS_RATCHET_UPDATE=1.\n",
    );
    for (key, n) in counts {
        text.push_str(&format!("{key} agree {n}\n"));
    }
    std::fs::write(ratchet_path(), text).unwrap();
}

/// Replays every world through `data_plane`; prints the figures and every disagreement,
/// and holds the agreement count at the ratchet's `key` line.
fn replay(data_plane: &dyn DataPlane, key: &str) {
    let began = Instant::now();
    let lease = Lease::take();
    let tokens = tokens();
    let mut pending = Pending::default();
    let mut worlds = integration_worlds(&lease, &tokens, &mut pending);
    worlds.extend(docs_worlds(&tokens));

    // Row name → every judgement of it agreed; and the rows judged through client sidecars.
    let mut verdicts: BTreeMap<String, bool> = BTreeMap::new();
    let mut with_peers: BTreeMap<String, bool> = BTreeMap::new();
    let mut disagreements = Vec::new();
    for world in &worlds {
        let peers = !world.clients.is_empty();
        let running = match start(world, &lease, data_plane) {
            Ok(running) => running,
            Err(e) => {
                for row in &world.rows {
                    verdicts.insert(row.name.clone(), false);
                    if peers {
                        with_peers.insert(row.name.clone(), false);
                    }
                }
                disagreements.push(format!("world {} did not start: {e}", world.name));
                continue;
            }
        };
        let before = disagreements.len();
        for row in &world.rows {
            let seen: Vec<_> = row
                .probes
                .iter()
                .map(|p| observe(world, &running, &lease, row, p))
                .collect();
            let ok = seen.iter().all(|(s, _)| *s == row.expect);
            *verdicts.entry(row.name.clone()).or_insert(true) &= ok;
            if peers {
                *with_peers.entry(row.name.clone()).or_insert(true) &= ok;
            }
            if !ok {
                let from = row
                    .from
                    .map(|j| {
                        let c = &world.clients[j];
                        format!(" from {}/{}", c.namespace, c.app)
                    })
                    .unwrap_or_default();
                let got: Vec<&str> = seen.iter().map(|(_, shown)| shown.as_str()).collect();
                disagreements.push(format!(
                    "{}{from} [{}]: expected {:?}, got {}",
                    row.name,
                    world.name,
                    row.expect,
                    got.join(", ")
                ));
            }
        }
        if disagreements.len() > before {
            eprintln!("[{}]\n{}", world.name, running.logs());
        }
    }
    let total = verdicts.len();
    let agree = verdicts.values().filter(|ok| **ok).count();
    let peers_agree = with_peers.values().filter(|ok| **ok).count();
    println!(
        "{key} authz rows: {agree}/{total} agree ({peers_agree}/{} with peer identities); pending: \
         {} need an external authorizer (CUSTOM, unsupported), {} run in pods \
         (source.ip, authz_source_ip.rs); {:.0?}",
        with_peers.len(),
        pending.custom,
        pending.source_ip,
        began.elapsed(),
    );
    for d in &disagreements {
        println!("  DISAGREES {d}");
    }
    let mut counts = ratchet();
    let recorded = counts.get(key).copied().unwrap_or(0);
    if std::env::var("TRELLIS_RATCHET_UPDATE").is_ok() {
        counts.insert(key.to_string(), agree);
        write_ratchet(&counts);
    }
    assert!(
        agree >= recorded,
        "{key}: agreement fell from {recorded} to {agree}:\n{}",
        disagreements.join("\n")
    );
    assert!(total >= 80, "too few rows ran: {total}");
}

#[test]
fn istio_authz_rows_through_envoy() {
    let Some(binary) = trellis_testkit::envoy() else {
        eprintln!("SKIPPED: envoy is not on PATH");
        return;
    };
    replay(&Envoy { binary }, "envoy");
}

#[test]
fn istio_authz_rows_through_trellis() {
    replay(&TrellisProxy, "trellis");
}
