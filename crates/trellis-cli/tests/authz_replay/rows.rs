//! The corpus as worlds: Istio's authz integration rows with their policy templates (the
//! docs tasks' are in `docs.rs`, the egress gateway's rows in `egress.rs`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::Value;
use trellis_testkit::corpus::{corpus_dir, in_namespace};

use super::egress;

/// The namespace of the integration tests' server `b` and of their policies.
pub const NS: &str = "foo";
pub const HTTP: u16 = 8000;
pub const HTTP2: u16 = 8001;
pub const GRPC: u16 = 8002;
pub const TCP_PORTS: [u16; 3] = [9000, 9001, 9002];
/// Stands for the loopback JWKS server's URL in a world's config.
pub const JWKS_URI: &str = "JWKS_URI";
/// Stands for the port the ingress gateway listens on in a world's config.
pub const GATEWAY_PORT: &str = "GATEWAY_PORT";
/// Istio's root namespace, where mesh-wide policies live.
pub const ROOT_NAMESPACE: &str = "istio-system";
/// Istio's security tests trust one proxy in front of the ingress gateway, so `remote.ip`
/// and `remoteIpBlocks` come from `X-Forwarded-For`.
const TRUSTED_PROXY_MESH: &str = "defaultConfig:\n  gatewayTopology:\n    numTrustedProxies: 1\n";
/// What Istio's echo client calls on a gRPC port when a row names no path.
const GRPC_ECHO: &str = "/proto.EchoTestService/Echo";

/// What a row expects.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Istio's integration tests: allowed (the app answers) or denied (401/403).
    Allow(bool),
    /// An HTTP status; 0 is curl's `000`: no answer (connection reset).
    Status(u16),
    /// `connection succeeded` / `connection rejected`.
    Tcp(bool),
}

/// One request of a row (a row may try several ports) to the world's server `to`.
#[derive(Debug, Clone)]
pub struct Probe {
    pub to: usize,
    /// The `Host` header when not the server's `app.namespace:port`.
    pub host: Option<String>,
    pub port: u16,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub tcp: bool,
}

impl Probe {
    /// A GET of `path` on `port` of the world's first server.
    pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Probe {
        Probe {
            to: 0,
            host: None,
            port,
            method: "GET".into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tcp: false,
        }
    }
}

/// A row judged once: sent from the world's client `from` (through its sidecar), or
/// straight to the server's sidecar when `None`. A corpus row run from several clients
/// appears once per client under the same name, and agrees when all of them do.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub from: Option<usize>,
    pub probes: Vec<Probe>,
    pub expect: Expect,
}

/// A sidecar'd workload: `app` in `namespace`, with service account `app` (as Istio's
/// echo deployments have).
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub namespace: String,
    pub app: String,
}

impl Workload {
    pub fn new(namespace: &str, app: &str) -> Workload {
        Workload {
            namespace: namespace.into(),
            app: app.into(),
        }
    }

    /// Istio's `SpiffeIdentity()` of an echo app, as policies write principals.
    fn principal(&self) -> String {
        format!("cluster.local/ns/{}/sa/{}", self.namespace, self.app)
    }

    /// `app.namespace.svc.cluster.local`.
    pub fn fqdn(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.app, self.namespace)
    }
}

/// A policy state and the rows judged under it.
#[derive(Debug, Clone)]
pub struct World {
    pub name: String,
    /// The workloads requests go to (each with its sidecar and a Service when the world
    /// has clients).
    pub servers: Vec<Workload>,
    /// Client workloads with sidecars and identities of their own; when there are any,
    /// every sidecar of the world gets a certificate from the control plane's CA.
    pub clients: Vec<Workload>,
    pub config: String,
    /// The JWKS the loopback key server serves (`JWKS_URI` in `config` points at it).
    pub jwks: Option<String>,
    /// A token valid for the state's keys: once it is not refused with 401, the fetched
    /// keys are in force.
    pub probe_token: Option<String>,
    /// Requests go through an ingress gateway (in front of the servers' sidecars).
    pub gateway: bool,
    /// The world has Istio's egress gateway (`egress.rs`): clients call port 80 of hosts
    /// outside the mesh, routed through it to the servers.
    pub egress: bool,
    /// The MeshConfig, if not Istio's defaults.
    pub mesh_config: Option<&'static str>,
    pub rows: Vec<Row>,
}

/// Corpus rows that cannot be replayed here, by reason.
#[derive(Debug, Default)]
pub struct Pending {
    /// CUSTOM action with an external authorizer (rejected, unsupported).
    pub custom: usize,
    /// `source.ip` of two clients: loopback sidecars all connect from 127.0.0.1, so these
    /// rows run in pods with their own addresses (`authz_source_ip.rs`).
    pub source_ip: usize,
}

/// Where the world's workloads listen: servers at `.10+i`, clients at `.20+j` of the
/// lease's /24.
pub trait Addresses {
    fn server_ip(&self, i: usize) -> IpAddr;
    fn client_ip(&self, j: usize) -> IpAddr;
    /// Where the egress gateway's listeners bind (`.41`).
    fn egress_gateway_ip(&self) -> IpAddr;
}

/// The JWT sample tokens of the corpus, by name.
pub fn tokens() -> BTreeMap<String, String> {
    let text = read(corpus_dir().join("jwt/tokens.jsonl"));
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

pub fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Istio's integration rows.

/// The allowed and the denied client of a world with peer identities, and their addresses.
pub struct Peers<'a> {
    pub allowed: (&'a Workload, IpAddr),
    pub denied: (&'a Workload, IpAddr),
}

/// Fills in the template variables this harness can give a value; documents left with
/// any other variable (gateways; peers in worlds without clients) are dropped.
pub fn render(template: &str, server: IpAddr, peers: Option<&Peers<'_>>) -> String {
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
    let to = Workload::new(NS, "b");
    text = text
        .replace("{{ .To.ServiceName }}", &to.app)
        .replace("{{ .To.NamespaceName }}", NS)
        .replace("{{ .To.ClusterLocalFQDN }}", &to.fqdn())
        .replace(
            "{{ .To.MustWorkloads.Addresses | toJson }}",
            &format!("[\"{server}\"]"),
        )
        .replace("{{ .JWTServer.JwksURI }}", JWKS_URI)
        .replace("{{ .SystemNamespace.Name }}", ROOT_NAMESPACE)
        .replace(
            "{{.GatewayIstioLabel | default \"istio-ingressgateway\"}}",
            "istio-ingressgateway",
        )
        .replace(
            "{{.GatewayIstioLabel | default \"ingressgateway\"}}",
            "ingressgateway",
        )
        .replace(
            "{{ (.To.PortForName \"http\").ServicePort }}",
            &HTTP.to_string(),
        );
    if let Some(peers) = peers {
        for (role, (workload, ip)) in [("Allowed", peers.allowed), ("Denied", peers.denied)] {
            text = text
                .replace(
                    &format!("{{{{ .{role}.SpiffeIdentity }}}}"),
                    &workload.principal(),
                )
                .replace(
                    &format!("{{{{ .{role}.NamespacedName }}}}"),
                    &format!("{}/{}", workload.namespace, workload.app),
                )
                .replace(
                    &format!("{{{{ .{role}.NamespaceName }}}}"),
                    &workload.namespace,
                )
                .replace(
                    &format!("{{{{ .{role}.MustWorkloads.Addresses | toJson }}}}"),
                    &format!("[\"{ip}\"]"),
                );
        }
    }
    text.split("\n---")
        .filter(|doc| !doc.contains("{{") && doc.contains("kind:"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// A template rendered and placed in its namespace: `deny-global` is a mesh-wide policy
/// in the root namespace whose ports are Istio's echo workload ports for http and http2
/// (18080, 18085), which are this harness's `HTTP` and `HTTP2`.
fn policy(template: &str, server: IpAddr, peers: Option<&Peers<'_>>) -> String {
    let text = read(corpus_dir().join("istio").join(template));
    if template.ends_with("deny-global.yaml.tmpl") {
        let text = text
            .replace("\"18080\"", &format!("\"{HTTP}\""))
            .replace("\"18085\"", &format!("\"{HTTP2}\""));
        return in_namespace(&render(&text, server, peers), ROOT_NAMESPACE);
    }
    in_namespace(&render(&text, server, peers), NS)
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

/// `host("deny.%s.com")` or `fmt.Sprintf("allow.%s.com", to.Config().Service)` →
/// `deny.b.com`: the first quoted format, with the service `b`.
fn go_host(expr: &str) -> Option<String> {
    let format = expr.split('"').nth(1)?;
    Some(format.replace("%s", "b"))
}

/// Whether a case needs a peer identity: the tests of sources, and the `when` keys on the
/// source's identity or the connection's SNI.
fn needs_identity(test: &str, path: &str) -> bool {
    [
        "TestAuthz_Principal",
        "TestAuthz_ServiceAccount",
        "TestAuthz_TrustDomain",
        "TestAuthz_DenyPrincipal",
        "TestAuthz_Namespace",
        "TestAuthz_DenyNamespace",
    ]
    .contains(&test)
        || path.starts_with("/source-")
        || path.starts_with("/connection-sni")
}

/// The clients of the worlds with peer identities: Istio's `apps.Ns1.A` (allowed) and
/// `apps.Ns2.A` (denied).
pub fn integration_clients() -> Vec<Workload> {
    vec![Workload::new("ns1", "a"), Workload::new("ns2", "a")]
}

/// The requests of an integration case, one per port: Istio's echo call (`POST` of the
/// Echo method) on the gRPC port when the case names no path.
fn integration_probes(
    request: &Value,
    path: Option<&str>,
    tokens: &BTreeMap<String, String>,
) -> Vec<Probe> {
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
    let method = request["method"].as_str().unwrap_or("GET");
    ports
        .into_iter()
        .map(|(port, tcp)| {
            let grpc_call = port == GRPC && path.is_none();
            Probe {
                to: 0,
                host: None,
                port,
                method: if grpc_call { "POST" } else { method }.into(),
                path: match grpc_call {
                    true => GRPC_ECHO.into(),
                    false => path.unwrap_or("/").into(),
                },
                headers: headers.clone(),
                tcp,
            }
        })
        .collect()
}

pub fn integration_worlds(
    at: &dyn Addresses,
    tokens: &BTreeMap<String, String>,
    pending: &mut Pending,
) -> Vec<World> {
    let text = read(corpus_dir().join("authz/integration_authz_request_cases.jsonl"));
    let clients = integration_clients();
    let peers = Peers {
        allowed: (&clients[0], at.client_ip(0)),
        denied: (&clients[1], at.client_ip(1)),
    };
    let mut worlds: BTreeMap<String, World> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let test = case["test"].as_str().unwrap().to_string();
        let request = &case["request"];
        if test == "TestAuthz_EgressGateway" {
            let world = egress::world_for(&mut worlds, &case, &peers, at, tokens);
            egress::add_rows(world, &case, tokens);
            continue;
        }
        let gateway = ["TestAuthz_NotHost", "TestAuthz_IngressGateway"].contains(&test.as_str());
        if test == "TestAuthz_CustomServer" {
            pending.custom += 1;
            continue;
        }
        let path = request["path"].as_str().map(str::to_string);
        let identity = needs_identity(&test, path.as_deref().unwrap_or("/"));
        if path.as_deref().is_some_and(|p| p.starts_with("/source-ip")) {
            pending.source_ip += 1;
            continue;
        }
        let key = match identity {
            true => format!("{test} (peer identities)"),
            false => test.clone(),
        };
        let world = worlds.entry(key.clone()).or_insert_with(|| {
            let config: Vec<String> = case["policy_templates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .filter(|t| identity || !t.ends_with("mtls.yaml.tmpl"))
                .map(|t| policy(t, at.server_ip(0), identity.then_some(&peers)))
                // The ingress gateway listens on a free port instead of 80.
                .map(|c| match gateway {
                    true => c.replace("number: 80\n", &format!("number: {GATEWAY_PORT}\n")),
                    false => c,
                })
                .collect();
            let jwt = test == "TestAuthz_JWT";
            World {
                name: key.clone(),
                servers: vec![Workload::new(NS, "b")],
                clients: if identity {
                    clients.clone()
                } else {
                    Vec::new()
                },
                config: config.join("\n---\n"),
                jwks: jwt.then(|| read(corpus_dir().join("istio/tests/common/jwt/jwks.json"))),
                probe_token: jwt.then(|| tokens["TokenIssuer1"].clone()),
                gateway,
                egress: false,
                mesh_config: gateway.then_some(TRUSTED_PROXY_MESH),
                rows: Vec::new(),
            }
        });
        let line_no = case["source"]["line"].as_u64().unwrap_or(0);
        let method = request["method"].as_str().unwrap_or("GET");
        let shown_path = path.as_deref().unwrap_or("/");
        let name = format!("{test}:{line_no} {method} {shown_path}");
        let mut probes = integration_probes(request, path.as_deref(), tokens);
        if let Some(host) = request["host"]["go_expr"].as_str().and_then(go_host) {
            for probe in &mut probes {
                probe.host = Some(host.clone());
            }
        }
        if let Some(ip) = request["ip"].as_str() {
            for probe in &mut probes {
                probe.headers.push(("x-forwarded-for".into(), ip.into()));
            }
        }
        // `allow := from == allowed` (or `!= denied`: the same with these two clients).
        let literal = case["allow"].as_bool();
        let froms: Vec<Option<usize>> = match identity {
            true => (0..world.clients.len()).map(Some).collect(),
            false => vec![None],
        };
        for from in froms {
            let allow = literal.unwrap_or(from == Some(0));
            world.rows.push(Row {
                name: name.clone(),
                from,
                probes: probes.clone(),
                expect: Expect::Allow(allow),
            });
        }
    }
    worlds.into_values().collect()
}
