//! Running a world: its control plane with the policies, the server sidecars (Sidecar
//! ingress listeners with `captureMode: NONE` on leased loopback addresses, in front of a
//! tiny HTTP application), the client sidecars with identities of their own (Sidecar
//! egress listeners toward the servers' Services), an ingress gateway or Istio's egress
//! gateway (`egress.rs`); and sending a row's requests.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use trellis_control_plane::ca::mint_token;
use trellis_testkit::mesh::{MeshDir, control_plane_command, run_control_plane};
use trellis_testkit::scenario::client::{Outcome, send};
use trellis_testkit::scenario::{
    DataPlane, Lease, NodeSpec, Request, RunningDataPlane, start_ready,
};
use trellis_testkit::{Backend, Process, free_port};

use super::egress;
use super::rows::{
    Addresses, Expect, GATEWAY_PORT, GRPC, HTTP, HTTP2, JWKS_URI, Probe, Row, TCP_PORTS, Workload,
    World,
};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const START: Duration = Duration::from_secs(30);
/// The ingress gateway's namespace: beside httpbin, as in the docs' ingress task (Istio's
/// root-namespace policies select it from there too).
const GATEWAY_NS: &str = "foo";

impl Addresses for Lease {
    fn server_ip(&self, i: usize) -> IpAddr {
        self.ip(10 + i as u8)
    }

    fn client_ip(&self, j: usize) -> IpAddr {
        self.ip(20 + j as u8)
    }

    fn egress_gateway_ip(&self) -> IpAddr {
        self.ip(41)
    }
}

/// Every port a server serves: (port, Istio protocol, port name).
fn ports() -> Vec<(u16, &'static str, String)> {
    let http = [
        (HTTP, "HTTP", "http"),
        (HTTP2, "HTTP2", "http2"),
        (GRPC, "GRPC", "grpc"),
    ];
    http.into_iter()
        .map(|(p, proto, name)| (p, proto, format!("{name}-{p}")))
        .chain(TCP_PORTS.iter().map(|p| (*p, "TCP", format!("tcp-{p}"))))
        .collect()
}

/// A server's Sidecar: ingress listeners bound to `ip` for every port, all delivered to
/// the application at `app` (the listeners speak HTTP/1.1 or TCP to it).
fn server_sidecar(server: &Workload, ip: IpAddr, app: SocketAddr) -> String {
    let mut ingress = String::new();
    for (port, protocol, name) in ports() {
        let protocol = if protocol == "TCP" { "TCP" } else { "HTTP" };
        ingress.push_str(&format!(
            "  - port: {{number: {port}, protocol: {protocol}, name: {name}}}\n    bind: {ip}\n    captureMode: NONE\n    defaultEndpoint: {app}\n"
        ));
    }
    format!(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {app_label}, namespace: {ns}}}
spec:
  workloadSelector: {{labels: {{app: {app_label}}}}}
  ingress:
{ingress}",
        app_label = server.app,
        ns = server.namespace,
    )
}

/// The Service of a server workload, with every port (for client sidecars to reach it).
fn service(server: &Workload) -> String {
    let ports: String = ports()
        .into_iter()
        .map(|(port, _, name)| format!("  - {{name: {name}, port: {port}}}\n"))
        .collect();
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {app}, namespace: {ns}}}
spec:
  selector: {{app: {app}}}
  ports:
{ports}",
        app = server.app,
        ns = server.namespace,
    )
}

/// A client's Sidecar: egress listeners bound to `ip` for every port, toward every
/// namespace's services; and port 80 (HTTP) for the hosts outside the mesh in worlds with
/// an egress gateway.
fn client_sidecar(client: &Workload, ip: IpAddr, egress: bool) -> String {
    let mut ports = ports();
    if egress {
        ports.push((egress::EGRESS_PORT, "HTTP", "http".into()));
    }
    let egress: String = ports
        .into_iter()
        .map(|(port, protocol, name)| {
            format!(
                "  - port: {{number: {port}, protocol: {protocol}, name: {name}}}\n    bind: {ip}\n    captureMode: NONE\n    hosts: [\"*/*\"]\n"
            )
        })
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {app}, namespace: {ns}}}
spec:
  workloadSelector: {{labels: {{app: {app}}}}}
  egress:
{egress}",
        app = client.app,
        ns = client.namespace,
    )
}

/// Polls `check` every 100 ms until it is `Ok`, or gives `what` and the last failure
/// after `START`.
fn poll<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let deadline = Instant::now() + START;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => {
                return Err(format!("timed out waiting for {what}: {last}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A started world; everything stops when it is dropped.
pub struct Running {
    control_plane: Process,
    /// Server sidecars, then client sidecars (or the gateway).
    proxies: Vec<(String, Box<dyn RunningDataPlane>)>,
    /// Where the gateway listens (gateway worlds).
    gateway_port: u16,
    _app: Backend,
    _jwks: Option<Backend>,
    dir: MeshDir,
}

impl Running {
    /// The tails of every proxy's log and of the control plane's.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (name, proxy) in &self.proxies {
            out.push_str(&format!("--- {name}\n{}\n", proxy.logs()));
        }
        out.push_str(&format!(
            "--- control plane\n{}",
            self.control_plane.tail(10)
        ));
        out
    }
}

/// A sidecar (or gateway) of `workload` at `ip`, its scratch directory under the world's.
fn node(
    dir: &MeshDir,
    xds: SocketAddr,
    workload: &Workload,
    ip: IpAddr,
    labels: Vec<(String, String)>,
) -> NodeSpec {
    let home = dir.join(&format!("{}-{}", workload.namespace, workload.app));
    std::fs::create_dir_all(&home).expect("sidecar dir");
    NodeSpec {
        trellis: PathBuf::from(TRELLIS),
        xds,
        ip,
        name: format!("{}-v1", workload.app),
        namespace: workload.namespace.clone(),
        service_account: workload.app.clone(),
        labels,
        admin: SocketAddr::new(
            Ipv4Addr::LOCALHOST.into(),
            free_port(Ipv4Addr::LOCALHOST.into()),
        ),
        dir: home,
        router: false,
        ca_token: None,
    }
}

fn app_labels(workload: &Workload) -> Vec<(String, String)> {
    vec![
        ("app".into(), workload.app.clone()),
        ("version".into(), "v1".into()),
    ]
}

/// A bootstrap token for `workload`'s identity from the world's CA, in a file.
fn token_file(dir: &MeshDir, workload: &Workload) -> PathBuf {
    let token = mint_token(
        &dir.join("state"),
        &workload.namespace,
        &workload.app,
        Duration::from_secs(3600),
    )
    .expect("mint a bootstrap token");
    let path = dir.join(&format!("{}-{}.token", workload.namespace, workload.app));
    std::fs::write(&path, token).expect("token file");
    path
}

/// Starts `world` with `data_plane` as every proxy; `Err` says what did not come up.
pub fn start(world: &World, lease: &Lease, data_plane: &dyn DataPlane) -> Result<Running, String> {
    // Istio requires a Sidecar ingress defaultEndpoint on 127.0.0.1. The app shows the
    // headers it received, as Istio's echo app does.
    let app = Backend::echoing(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0), "app");
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
    let config = config.replace(GATEWAY_PORT, &gateway_port.to_string());
    dir.write("00-workloads.yaml", &registry(world, lease, app.address));
    dir.write("10-policies.yaml", &config);
    let (control_plane, xds) = start_control_plane(&dir, lease, world.mesh_config)?;
    let mut running = Running {
        control_plane,
        proxies: Vec::new(),
        gateway_port,
        _app: app,
        _jwks: jwks,
        dir,
    };
    for spec in nodes(world, lease, &running.dir, xds) {
        let who = format!(
            "{} {}/{}",
            data_plane.name(),
            spec.namespace,
            spec.service_account
        );
        let proxy = start_ready(data_plane, &spec, START).map_err(|e| format!("{who}: {e}"))?;
        running.proxies.push((who, proxy));
    }
    converge(world, lease, &running).map_err(|e| format!("{e}\n{}", running.logs()))?;
    Ok(running)
}

/// `trellis control-plane` on the world's directory, with `mesh_config` if any; the
/// process and its xDS address.
fn start_control_plane(
    dir: &MeshDir,
    lease: &Lease,
    mesh_config: Option<&str>,
) -> Result<(Process, SocketAddr), String> {
    let at = lease.client();
    let xds = SocketAddr::new(at, free_port(at));
    let debug = SocketAddr::new(at, free_port(at));
    let mut command = control_plane_command(Path::new(TRELLIS), dir.path(), xds, debug);
    if let Some(mesh) = mesh_config {
        let path = dir.join("mesh.yaml");
        std::fs::write(&path, mesh).map_err(|e| format!("mesh config: {e}"))?;
        command.arg("--mesh-config").arg(path);
    }
    Ok((run_control_plane(command, dir.path(), debug, START), xds))
}

/// The world's workloads as config: the servers' Sidecars (and Services, for clients or
/// the gateway to reach them) and the clients' Sidecars.
fn registry(world: &World, lease: &Lease, app: SocketAddr) -> String {
    let mut documents = Vec::new();
    for (i, server) in world.servers.iter().enumerate() {
        documents.push(server_sidecar(server, lease.server_ip(i), app));
        if world.gateway || !world.clients.is_empty() {
            documents.push(service(server));
        }
    }
    for (j, client) in world.clients.iter().enumerate() {
        documents.push(client_sidecar(client, lease.client_ip(j), world.egress));
    }
    documents.join("---\n")
}

/// The proxies to start, servers first: the gateway, or the servers' and the clients'
/// sidecars; with clients, each with a bootstrap token for its own identity.
fn nodes(world: &World, lease: &Lease, dir: &MeshDir, xds: SocketAddr) -> Vec<NodeSpec> {
    let mut nodes = Vec::new();
    if world.gateway {
        let gateway = Workload::new(GATEWAY_NS, "istio-ingressgateway");
        let labels =
            "app=istio-ingressgateway,istio=ingressgateway,istio.io/gateway-name=httpbin-gateway";
        let mut spec = node(dir, xds, &gateway, lease.ip(40), pairs(labels));
        spec.router = true;
        nodes.push(spec);
    }
    if world.egress {
        let gateway = egress::gateway();
        let ip = lease.egress_gateway_ip();
        let mut spec = node(dir, xds, &gateway, ip, pairs(egress::GATEWAY_LABELS));
        spec.router = true;
        spec.ca_token = Some(token_file(dir, &gateway));
        nodes.push(spec);
    }
    let servers = (world.servers.iter().enumerate()).map(|(i, w)| (w, lease.server_ip(i)));
    let clients = (world.clients.iter().enumerate()).map(|(j, w)| (w, lease.client_ip(j)));
    nodes.extend(servers.chain(clients).map(|(workload, ip)| {
        let mut spec = node(dir, xds, workload, ip, app_labels(workload));
        if !world.clients.is_empty() {
            spec.ca_token = Some(token_file(dir, workload));
        }
        spec
    }));
    nodes
}

/// Waits until what the rows need is in force: the gateway's routes, the fetched JWKS,
/// and every client reaching every server — an answer from the server's sidecar (the
/// app's, or its RBAC's 403), not the client sidecar's 503 (no endpoint yet, no mTLS).
fn converge(world: &World, lease: &Lease, running: &Running) -> Result<(), String> {
    // A row that expects the app's answer (else any): its request must get past the
    // gateway's route (not 404) to the server behind it (not 503).
    let answered = |r: &&Row| matches!(r.expect, Expect::Allow(true) | Expect::Status(200));
    let first = world.rows.iter().find(answered).or(world.rows.first());
    if let (true, Some(row)) = (world.gateway, first) {
        let probe = Probe {
            port: running.gateway_port,
            ..row.probes[0].clone()
        };
        poll("gateway routes", || {
            match http(Ipv4Addr::LOCALHOST.into(), &world.servers[0], &probe) {
                Some(status) if status != 503 && status != 404 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })?;
    }
    if let Some(token) = &world.probe_token {
        let probe = Probe::get(HTTP, "/", &[("authorization", &format!("Bearer {token}"))]);
        poll("fetched JWKS in force", || {
            match http(lease.server_ip(0), &world.servers[0], &probe) {
                Some(401) | None => Err("a valid token is still refused".to_string()),
                Some(_) => Ok(()),
            }
        })?;
    }
    for row in egress::warm_up(world) {
        let (Some(j), Some(probe)) = (row.from, row.probes.first()) else {
            continue;
        };
        poll(
            &format!("{} through the egress gateway", row.name),
            || match http(lease.client_ip(j), &world.servers[0], probe) {
                Some(status) if ![401, 404, 503].contains(&status) => Ok(()),
                other => Err(format!("{other:?}")),
            },
        )?;
    }
    let probe = Probe::get(HTTP, "/reachable", &[]);
    for j in 0..world.clients.len() {
        for server in &world.servers {
            poll(
                &format!("client {j} reaches {}", server.fqdn()),
                || match http(lease.client_ip(j), server, &probe) {
                    Some(status) if status != 503 && status != 404 => Ok(()),
                    other => Err(format!("{other:?}")),
                },
            )?;
        }
    }
    Ok(())
}

fn pairs(labels: &str) -> Vec<(String, String)> {
    labels
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The status of one HTTP request to `ip` for `server` (`Host: app.namespace:port`), or
/// `None` when no answer came.
fn http(ip: IpAddr, server: &Workload, probe: &Probe) -> Option<u16> {
    exchange(ip, server, probe).status
}

/// One HTTP request to `ip` for `server` (`Host: app.namespace:port` unless the probe
/// names one) and its answer.
fn exchange(ip: IpAddr, server: &Workload, probe: &Probe) -> Outcome {
    let request = Request {
        host: probe
            .host
            .clone()
            .unwrap_or_else(|| format!("{}.{}:{}", server.app, server.namespace, probe.port)),
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
    runtime.block_on(send(SocketAddr::new(ip, probe.port), &request))
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

/// What a row's probe got, in the row's terms, and as seen (`403`, `no answer`,
/// `connected`): sent through the row's client sidecar, or straight to the server's
/// sidecar (or the gateway).
pub fn observe(
    world: &World,
    running: &Running,
    lease: &Lease,
    row: &Row,
    probe: &Probe,
) -> (Expect, String) {
    let server = &world.servers[probe.to];
    let (ip, port) = match (world.gateway, row.from) {
        (true, _) => (Ipv4Addr::LOCALHOST.into(), running.gateway_port),
        (false, Some(j)) => (lease.client_ip(j), probe.port),
        (false, None) => (lease.server_ip(probe.to), probe.port),
    };
    if probe.tcp {
        let connected = tcp_succeeds(ip, port);
        let seen = if connected { "connected" } else { "refused" };
        return match row.expect {
            Expect::Allow(_) => (Expect::Allow(connected), seen.into()),
            _ => (Expect::Tcp(connected), seen.into()),
        };
    }
    let probe = Probe {
        port,
        ..probe.clone()
    };
    if world.egress {
        return egress::judge(&exchange(ip, server, &probe));
    }
    let status = http(ip, server, &probe);
    let seen = status.map_or("no answer".into(), |s| s.to_string());
    match row.expect {
        Expect::Allow(_) => (Expect::Allow(status == Some(200)), seen),
        _ => (Expect::Status(status.unwrap_or(0)), seen),
    }
}
