//! Bad client certificates at a STRICT Trellis server sidecar (issue 5, "Bad input"): raw
//! rustls clients present certificates signed with the mesh CA's own key (read from the
//! control plane's state directory) that are expired, not yet valid, of another trust
//! domain, or without a SPIFFE id. Each is refused during the handshake, before any HTTP
//! answer, with a log line naming the reason; the server keeps serving a good client.
//! A certificate of another CA is `proxy_mtls.rs`'s.
//!
//! Istio's server contexts accept any SPIFFE id of the mesh's trust domain and its
//! aliases (a `spiffe://<domain>/` prefix matcher each); another trust domain is refused.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use trellis_control_plane::ca::mint_token;
use trellis_testkit::mesh::{self, MeshDir};
use trellis_testkit::mesh_tls::{Validity, sign, tls_get};
use trellis_testkit::mesh_yaml::{peer_authentication, service, sidecar_ingress, stream};
use trellis_testkit::trellis_proxy::{self, ProxyIdentity};
use trellis_testkit::{Backend, Process, free_port, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGE: Duration = Duration::from_secs(30);
const GOOD_ID: &str = "spiffe://cluster.local/ns/default/sa/productpage";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// A control plane (the CA too) and the reviews server's Trellis sidecar on
/// `server_ip:9080` under STRICT, with its workload certificate from the CA.
struct StrictServer {
    dir: MeshDir,
    sidecar: Process,
    _control_plane: Process,
    _backend: Backend,
}

impl StrictServer {
    fn start(server_ip: IpAddr) -> StrictServer {
        let dir = MeshDir::new();
        let localhost = ip("127.0.0.1");
        let backend = Backend::start(SocketAddr::new(localhost, 0), "reviews over mTLS");
        dir.write(
            "mesh.yaml",
            &stream(&[
                service("reviews"),
                sidecar_ingress(server_ip, backend.address.port()),
            ]),
        );
        dir.write("peer.yaml", &peer_authentication("STRICT"));
        let (control_plane, xds, _debug) =
            mesh::control_plane(Path::new(TRELLIS), dir.path(), localhost, CONVERGE);
        let token = mint_token(
            &dir.join("state"),
            "default",
            "reviews",
            Duration::from_secs(600),
        )
        .expect("mint token");
        let token_file = dir.join("token-reviews");
        std::fs::write(&token_file, token).expect("write token");
        let who = ProxyIdentity {
            name: "reviews-v1",
            namespace: "default",
            service_account: "reviews",
            labels: "app=reviews,version=v1",
            ip: server_ip,
        };
        let admin = SocketAddr::new(localhost, free_port(localhost));
        let mut command = trellis_proxy::command(Path::new(TRELLIS), xds, admin, &who, 0);
        command
            .arg("--ca-token-file")
            .arg(&token_file)
            .env("TRELLIS_LOG", "info,trellis_proxy::listeners=debug");
        let mut sidecar = Process::start("trellis proxy", command, &dir.join("reviews.log"));
        trellis_proxy::wait_ready(&mut sidecar, admin, CONVERGE);
        StrictServer {
            dir,
            sidecar,
            _control_plane: control_plane,
            _backend: backend,
        }
    }

    /// A client certificate signed by the mesh's CA key.
    fn sign(&self, spiffe_id: Option<&str>, validity: Validity) -> (String, String) {
        sign(&self.dir.join("state/ca"), spiffe_id, validity)
    }

    fn roots(&self) -> String {
        std::fs::read_to_string(self.dir.join("state/ca/root-cert.pem")).expect("roots")
    }
}

#[test]
fn bad_client_certificates_are_refused_with_the_reason_logged() {
    let server_ip = ip("127.0.81.1");
    let mut server = StrictServer::start(server_ip);
    let direct = SocketAddr::new(server_ip, 9080);
    let roots = server.roots();

    // The good client first: the server's TLS chain is in place (and stays so).
    let (cert, key) = server.sign(Some(GOOD_ID), Validity::Now);
    wait_until("a good client gets 200", CONVERGE, || {
        match tls_get(direct, &cert, &key, &roots) {
            Ok((_, status)) if status.contains(" 200 ") => Ok(()),
            other => Err(format!("{other:?}\n{}", server.sidecar.tail(10))),
        }
    });

    let foreign = "spiffe://other.domain/ns/default/sa/x";
    let cases = [
        (
            "expired",
            Some(GOOD_ID),
            Validity::Expired,
            "certificate expired",
        ),
        (
            "not yet valid",
            Some(GOOD_ID),
            Validity::NotYetValid,
            "certificate not valid yet",
        ),
        (
            "another trust domain",
            Some(foreign),
            Validity::Now,
            "trust domain other.domain is not accepted",
        ),
        (
            "no SPIFFE id",
            None,
            Validity::Now,
            "peer certificate has no SPIFFE id",
        ),
    ];
    for (what, id, validity, reason) in cases {
        let (cert, key) = server.sign(id, validity);
        let outcome = tls_get(direct, &cert, &key, &roots);
        assert!(outcome.is_err(), "{what}: served {outcome:?}");
        wait_until(&format!("{what}: the refusal is logged"), CONVERGE, || {
            let log = server.sidecar.tail(200);
            (log.contains("downstream TLS handshake failed") && log.contains(reason))
                .then_some(())
                .ok_or(log)
        });
        println!("{what}: refused ({})", outcome.unwrap_err());
    }

    assert!(server.sidecar.running(), "the server survived");
    let (_, status) = tls_get(direct, &cert, &key, &roots).expect("a good client after");
    assert!(status.contains(" 200 "), "{status}");
}
