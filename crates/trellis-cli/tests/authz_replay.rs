//! Istio's authorization behaviour replayed through a real Envoy: the rows of Istio's own
//! authz integration tests (`shared/corpus/authz/integration_authz_request_cases.jsonl`,
//! with their policy templates) and of the security docs tasks
//! (`shared/corpus/istio-docs-tasks/expected_observations.jsonl`).
//!
//! Each policy state is a world of its own: a `trellis control-plane` with the state's
//! policies, and the server workload's sidecar — Envoy, from `trellis bootstrap envoy` —
//! with Sidecar ingress listeners (`captureMode: NONE`) bound to a leased loopback address,
//! in front of a tiny HTTP application. Requests go straight to those listeners, so what
//! answers is the inbound chain with its RBAC and jwt_authn filters. JWKS are served by a
//! loopback HTTP server and fetched by the control plane (the docs' GitHub URI is replaced
//! by a loopback copy of the same file).
//!
//! The docs' ingress rows run through an ingress gateway instead: a router Envoy with a
//! Gateway and VirtualService in front of the same application, each alternative snippet
//! of a step in its own world (a row agrees when all of them do).
//!
//! Rows that need a peer identity (mutual TLS), Istio's echo gateways or an external
//! authorizer cannot be replayed yet and are counted apart. Prints `authz rows: N/M agree, ...`; the count
//! is held by `tests/ratchets/authz.txt` (`TRELLIS_RATCHET_UPDATE=1` rewrites it).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use trellis_testkit::corpus::{corpus_dir, in_namespace};
use trellis_testkit::mesh::{MeshDir, control_plane};
use trellis_testkit::scenario::client::send;
use trellis_testkit::scenario::{DataPlane, Envoy, Lease, NodeSpec, Request, RunningDataPlane};
use trellis_testkit::{Backend, Process, free_port, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const START: Duration = Duration::from_secs(30);
/// The namespace of the server workload and of every policy.
const NS: &str = "foo";
const HTTP: u16 = 8000;
const HTTP2: u16 = 8001;
const GRPC: u16 = 8002;
const TCP_PORTS: [u16; 3] = [9000, 9001, 9002];

/// What a row expects.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Istio's integration tests: allowed (the app answers) or denied (401/403).
    Allow(bool),
    Status(u16),
    /// `connection succeeded` / `connection rejected`.
    Tcp(bool),
}

/// One request of a row (a row may try several ports).
#[derive(Debug, Clone)]
struct Probe {
    port: u16,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    tcp: bool,
}

#[derive(Debug, Clone)]
struct Row {
    name: String,
    probes: Vec<Probe>,
    expect: Expect,
}

/// A policy state and the rows judged under it.
#[derive(Debug, Clone)]
struct World {
    name: String,
    /// The workload's `app` label.
    app: String,
    config: String,
    /// The JWKS the loopback key server serves (`JWKS_URI` in `config` points at it).
    jwks: Option<String>,
    /// A token valid for the state's keys: once it is not refused with 401, the fetched
    /// keys are in force.
    probe_token: Option<String>,
    /// Requests go through an ingress gateway (a router Envoy) instead of the sidecar.
    gateway: bool,
    rows: Vec<Row>,
}

/// Where a row cannot be replayed yet, and why.
#[derive(Debug, Default)]
struct Pending {
    mtls: usize,
    gateway: usize,
    custom: usize,
}

const JWKS_URI: &str = "JWKS_URI";

fn tokens() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(corpus_dir().join("jwt/tokens.jsonl")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["name"].as_str().unwrap().to_string(),
                v["token"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Istio's integration rows.

/// Fills in the template variables this harness can give a value; documents left with
/// any other variable (peer identities, gateways) are dropped.
fn render(template: &str, ip: IpAddr) -> String {
    let port = |name: &str| match name {
        "http" => HTTP,
        "http2" => HTTP2,
        "grpc" => GRPC,
        _ => TCP_PORTS[0],
    };
    let mut text = template.to_string();
    for name in ["http", "http2", "grpc", "tcp"] {
        for form in [
            format!("{{{{ (.To.PortForName `{name}`).WorkloadPort }}}}"),
            format!("{{{{ ( .To.PortForName `{name}` ).WorkloadPort }}}}"),
            format!("{{{{ (.To.PortForName \"{name}\").WorkloadPort }}}}"),
        ] {
            text = text.replace(&form, &port(name).to_string());
        }
    }
    text = text
        .replace("{{ .To.ServiceName }}", "b")
        .replace("{{ .To.NamespaceName }}", NS)
        .replace(
            "{{ .To.MustWorkloads.Addresses | toJson }}",
            &format!("[\"{ip}\"]"),
        )
        .replace("{{ .JWTServer.JwksURI }}", JWKS_URI);
    text.split("\n---")
        .filter(|doc| !doc.contains("{{") && doc.contains("kind:"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// The ports of `[]echo.Port{ports.HTTP, ports.HTTP2}`.
fn echo_ports(expr: &str) -> Vec<(u16, bool)> {
    let mut out = Vec::new();
    for p in expr.split(['{', '}', ',']).map(str::trim) {
        match p {
            "ports.HTTP" => out.push((HTTP, false)),
            "ports.HTTP2" => out.push((HTTP2, false)),
            "ports.GRPC" => out.push((GRPC, false)),
            "ports.TCP" => out.push((TCP_PORTS[0], true)),
            _ => {}
        }
    }
    out
}

/// `headers.New().With("x-foo", "foo").Build()` → `[(x-foo, foo)]`.
fn go_headers(expr: &str) -> Vec<(String, String)> {
    expr.split(".With(")
        .skip(1)
        .filter_map(|part| {
            let quoted: Vec<&str> = part.split('"').collect();
            Some((quoted.get(1)?.to_string(), quoted.get(3)?.to_string()))
        })
        .collect()
}

fn integration_worlds(
    ip: IpAddr,
    tokens: &BTreeMap<String, String>,
    pending: &mut Pending,
) -> Vec<World> {
    let corpus = corpus_dir();
    let text = read(corpus.join("authz/integration_authz_request_cases.jsonl"));
    let mut worlds: BTreeMap<String, World> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let test = case["test"].as_str().unwrap().to_string();
        let request = &case["request"];
        let path = request["path"].as_str().unwrap_or("/").to_string();
        let needs_identity = [
            "TestAuthz_Principal",
            "TestAuthz_ServiceAccount",
            "TestAuthz_TrustDomain",
            "TestAuthz_DenyPrincipal",
            "TestAuthz_Namespace",
            "TestAuthz_DenyNamespace",
        ]
        .contains(&test.as_str())
            || !case["allow"].is_boolean()
            || path.starts_with("/source-")
            || path.starts_with("/connection-sni");
        if needs_identity {
            pending.mtls += 1;
            continue;
        }
        if [
            "TestAuthz_NotHost",
            "TestAuthz_IngressGateway",
            "TestAuthz_EgressGateway",
        ]
        .contains(&test.as_str())
        {
            pending.gateway += 1;
            continue;
        }
        if test == "TestAuthz_CustomServer" {
            pending.custom += 1;
            continue;
        }
        let world = worlds.entry(test.clone()).or_insert_with(|| {
            let config: Vec<String> = case["policy_templates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .filter(|t| !t.ends_with("mtls.yaml.tmpl"))
                .map(|t| render(&read(corpus.join("istio").join(t)), ip))
                .collect();
            let jwt = test == "TestAuthz_JWT";
            World {
                name: test.clone(),
                app: "b".into(),
                config: in_namespace(&config.join("\n---\n"), NS),
                jwks: jwt.then(|| read(corpus.join("istio/tests/common/jwt/jwks.json"))),
                probe_token: jwt.then(|| tokens["TokenIssuer1"].clone()),
                gateway: false,
                rows: Vec::new(),
            }
        });
        let ports = request["ports"]["go_expr"]
            .as_str()
            .map(echo_ports)
            .unwrap_or_else(|| vec![(HTTP, false)]);
        let mut headers = request["headers"]["go_expr"]
            .as_str()
            .map(go_headers)
            .unwrap_or_default();
        if let Some(name) = request["jwt"]["go_expr"]
            .as_str()
            .and_then(|e| e.strip_prefix("jwt."))
        {
            headers.push(("authorization".into(), format!("Bearer {}", tokens[name])));
        }
        let method = request["method"].as_str().unwrap_or("GET").to_string();
        let line_no = case["source"]["line"].as_u64().unwrap_or(0);
        world.rows.push(Row {
            name: format!("{test}:{line_no} {method} {path}"),
            probes: ports
                .into_iter()
                .map(|(port, tcp)| Probe {
                    port,
                    method: method.clone(),
                    path: path.clone(),
                    headers: headers.clone(),
                    tcp,
                })
                .collect(),
            expect: Expect::Allow(case["allow"].as_bool().unwrap()),
        });
    }
    worlds.into_values().collect()
}

// ---------------------------------------------------------------------------------------
// The docs tasks' observations.

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

fn docs_worlds(tokens: &BTreeMap<String, String>) -> Vec<World> {
    let corpus = corpus_dir().join("istio-docs-tasks");
    let observations = read(corpus.join("expected_observations.jsonl"));
    let mut worlds: Vec<World> = Vec::new();
    for line in observations.lines().filter(|l| !l.trim().is_empty()) {
        let obs: Value = serde_json::from_str(line).unwrap();
        let task = obs["task"].as_str().unwrap();
        let file = match task {
            "authz-jwt" | "authz-deny" | "authz-tcp" => format!("{task}.yaml"),
            "authz-ingress" => {
                worlds.extend(ingress_worlds(&obs));
                continue;
            }
            _ => continue,
        };
        let (section, n) = snip_key(obs["snip"].as_str().unwrap());
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
        let mut in_force: Vec<((String, String), String)> = Vec::new();
        for (snip, doc) in snip_documents(&read(corpus.join(&file))) {
            let (s, m) = snip_key(&snip);
            if (order(&s), m) < (order(&section), n) {
                let id = identity(&doc);
                in_force.retain(|(other, _)| *other != id);
                in_force.push((id, doc));
            }
        }
        let config = in_force
            .iter()
            .map(|(_, d)| d.as_str())
            .collect::<Vec<_>>()
            .join("\n---\n");
        let jwt = config.contains("jwksUri");
        let config = config.replace(
            "https://raw.githubusercontent.com/istio/istio/release-1.8/security/tools/jwt/samples/jwks.json",
            JWKS_URI,
        );
        let app = if task == "authz-tcp" {
            "tcp-echo"
        } else {
            "httpbin"
        };
        let name = format!("{task} {}", in_force.len());
        let world = match worlds
            .iter_mut()
            .find(|w| w.config == config && w.app == app)
        {
            Some(w) => w,
            None => {
                worlds.push(World {
                    name,
                    app: app.to_string(),
                    config,
                    jwks: jwt.then(|| {
                        read(corpus_dir().join("istio/security/tools/jwt/samples/jwks.json"))
                    }),
                    probe_token: jwt.then(|| tokens["demo.jwt"].clone()),
                    gateway: false,
                    rows: Vec::new(),
                });
                worlds.last_mut().unwrap()
            }
        };
        let request = &obs["request"];
        let probe = if let Some(target) = request["tcp"].as_str() {
            let port = target.rsplit(':').next().unwrap().parse().unwrap();
            Probe {
                port,
                method: String::new(),
                path: String::new(),
                headers: Vec::new(),
                tcp: true,
            }
        } else {
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
            Probe {
                port,
                method: request["method"].as_str().unwrap_or("GET").to_string(),
                path: path.to_string(),
                headers,
                tcp: false,
            }
        };
        let expect = match &obs["expected"] {
            Value::Number(n) => Expect::Status(n.as_u64().unwrap() as u16),
            Value::String(s) => Expect::Tcp(s == "connection succeeded"),
            other => panic!("unknown expectation {other}"),
        };
        world.rows.push(Row {
            name: format!("{task} {}", obs["snip"].as_str().unwrap()),
            probes: vec![probe],
            expect,
        });
    }
    worlds
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
    let name = format!("authz-ingress {}", obs["snip"].as_str().unwrap());
    configs
        .into_iter()
        .enumerate()
        .map(|(i, config)| World {
            name: format!("{name} #{i}"),
            app: "httpbin".into(),
            config,
            jwks: None,
            probe_token: None,
            gateway: true,
            rows: vec![Row {
                name: name.clone(),
                probes: vec![Probe {
                    port: 0,
                    method: "GET".into(),
                    path: "/headers".into(),
                    headers: Vec::new(),
                    tcp: false,
                }],
                expect: Expect::Status(obs["expected"].as_u64().unwrap() as u16),
            }],
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Running a world.

/// The server workload's registration and its Sidecar: ingress listeners bound to `ip`
/// for every port, all delivered to the application at `app`.
fn workload_yaml(app_label: &str, ip: IpAddr, app: SocketAddr) -> String {
    let mut ingress = String::new();
    let http = [(HTTP, "http"), (HTTP2, "http2"), (GRPC, "grpc")];
    let tcp = TCP_PORTS.iter().map(|p| (*p, "tcp"));
    for (port, protocol) in http.into_iter().chain(tcp) {
        let (proto, name) = match protocol {
            "tcp" => ("TCP".to_string(), format!("tcp-{port}")),
            other => ("HTTP".to_string(), format!("{other}-{port}")),
        };
        ingress.push_str(&format!(
            "  - port: {{number: {port}, protocol: {proto}, name: {name}}}\n    bind: {ip}\n    captureMode: NONE\n    defaultEndpoint: {app}\n"
        ));
    }
    format!(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {app_label}, namespace: {NS}}}
spec:
  workloadSelector: {{labels: {{app: {app_label}}}}}
  ingress:
{ingress}"
    )
}

/// An ingress gateway on `port` routing everything to `httpbin.foo:8000`, served by the
/// application at `app`.
fn gateway_yaml(port: u16, app: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: httpbin, namespace: {NS}}}
spec:
  selector: {{app: httpbin}}
  ports:
  - {{name: http, port: {HTTP}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: httpbin-v1, namespace: {NS}}}
spec:
  address: {ip}
  ports: {{http: {app_port}}}
  labels: {{app: httpbin, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: httpbin-gateway, namespace: {NS}}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
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
",
        ip = app.ip(),
        app_port = app.port(),
    )
}

/// Starts the ingress gateway: a router Envoy in namespace `foo` with the labels every
/// variant of the docs' policies selects.
fn start_gateway(dir: &MeshDir, xds: SocketAddr, ip: IpAddr) -> Process {
    let envoy = trellis_testkit::envoy().expect("envoy");
    let admin = free_port(Ipv4Addr::LOCALHOST.into());
    trellis_testkit::mesh::start_envoy_sidecar(
        Path::new(TRELLIS),
        &envoy,
        dir.path(),
        xds,
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), admin),
        &[
            "--type",
            "router",
            "--name",
            "istio-ingressgateway",
            "--namespace",
            NS,
            "--ip",
            &ip.to_string(),
            "--labels",
            "app=istio-ingressgateway,istio=ingressgateway,istio.io/gateway-name=httpbin-gateway",
        ],
    )
}

struct Running {
    _control_plane: Process,
    data_plane: Option<Box<dyn RunningDataPlane>>,
    _gateway: Option<Process>,
    /// Where the gateway listens (gateway worlds).
    gateway_port: u16,
    _app: Backend,
    _jwks: Option<Backend>,
    _dir: MeshDir,
}

fn start(world: &World, lease: &Lease, data_plane: &dyn DataPlane) -> Running {
    let ip = lease.ip(10);
    // Istio requires a Sidecar ingress defaultEndpoint on 127.0.0.1.
    let app = Backend::start(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0), "app");
    let dir = MeshDir::new();
    let jwks = world
        .jwks
        .as_ref()
        .map(|keys| Backend::start(SocketAddr::new(lease.ip(30), 0), keys));
    let mut config = world.config.clone();
    if let Some(server) = &jwks {
        config = config.replace(JWKS_URI, &format!("http://{}/jwks", server.address));
    }
    let gateway_port = free_port(Ipv4Addr::UNSPECIFIED.into());
    if world.gateway {
        dir.write("00-gateway.yaml", &gateway_yaml(gateway_port, app.address));
    } else {
        dir.write(
            "00-workload.yaml",
            &workload_yaml(&world.app, ip, app.address),
        );
    }
    dir.write("10-policies.yaml", &config);
    let (control_plane, xds, _) =
        control_plane(Path::new(TRELLIS), dir.path(), lease.client(), START);
    if world.gateway {
        let mut gateway = start_gateway(&dir, xds, ip);
        let target = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), gateway_port);
        wait_until("gateway routes", START, || {
            if !gateway.running() {
                panic!("gateway exited\n{}", gateway.tail(20));
            }
            // Any HTTP answer but 404 (no route yet) means the route is in force.
            match trellis_testkit::get(target, "/headers", &[], Duration::from_secs(2)) {
                Ok(r) if r.status != 404 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
        return Running {
            _control_plane: control_plane,
            data_plane: None,
            _gateway: Some(gateway),
            gateway_port,
            _app: app,
            _jwks: jwks,
            _dir: dir,
        };
    }
    let node = NodeSpec {
        trellis: PathBuf::from(TRELLIS),
        xds,
        ip,
        name: format!("{}-v1", world.app),
        namespace: NS.into(),
        service_account: world.app.clone(),
        labels: vec![
            ("app".into(), world.app.clone()),
            ("version".into(), "v1".into()),
        ],
        admin: SocketAddr::new(
            Ipv4Addr::LOCALHOST.into(),
            free_port(Ipv4Addr::LOCALHOST.into()),
        ),
        dir: dir.path().to_path_buf(),
    };
    let mut running = data_plane.start(&node).expect("data plane starts");
    wait_until(&format!("{} ready", world.name), START, || running.ready());
    if let Some(token) = &world.probe_token {
        let probe = Probe {
            port: HTTP,
            method: "GET".into(),
            path: "/".into(),
            headers: vec![("authorization".into(), format!("Bearer {token}"))],
            tcp: false,
        };
        wait_until("fetched JWKS in force", START, || match http(ip, &probe) {
            Some(401) | None => Err(format!(
                "a valid token is still refused\n{}",
                control_plane.tail(20)
            )),
            Some(_) => Ok(()),
        });
    }
    Running {
        _control_plane: control_plane,
        data_plane: Some(running),
        _gateway: None,
        gateway_port,
        _app: app,
        _jwks: jwks,
        _dir: dir,
    }
}

fn http(ip: IpAddr, probe: &Probe) -> Option<u16> {
    let request = Request {
        host: format!("b.{NS}:{}", probe.port),
        port: probe.port,
        method: String::leak(probe.method.clone()),
        path: probe.path.clone(),
        headers: probe.headers.clone(),
        timeout: Duration::from_secs(10),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(send(SocketAddr::new(ip, probe.port), &request))
        .status
}

/// True when a plain HTTP exchange over the TCP port got an answer from the app.
fn tcp_succeeds(ip: IpAddr, port: u16) -> bool {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(5))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET / HTTP/1.0\r\nhost: app\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1")
}

/// What a probe got, in the row's terms.
fn observe(ip: IpAddr, probe: &Probe, expect: &Expect) -> Expect {
    if probe.tcp {
        return Expect::Tcp(tcp_succeeds(ip, probe.port));
    }
    let status = http(ip, probe);
    match expect {
        Expect::Allow(_) => Expect::Allow(status == Some(200)),
        _ => Expect::Status(status.unwrap_or(0)),
    }
}

fn ratchet_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ratchets/authz.txt")
}

#[test]
fn istio_authz_rows_through_envoy() {
    let Some(binary) = trellis_testkit::envoy() else {
        eprintln!("SKIPPED: envoy is not on PATH");
        return;
    };
    let data_plane = Envoy { binary };
    let lease = Lease::take();
    let tokens = tokens();
    let mut pending = Pending::default();
    let mut worlds = integration_worlds(lease.ip(10), &tokens, &mut pending);
    worlds.extend(docs_worlds(&tokens));

    // Row name → every world that judged it agreed.
    let mut verdicts: BTreeMap<String, bool> = BTreeMap::new();
    let mut disagreements = Vec::new();
    for world in &worlds {
        let running = start(world, &lease, &data_plane);
        for row in &world.rows {
            let seen: Vec<Expect> = row
                .probes
                .iter()
                .map(|p| match world.gateway {
                    true => {
                        let mut p = p.clone();
                        p.port = running.gateway_port;
                        observe(Ipv4Addr::LOCALHOST.into(), &p, &row.expect)
                    }
                    false => observe(lease.ip(10), p, &row.expect),
                })
                .collect();
            let ok = seen.iter().all(|s| *s == row.expect);
            *verdicts.entry(row.name.clone()).or_insert(true) &= ok;
            if !ok {
                disagreements.push(format!(
                    "{} [{}]: expected {:?}, got {seen:?}",
                    row.name, world.name, row.expect
                ));
            }
        }
        if let (false, Some(dp)) = (disagreements.is_empty(), &running.data_plane) {
            eprintln!("{}", dp.logs());
        }
    }
    let total = verdicts.len();
    let agree = verdicts.values().filter(|ok| **ok).count();
    println!(
        "authz rows: {agree}/{total} agree, {} need mTLS (pending), {} need a gateway (pending), {} need an external authorizer (CUSTOM, unsupported)",
        pending.mtls, pending.gateway, pending.custom
    );
    for d in &disagreements {
        println!("  DISAGREES {d}");
    }
    let recorded: usize = std::fs::read_to_string(ratchet_path())
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("agree ").and_then(|n| n.trim().parse().ok()))
        })
        .unwrap_or(0);
    if std::env::var("TRELLIS_RATCHET_UPDATE").is_ok() {
        std::fs::write(
            ratchet_path(),
            format!(
                "# Rows of Istio's authz integration tests and docs tasks that agree through\n\
                 # Envoy (tests/authz_envoy.rs). Rewrite with TRELLIS_RATCHET_UPDATE=1.\n\
                 agree {agree}\n"
            ),
        )
        .unwrap();
    }
    assert!(
        agree >= recorded,
        "agreement fell from {recorded} to {agree}:\n{}",
        disagreements.join("\n")
    );
    assert!(total >= 80, "too few rows ran: {total}");
}
