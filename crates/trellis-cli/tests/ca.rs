//! The CA end to end: a real `trellis control-plane` process, `CreateCertificate` over
//! gRPC on its plaintext xDS port (bootstrap token) and its TLS port (renewal with the
//! certificate the workload holds), Istio's status codes for every refusal, and the root
//! kept across a restart.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tonic::Code;
use trellis_control_plane::ca::mint_token;
use trellis_identity::client::{
    CaClientConfig, ClientError, TokenSource, WorkloadIdentity, key_and_csr, request_identity,
};
use trellis_identity::manager;
use trellis_identity::pb::{self, IstioCertificateRequest};
use trellis_identity::pem;
use trellis_identity::spiffe::SpiffeId;
use trellis_testkit::mesh::{MeshDir, control_plane_command, run_control_plane};
use trellis_testkit::{Process, free_port, get};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const START: Duration = Duration::from_secs(30);
const TEN_MINUTES: Duration = Duration::from_secs(600);

struct ControlPlane {
    _process: Process,
    plain: SocketAddr,
    secure: SocketAddr,
    debug: SocketAddr,
}

fn start(dir: &MeshDir) -> ControlPlane {
    let at: IpAddr = "127.0.0.1".parse().unwrap();
    let plain = SocketAddr::new(at, free_port(at));
    let secure = SocketAddr::new(at, free_port(at));
    let debug = SocketAddr::new(at, free_port(at));
    let mut command = control_plane_command(TRELLIS.as_ref(), dir.path(), plain, debug);
    command.args(["--secure-xds-address", &secure.to_string()]);
    let process = run_control_plane(command, dir.path(), debug, START);
    ControlPlane {
        _process: process,
        plain,
        secure,
        debug,
    }
}

fn reviews() -> SpiffeId {
    SpiffeId::new("cluster.local", "default", "reviews").unwrap()
}

fn token(dir: &MeshDir, sa: &str, ttl: Duration) -> Option<TokenSource> {
    let token = mint_token(&dir.join("state"), "default", sa, ttl).unwrap();
    Some(TokenSource::Value(token))
}

/// The leaf is signed by the root that ends the chain.
fn assert_chains_to_its_root(identity: &WorkloadIdentity) {
    let leaf = pem::certificates(&identity.chain_pem).unwrap().remove(0);
    let root = pem::certificates(&identity.roots_pem).unwrap().remove(0);
    let leaf = pem::parse(&leaf).unwrap();
    let root = pem::parse(&root).unwrap();
    leaf.verify_signature(Some(root.public_key())).unwrap();
    assert_eq!(pem::uri_sans(&leaf), vec![reviews().uri()]);
}

/// Sends a raw CreateCertificate (no client-side checks) to `address`.
async fn raw(address: SocketAddr, csr: String, bearer: Option<&str>) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr,
        validity_duration: 0,
        metadata: None,
    });
    if let Some(token) = bearer {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    pb::create_certificate(channel, request)
        .await
        .expect_err("the CA must refuse")
}

/// Runs async client code (the testkit's control-plane starter blocks, so tests are sync).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(future)
}

#[test]
fn create_certificate_with_a_token_then_renew_over_tls() {
    let dir = MeshDir::new();
    let cp = start(&dir);
    block_on(async {
        let config = CaClientConfig::new(
            format!("http://{}", cp.plain),
            token(&dir, "reviews", TEN_MINUTES),
        );
        let first = request_identity(&config, &reviews(), None).await.unwrap();
        assert_chains_to_its_root(&first);
        let life = first.not_after.duration_since(first.not_before).unwrap();
        assert_eq!(life, Duration::from_secs(24 * 3600 + 60));

        // Renewal on the TLS port: no token, the current certificate is the credential.
        let renew = CaClientConfig {
            ca_roots_pem: Some(first.roots_pem.clone()),
            ..CaClientConfig::new(format!("https://{}", cp.secure), None)
        };
        let second = request_identity(&renew, &reviews(), Some(&first))
            .await
            .unwrap();
        assert_chains_to_its_root(&second);
        assert_ne!(first.chain_pem, second.chain_pem);
        assert_eq!(first.roots_pem, second.roots_pem);

        // Without any credential the TLS port refuses too.
        match request_identity(&renew, &reviews(), None).await {
            Err(ClientError::Refused(status)) => assert_eq!(status.code(), Code::Unauthenticated),
            other => panic!("expected UNAUTHENTICATED, got {other:?}"),
        }
    });
}

#[test]
fn refusals_carry_istios_status_codes() {
    let dir = MeshDir::new();
    let cp = start(&dir);
    block_on(async {
        let token_for = |sa: &str, ttl| match token(&dir, sa, ttl) {
            Some(TokenSource::Value(t)) => t,
            _ => unreachable!(),
        };
        let (_, own_csr) = key_and_csr(&reviews()).unwrap();
        let admin = SpiffeId::new("cluster.local", "default", "admin").unwrap();
        let (_, admin_csr) = key_and_csr(&admin).unwrap();

        let status = raw(
            cp.plain,
            admin_csr,
            Some(&token_for("reviews", TEN_MINUTES)),
        )
        .await;
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(
            status
                .message()
                .contains("spiffe://cluster.local/ns/default/sa/admin")
        );

        let status = raw(cp.plain, own_csr.clone(), None).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

        let status = raw(
            cp.plain,
            own_csr.clone(),
            Some(&token_for("reviews", Duration::ZERO)),
        )
        .await;
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains("expired"), "{status:?}");

        let status = raw(cp.plain, own_csr, Some("trellis1.forged.token")).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

        let status = raw(
            cp.plain,
            "garbage".into(),
            Some(&token_for("reviews", TEN_MINUTES)),
        )
        .await;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    });

    // Istio's CA metrics count each refusal by cause.
    let metrics = get(cp.debug, "/metrics", &[], Duration::from_secs(2))
        .unwrap()
        .body;
    for line in [
        "citadel_server_csr_count_total 5",
        "citadel_server_authentication_failure_count_total 3",
        "citadel_server_id_extraction_err_count_total 1",
        "citadel_server_csr_parsing_err_count_total 1",
        "citadel_server_success_cert_issuance_count_total 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing in\n{metrics}"
        );
    }
    assert!(metrics.contains("citadel_server_root_cert_expiry_timestamp "));
}

#[test]
fn a_restart_keeps_the_root_from_the_state_dir() {
    let dir = MeshDir::new();
    let roots = |cp: &ControlPlane| {
        let config = CaClientConfig::new(
            format!("http://{}", cp.plain),
            token(&dir, "reviews", TEN_MINUTES),
        );
        block_on(request_identity(&config, &reviews(), None))
            .unwrap()
            .roots_pem
    };
    let before = roots(&start(&dir));
    let after = roots(&start(&dir));
    assert_eq!(before, after);
}

#[test]
fn the_manager_waits_for_a_starting_ca_and_stops_at_a_refusal() {
    let dir = MeshDir::new();
    let at: IpAddr = "127.0.0.1".parse().unwrap();
    let plain = SocketAddr::new(at, free_port(at));
    let debug = SocketAddr::new(at, free_port(at));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The workload starts first; its CA is not there yet.
    let config = CaClientConfig::new(
        format!("http://{plain}"),
        token(&dir, "reviews", TEN_MINUTES),
    );
    let pending = runtime.spawn(manager::start(config, reviews()));
    let command = control_plane_command(TRELLIS.as_ref(), dir.path(), plain, debug);
    let _cp = run_control_plane(command, dir.path(), debug, START);
    let identity = runtime.block_on(pending).unwrap().unwrap();
    assert_chains_to_its_root(&identity.borrow());

    // A refusal is final: no retrying with an expired token.
    let expired = CaClientConfig::new(
        format!("http://{plain}"),
        token(&dir, "reviews", Duration::ZERO),
    );
    match runtime.block_on(manager::start(expired, reviews())) {
        Err(ClientError::Refused(status)) => assert_eq!(status.code(), Code::Unauthenticated),
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    }
}

fn trellis(args: &[&str], dir: &MeshDir) -> String {
    let out = std::process::Command::new(TRELLIS)
        .args(args)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trellis {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The documented rotation procedure, through the CLI: `trellis token` authorises the
/// workload; after `trellis ca rotate-root` and a restart the bundle holds both roots and
/// new certificates come from the new one; `remove-root` drops the old one.
#[test]
fn root_rotation_through_the_cli() {
    let dir = MeshDir::new();
    let request = |cp: &ControlPlane| {
        let token = trellis(
            &["token", "-n", "default", "--service-account", "reviews"],
            &dir,
        );
        let config = CaClientConfig::new(
            format!("http://{}", cp.plain),
            Some(TokenSource::Value(token.trim().to_string())),
        );
        block_on(request_identity(&config, &reviews(), None)).unwrap()
    };
    let before = request(&start(&dir));
    let old_root = trellis(&["ca", "roots"], &dir);
    assert_eq!(old_root.lines().count(), 1);

    trellis(&["ca", "rotate-root"], &dir);
    let roots = trellis(&["ca", "roots"], &dir);
    let roots: Vec<&str> = roots.lines().collect();
    assert_eq!(roots.len(), 2);
    assert_eq!(roots[1], old_root.trim(), "the old root stays trusted");

    let after = request(&start(&dir));
    assert_eq!(pem::certificates(&after.roots_pem).unwrap().len(), 2);
    assert_chains_to_its_root(&after);
    // The new leaf is not signed by the old root.
    let leaf = pem::certificates(&after.chain_pem).unwrap().remove(0);
    let old = pem::certificates(&before.roots_pem).unwrap().remove(0);
    let old = pem::parse(&old).unwrap();
    assert!(
        pem::parse(&leaf)
            .unwrap()
            .verify_signature(Some(old.public_key()))
            .is_err()
    );

    trellis(&["ca", "remove-root", &roots[1][..16]], &dir);
    assert_eq!(trellis(&["ca", "roots"], &dir).trim(), roots[0]);
}
