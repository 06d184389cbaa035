//! Istio's own RBAC builder table (`shared/corpus/authz/builder_cases.jsonl`, from
//! `pilot/pkg/security/authz/builder/builder_test.go`): each input's policies go through
//! Trellis's builders and the filters must equal Istio's expected YAML, field for field.
//! CUSTOM cases with a usable ext_authz provider are out of scope (Trellis calls no
//! external authorizer) and are listed, not counted.

mod support;

use std::path::Path;

use serde_json::{Value, json};
use trellis_api::istio::mesh::MeshConfig;
use trellis_api::istio::security::{AuthorizationPolicy, AuthorizationPolicyAction};
use trellis_api::{Resource, Spec};
use trellis_control_plane::translate::authz::rbac::{self, Built, HttpRbac, NetworkRbac};
use trellis_control_plane::translate::authz::rule::Action;
use trellis_control_plane::translate::authz::trust_domain::TrustDomains;
use trellis_testkit::corpus::corpus_dir;

use support::rbac_json;

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap()
}

/// The filters Trellis builds for `policies`, as Istio's YAML would show them.
fn filters(policies: &[Resource], tcp: bool, domains: &TrustDomains) -> Vec<Value> {
    let by = |action: AuthorizationPolicyAction| -> Vec<(&Resource, &AuthorizationPolicy)> {
        policies
            .iter()
            .filter_map(|r| match &r.spec {
                Spec::AuthorizationPolicy(p) if p.action == action => Some((r, p)),
                _ => None,
            })
            .collect()
    };
    let custom = rbac::bad_custom(&by(AuthorizationPolicyAction::Custom), tcp, domains);
    let mut built: Vec<(Option<_>, Option<Built>)> =
        custom.into_iter().map(|c| (Some(c), None)).collect();
    for (action, a) in [
        (AuthorizationPolicyAction::Audit, Action::Log),
        (AuthorizationPolicyAction::Deny, Action::Deny),
        (AuthorizationPolicyAction::Allow, Action::Allow),
    ] {
        if let Some(b) = rbac::build(&by(action), a, tcp, domains, "") {
            built.push((None, Some(b)));
        }
    }
    built
        .into_iter()
        .map(|(custom, b)| {
            let (name, config) = if tcp {
                let m = match (custom, b) {
                    (Some(c), _) => NetworkRbac {
                        rules: Some(c),
                        stat_prefix: rbac::TCP_STAT_PREFIX.to_string(),
                        ..Default::default()
                    },
                    (None, Some(b)) => b.network(),
                    _ => unreachable!(),
                };
                (
                    rbac::NETWORK_RBAC,
                    rbac_json::network_rbac(&prost::Message::encode_to_vec(&m)),
                )
            } else {
                let m = match (custom, b) {
                    (Some(c), _) => HttpRbac {
                        rules: Some(c),
                        ..Default::default()
                    },
                    (None, Some(b)) => b.http(),
                    _ => unreachable!(),
                };
                (
                    rbac::HTTP_RBAC,
                    rbac_json::http_rbac(&prost::Message::encode_to_vec(&m)),
                )
            };
            json!({"name": name, "typedConfig": config})
        })
        .collect()
}

#[test]
fn istio_builder_cases() {
    let corpus = corpus_dir();
    let table = std::fs::read_to_string(corpus.join("authz/builder_cases.jsonl")).unwrap();
    let (mut agree, mut total, mut skipped) = (0, 0, Vec::new());
    let mut failures = Vec::new();
    for line in table.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let name = case["name"].as_str().unwrap();
        let has_provider = case["meshConfig"]["extensionProviders"]
            .as_array()
            .is_some_and(|p| {
                p.iter().any(|p| {
                    p["envoyExtAuthzHttp"]["port"].as_u64().unwrap_or(0) < 65536
                        && (p.get("envoyExtAuthzGrpc").is_some()
                            || p["envoyExtAuthzHttp"]["pathPrefix"]
                                .as_str()
                                .is_some_and(|s| s.starts_with('/')))
                })
            });
        if has_provider && name != "custom-bad-multiple-providers" {
            skipped.push(name.to_string());
            continue;
        }
        total += 1;
        let input = corpus.join("istio").join(case["input"].as_str().unwrap());
        let text = std::fs::read_to_string(&input).unwrap();
        let decoded = trellis_api::decode_bytes("in.yaml", text.as_bytes(), "default");
        let bundle: Vec<String> = case["trust_domain_bundle"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_else(|| vec!["cluster.local".to_string()]);
        let domains = TrustDomains::of(&MeshConfig {
            trust_domain: bundle[0].clone(),
            trust_domain_aliases: bundle[1..].to_vec(),
            ..Default::default()
        });
        let tcp = case["test"] == "TestGenerator_GenerateTCP";
        let got = filters(&decoded.resources, tcp, &domains);
        let want: Vec<Value> = case["want"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| read_yaml(&corpus.join("istio").join(p.as_str().unwrap())))
            .collect();
        if got == want {
            agree += 1;
        } else {
            failures.push(format!(
                "{name}:\n got  {}\n want {}",
                serde_json::to_string(&got).unwrap(),
                serde_json::to_string(&want).unwrap()
            ));
        }
    }
    println!(
        "Istio builder cases: {agree}/{total} agree; not applicable (CUSTOM with a provider): {skipped:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(total >= 20, "too few cases ran: {total}");
}
