//! Istio's egress gateway rows (`TestAuthz_EgressGateway`): a client calls port 80 of a
//! host outside the mesh (`www.company.com`, `a-ns1-only.com`, `jwt-only.com`...) through
//! its sidecar; the template's VirtualServices send it to `istio-egressgateway` — port 80
//! in plain text, or port 443 over Istio mutual TLS (its DestinationRules) — whose
//! AuthorizationPolicy judges hosts, paths, principals and request principals (with the
//! root namespace's RequestAuthentication), and which routes what it allows to the
//! server `b`, adding `x-egress-test: handled-by-egress-gateway`.
//!
//! Istio applies the template once per calling client, in that client's namespace, so
//! each client is a world of its own. What Istio's install provides is added here: the
//! `istio-egressgateway` Service in `istio-system` (ports 80 and 443) and its workload,
//! the gateway proxy — a data plane as a router with its own certificate
//! (`istio-system/istio-egressgateway`). Istio's gateway pods carry no
//! `security.istio.io/tlsMode` label, so only the DestinationRule makes the sidecars
//! speak mTLS to it. The gateway binds ports 80 and 443 of its own loopback address: the
//! template's Gateway servers get `bind` (the only change to the template), since the
//! data planes of both test runs share the host's ports.

use std::collections::BTreeMap;

use serde_json::Value;
use trellis_testkit::corpus::{corpus_dir, in_namespace};
use trellis_testkit::scenario::client::Outcome;

use super::rows::{
    Addresses, Expect, NS, Peers, Probe, ROOT_NAMESPACE, Row, Workload, World, read, render,
};

const TEMPLATE: &str = "istio/tests/integration/security/testdata/authz/egress-gateway.yaml.tmpl";
/// The port the clients call, and the gateway's plain-HTTP server.
pub const EGRESS_PORT: u16 = 80;
/// The header the gateway's routes add, which the server's answer must show.
const HANDLED: &str = "handled-by-egress-gateway";
/// What Envoy's RBAC filter answers a denied request with.
const DENIED: &str = "RBAC: access denied";

/// The egress gateway's workload (service account `istio-egressgateway`).
pub fn gateway() -> Workload {
    Workload::new(ROOT_NAMESPACE, "istio-egressgateway")
}

/// The gateway proxy's labels, as Istio's install gives them.
pub const GATEWAY_LABELS: &str = "app=istio-egressgateway,istio=egressgateway";

/// The world of the case's calling clients, made on first use: `allowed` (`apps.Ns1.A`)
/// and `denied` (`apps.Ns2.A`) each get one.
pub fn world_for<'w>(
    worlds: &'w mut BTreeMap<String, World>,
    case: &Value,
    peers: &Peers<'_>,
    at: &dyn Addresses,
    tokens: &BTreeMap<String, String>,
) -> Vec<&'w mut World> {
    let test = case["test"].as_str().unwrap_or_default();
    for (from, _) in [peers.allowed, peers.denied] {
        let key = format!("{test} (from {}/{})", from.namespace, from.app);
        worlds.entry(key.clone()).or_insert_with(|| World {
            name: key,
            servers: vec![Workload::new(NS, "b")],
            clients: vec![peers.allowed.0.clone(), peers.denied.0.clone()],
            config: config(from, peers, at),
            jwks: Some(read(corpus_dir().join("istio/tests/common/jwt/jwks.json"))),
            probe_token: Some(tokens["TokenIssuer1"].clone()),
            gateway: false,
            egress: true,
            mesh_config: None,
            rows: Vec::new(),
        });
    }
    worlds
        .iter_mut()
        .filter(|(k, _)| k.starts_with(&format!("{test} (from ")))
        .map(|(_, w)| w)
        .collect()
}

/// The template rendered for a client in `from`'s namespace, and the gateway's Service
/// and workload.
fn config(from: &Workload, peers: &Peers<'_>, at: &dyn Addresses) -> String {
    let gateway_ip = at.egress_gateway_ip();
    let text = read(corpus_dir().join(TEMPLATE))
        .replace(
            "{{ .EgressGatewayIstioLabel | default \"egressgateway\" }}",
            "egressgateway",
        )
        .replace(
            "{{ .EgressGatewayServiceName | default \"istio-egressgateway\" }}",
            "istio-egressgateway",
        )
        .replace(
            "{{ .EgressGatewayServiceNamespace | default .SystemNamespace.Name }}",
            ROOT_NAMESPACE,
        )
        .replace("{{ .From.NamespaceName }}", &from.namespace)
        .replace("{{ .Allowed.ServiceName }}", &peers.allowed.0.app)
        .replace(
            "\n      hosts:\n",
            &format!("\n      bind: {gateway_ip}\n      hosts:\n"),
        );
    let gateway = gateway();
    let installed = format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {app}, namespace: {ns}}}
spec:
  selector: {{istio: egressgateway}}
  ports:
  - {{name: http, port: {EGRESS_PORT}}}
  - {{name: https, port: 443}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {app}, namespace: {ns}}}
spec:
  address: {gateway_ip}
  serviceAccount: {app}
  labels: {{app: {app}, istio: egressgateway, security.istio.io/tlsMode: disabled}}
",
        app = gateway.app,
        ns = gateway.namespace,
    );
    let rendered = render(&text, at.server_ip(0), Some(peers));
    format!("{}---\n{installed}", in_namespace(&rendered, NS))
}

/// The case's rows in each world, from that world's calling client: a GET of the case's
/// path on port 80 with its `Host` and token.
pub fn add_rows(worlds: Vec<&mut World>, case: &Value, tokens: &BTreeMap<String, String>) {
    let request = &case["request"];
    let path = request["path"].as_str().unwrap_or("/");
    let mut headers = Vec::new();
    if let Some(name) = request["token"]["go_expr"]
        .as_str()
        .and_then(|e| e.strip_prefix("jwt."))
    {
        headers.push((
            "authorization".to_string(),
            format!("Bearer {}", tokens[name]),
        ));
    }
    let line = case["source"]["line"].as_u64().unwrap_or(0);
    let test = case["test"].as_str().unwrap_or_default();
    for world in worlds {
        let Some(from) = world.clients.iter().position(|c| {
            world
                .name
                .ends_with(&format!("(from {}/{})", c.namespace, c.app))
        }) else {
            continue;
        };
        // The world's first client is `allowed`: `allow := from == allowed`.
        let host = match &request["host"] {
            Value::String(h) => h.clone(),
            other => go_host(
                other["go_expr"].as_str().unwrap_or_default(),
                &world.clients[0],
            ),
        };
        let allow = case["allow"].as_bool().unwrap_or(from == 0);
        world.rows.push(Row {
            name: format!("{test}:{line} GET {host}{path}"),
            from: Some(from),
            probes: vec![Probe {
                to: 0,
                host: Some(host.clone()),
                port: EGRESS_PORT,
                method: "GET".into(),
                path: path.into(),
                headers: headers.clone(),
                tcp: false,
            }],
            expect: Expect::Allow(allow),
        });
    }
}

/// `fmt.Sprintf("jwt-and-%s-%s-only.com", allowed.Config().Service, allowed.Config()
/// .Namespace.Name())` → `jwt-and-a-ns1-only.com`.
fn go_host(expr: &str, allowed: &Workload) -> String {
    let format = expr.split('"').nth(1).unwrap_or_default();
    format
        .replacen("%s", &allowed.app, 1)
        .replacen("%s", &allowed.namespace, 1)
}

/// What Istio's check sees in an answer: allowed is 200 from the server with the
/// gateway's header in what it received; denied is 403 with RBAC's body. Anything else
/// is shown as its status (and agrees with neither).
pub fn judge(outcome: &Outcome) -> (Expect, String) {
    let seen = outcome.status.map_or("no answer".into(), |s| s.to_string());
    match outcome.status {
        Some(200) if outcome.body.contains(HANDLED) => (Expect::Allow(true), seen),
        Some(403) if outcome.body.contains(DENIED) => (Expect::Allow(false), seen),
        status => (
            Expect::Status(status.unwrap_or(0)),
            format!("{seen} {:?}", outcome.body),
        ),
    }
}

/// The rows the world must be able to allow before it is judged: each is polled until
/// its answer is no longer a missing route, endpoint or key (404, 503, 401).
pub fn warm_up(world: &World) -> Vec<&Row> {
    world
        .rows
        .iter()
        .filter(|r| r.expect == Expect::Allow(true))
        .collect()
}
