//! The security docs tasks' observations as worlds: the snippets in force at each step
//! (`shared/corpus/istio-docs-tasks/expected_observations.jsonl`).

use std::collections::BTreeMap;

use serde_json::Value;
use trellis_testkit::corpus::corpus_dir;

use super::rows::{Expect, GATEWAY_PORT, HTTP, JWKS_URI, NS, Probe, Row, Workload, World, read};

/// `snip_<section>_<n>` → (section, n).
fn snip_key(snip: &str) -> (String, u32) {
    let (section, n) = snip.rsplit_once('_').unwrap_or((snip, "0"));
    (section.to_string(), n.parse().unwrap_or(0))
}

/// The documents of a task file with their snip names.
fn snip_documents(text: &str) -> Vec<(String, String)> {
    text.split("\n---")
        .filter_map(|doc| {
            let snip = doc
                .lines()
                .find_map(|l| l.trim().strip_prefix("# snip_"))?
                .split_whitespace()
                .next()?;
            Some((format!("snip_{snip}"), doc.to_string()))
        })
        .collect()
}

/// `kind` and `metadata.name` of a document, to let a later snippet replace it.
fn identity(doc: &str) -> (String, String) {
    let field = |key: &str| {
        doc.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (field("kind:"), field("name:"))
}

/// The task's snippets in force before the observation's snip (the order of sections is
/// the order in which the observations name them).
fn in_force(observations: &str, task: &str, snip: &str, file: &str) -> String {
    let (section, n) = snip_key(snip);
    let sections: Vec<String> = observations
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|o| o["task"] == task)
        .map(|o| snip_key(o["snip"].as_str().unwrap_or("")).0)
        .fold(Vec::new(), |mut acc, s| {
            if !acc.contains(&s) {
                acc.push(s);
            }
            acc
        });
    let order = |s: &str| sections.iter().position(|x| x == s).unwrap_or(usize::MAX);
    let mut documents: Vec<((String, String), String)> = Vec::new();
    let text = read(corpus_dir().join("istio-docs-tasks").join(file));
    for (snip, doc) in snip_documents(&text) {
        let (s, m) = snip_key(&snip);
        if (order(&s), m) < (order(&section), n) {
            let id = identity(&doc);
            documents.retain(|(other, _)| *other != id);
            documents.push((id, doc));
        }
    }
    documents
        .iter()
        .map(|(_, d)| d.as_str())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// `name.namespace` (`sleep.foo`, `httpbin.bar:8000`) → the workload, `foo` when bare.
fn workload_of(dotted: &str) -> Workload {
    let host = dotted.split(':').next().unwrap_or(dotted);
    let mut parts = host.split('.');
    let app = parts.next().unwrap_or(host);
    Workload::new(parts.next().unwrap_or(NS), app)
}

/// A docs request: the probe, and its client when it comes from a sidecar'd workload of
/// the world.
fn docs_probe(request: &Value, servers: &[Workload], tokens: &BTreeMap<String, String>) -> Probe {
    if let Some(target) = request["tcp"].as_str() {
        let port = target.rsplit(':').next().unwrap().parse().unwrap();
        return Probe {
            to: 0,
            host: None,
            port,
            method: String::new(),
            path: String::new(),
            headers: Vec::new(),
            tcp: true,
        };
    }
    let url = request["url"].as_str().unwrap();
    let rest = url.trim_start_matches("http://");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let port = authority
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(80);
    let headers = request["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| {
                    let mut value = v.as_str().unwrap().to_string();
                    for (name, token) in tokens {
                        value = value.replace(&format!("<{name}>"), token);
                    }
                    (k.clone(), value)
                })
                .collect()
        })
        .unwrap_or_default();
    let target = workload_of(authority);
    Probe {
        to: servers.iter().position(|s| *s == target).unwrap_or(0),
        host: None,
        port,
        method: request["method"].as_str().unwrap_or("GET").to_string(),
        path: path.to_string(),
        headers,
        tcp: false,
    }
}

pub fn docs_worlds(tokens: &BTreeMap<String, String>) -> Vec<World> {
    let corpus = corpus_dir().join("istio-docs-tasks");
    let observations = read(corpus.join("expected_observations.jsonl"));
    let mut worlds: Vec<World> = Vec::new();
    for line in observations.lines().filter(|l| !l.trim().is_empty()) {
        let obs: Value = serde_json::from_str(line).unwrap();
        let task = obs["task"].as_str().unwrap();
        let snip = obs["snip"].as_str().unwrap();
        // mtls-migration: httpbin and sleep (sidecars) in foo and bar; sleep.legacy has
        // no sidecar (a plain request straight to the server's port).
        let (servers, clients) = match task {
            "authz-jwt" | "authz-deny" => (vec![Workload::new(NS, "httpbin")], vec![]),
            "authz-tcp" => (vec![Workload::new(NS, "tcp-echo")], vec![]),
            "mtls-migration" => (
                vec![
                    Workload::new("foo", "httpbin"),
                    Workload::new("bar", "httpbin"),
                ],
                vec![Workload::new("foo", "sleep"), Workload::new("bar", "sleep")],
            ),
            "authz-ingress" => {
                worlds.extend(ingress_worlds(&obs));
                continue;
            }
            _ => continue,
        };
        let config = in_force(&observations, task, snip, &format!("{task}.yaml"));
        let jwt = config.contains("jwksUri");
        let config = config.replace(
            "https://raw.githubusercontent.com/istio/istio/release-1.8/security/tools/jwt/samples/jwks.json",
            JWKS_URI,
        );
        let name = format!("{task} {snip}");
        let index = match worlds
            .iter()
            .position(|w| w.config == config && w.servers == servers)
        {
            Some(i) => i,
            None => {
                worlds.push(World {
                    name,
                    servers: servers.clone(),
                    clients: clients.clone(),
                    config,
                    jwks: jwt.then(|| {
                        read(corpus_dir().join("istio/security/tools/jwt/samples/jwks.json"))
                    }),
                    probe_token: jwt.then(|| tokens["demo.jwt"].clone()),
                    gateway: false,
                    egress: false,
                    mesh_config: None,
                    rows: Vec::new(),
                });
                worlds.len() - 1
            }
        };
        let request = &obs["request"];
        let from = request["from"]
            .as_str()
            .and_then(|f| clients.iter().position(|c| *c == workload_of(f)));
        let expect = match &obs["expected"] {
            Value::Number(n) => Expect::Status(n.as_u64().unwrap() as u16),
            Value::String(s) if s.starts_with("000") => Expect::Status(0),
            Value::String(s) => Expect::Tcp(s == "connection succeeded"),
            other => panic!("unknown expectation {other}"),
        };
        let from_name = request["from"].as_str().unwrap_or("");
        let row_name = match task {
            "mtls-migration" => format!("{task} {snip} {from_name} → {}", docs_target(request)),
            _ => format!("{task} {snip}"),
        };
        let world = &mut worlds[index];
        world.rows.push(Row {
            name: row_name,
            from,
            probes: vec![docs_probe(request, &world.servers, tokens)],
            expect,
        });
    }
    worlds
}

/// The URL or TCP target of a docs request, for row names.
fn docs_target(request: &Value) -> &str {
    request["url"]
        .as_str()
        .or(request["tcp"].as_str())
        .unwrap_or("")
}

/// The docs' ingress gateway: every host routed to `httpbin.foo:8000`.
fn docs_gateway() -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: httpbin-gateway, namespace: {NS}}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {GATEWAY_PORT}, name: http, protocol: HTTP}}
    hosts: [\"*\"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: httpbin, namespace: {NS}}}
spec:
  hosts: [\"*\"]
  gateways: [httpbin-gateway]
  http:
  - route:
    - destination: {{host: httpbin, port: {{number: {HTTP}}}}}
"
    )
}

/// The docs' ingress IP rows: the snippets of a step are alternatives (`ipBlocks` or
/// `remoteIpBlocks`, root-namespace or gateway-namespace policy), each its own world; a
/// row agrees only when every alternative does. The client is 127.0.0.1.
fn ingress_worlds(obs: &Value) -> Vec<World> {
    let corpus = corpus_dir().join("istio-docs-tasks");
    let (_, n) = snip_key(obs["snip"].as_str().unwrap());
    let step = match n {
        5 => 1..=4,
        14 => 10..=13,
        19 => 15..=18,
        _ => 0..=0,
    };
    let documents = snip_documents(&read(corpus.join("authz-ingress-ip.yaml")));
    let mut configs: Vec<String> = documents
        .iter()
        .filter(|(snip, _)| step.contains(&snip_key(snip).1))
        .map(|(_, doc)| doc.replace("$CLIENT_IP", "127.0.0.1"))
        .collect();
    if configs.is_empty() {
        configs.push(String::new());
    }
    let configs = configs
        .into_iter()
        .map(|c| format!("{}---\n{c}", docs_gateway()));
    let name = format!("authz-ingress {}", obs["snip"].as_str().unwrap());
    configs
        .enumerate()
        .map(|(i, config)| World {
            name: format!("{name} #{i}"),
            servers: vec![Workload::new(NS, "httpbin")],
            clients: Vec::new(),
            config,
            jwks: None,
            probe_token: None,
            gateway: true,
            egress: false,
            mesh_config: None,
            rows: vec![Row {
                name: name.clone(),
                from: None,
                probes: vec![Probe::get(0, "/headers", &[])],
                expect: Expect::Status(obs["expected"].as_u64().unwrap() as u16),
            }],
        })
        .collect()
}
