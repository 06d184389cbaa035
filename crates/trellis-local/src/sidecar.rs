//! The sidecar beside a workload: which program runs (a stock Envoy on the bootstrap of
//! `trellis bootstrap envoy`, or `trellis proxy` with the same node flags), how to tell it
//! is ready, and how it is started inside the pod as the proxy user.
//!
//! Both introduce themselves with the workload's node metadata (namespace, pod IP, labels,
//! service account), which is what makes the control plane register the workload as an
//! endpoint of the services selecting its labels (no WorkloadGroup needed). With an
//! [`Identity`] the sidecar gets its certificate from the control plane's CA: Envoy runs
//! under `trellis agent` (Istio's pilot-agent: it fetches the certificate, serves it over
//! SDS on a Unix socket in the pod's directory and runs Envoy), and the node says
//! `SDS: "true"`, so the control plane sends it Istio's mTLS.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use trellis_control_plane::bootstrap::{BootstrapOptions, envoy_bootstrap};

use crate::error::{Error, Result};

/// The admin port of the sidecar, on 127.0.0.1 inside the pod.
pub const ADMIN_PORT: u16 = 15000;

/// Which data plane runs as the sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// A stock Envoy (found as `envoy` on PATH or `$ENVOY`).
    Envoy,
    /// `trellis proxy`.
    Trellis,
}

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Programs {
    pub envoy: PathBuf,
    pub trellis: PathBuf,
}

/// How a sidecar gets its workload certificate: from the CA, on the strength of a
/// bootstrap token in a file only the proxy user reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The CA, `http://HOST:15010` (the control plane's plaintext xDS port).
    pub ca_address: String,
    pub token_file: PathBuf,
}

/// Envoy's own arguments after its bootstrap.
const ENVOY_ARGS: [&str; 7] = [
    "--concurrency",
    "2",
    "--disable-hot-restart",
    "--drain-time-s",
    "5",
    "-l",
    "warning",
];

/// The SDS socket of the sidecar of kind `kind` in the pod directory `dir`: Envoy's agent
/// serves one when the sidecar has an identity; the Trellis proxy holds its certificate
/// itself.
pub fn sds_socket(kind: ProxyKind, dir: &Path, identity: Option<&Identity>) -> Option<PathBuf> {
    (kind == ProxyKind::Envoy && identity.is_some()).then(|| dir.join("sds.sock"))
}

/// The command line of the sidecar for `node`. Envoy with an identity (the node names its
/// SDS socket) runs under `trellis agent`, which writes the bootstrap to `dir/envoy.json`;
/// without one its bootstrap is written there first.
pub fn command(
    kind: ProxyKind,
    programs: &Programs,
    node: &BootstrapOptions,
    dir: &Path,
    identity: Option<&Identity>,
) -> Result<Vec<String>> {
    let bootstrap = dir.join("envoy.json");
    match (kind, identity, &node.sds_socket) {
        (ProxyKind::Envoy, Some(identity), Some(socket)) => {
            let mut args = vec![programs.trellis.display().to_string(), "agent".into()];
            args.extend(node_flags(node));
            args.extend(ca_flags(identity));
            args.extend(dns_args());
            args.extend([
                "--sds-socket".into(),
                socket.display().to_string(),
                "--bootstrap-out".into(),
                bootstrap.display().to_string(),
                "--envoy".into(),
                programs.envoy.display().to_string(),
                "--".into(),
            ]);
            args.extend(ENVOY_ARGS.map(String::from));
            Ok(args)
        }
        (ProxyKind::Envoy, _, _) => {
            let text = serde_json::to_string_pretty(&envoy_bootstrap(node))
                .map_err(|e| Error::Failed(format!("cannot render the Envoy bootstrap: {e}")))?;
            std::fs::write(&bootstrap, text)
                .map_err(Error::io(format!("cannot write {}", bootstrap.display())))?;
            let mut args = vec![
                programs.envoy.display().to_string(),
                "-c".into(),
                bootstrap.display().to_string(),
            ];
            args.extend(ENVOY_ARGS.map(String::from));
            Ok(args)
        }
        (ProxyKind::Trellis, _, _) => {
            let mut args = vec![programs.trellis.display().to_string(), "proxy".into()];
            args.extend(node_flags(node));
            args.extend(identity.map(ca_flags).unwrap_or_default());
            args.extend(dns_args());
            Ok(args)
        }
    }
}

/// The flags of `trellis agent` and `trellis proxy` that say which CA to ask and with
/// which token.
fn ca_flags(identity: &Identity) -> Vec<String> {
    vec![
        "--ca-address".into(),
        identity.ca_address.clone(),
        "--ca-token-file".into(),
        identity.token_file.display().to_string(),
    ]
}

/// The node flags `trellis proxy` and `trellis agent` share with `trellis bootstrap envoy`.
fn node_flags(node: &BootstrapOptions) -> Vec<String> {
    let mut args = vec![
        "--xds-address".into(),
        format!("{}:{}", node.xds_host, node.xds_port),
        "--name".into(),
        node.name.clone(),
        "--namespace".into(),
        node.namespace.clone(),
        "--service-account".into(),
        node.service_account.clone(),
        "--ip".into(),
        node.ip.to_string(),
        "--admin-port".into(),
        node.admin_port.to_string(),
    ];
    let labels: Vec<String> = node
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !labels.is_empty() {
        args.push("--labels".into());
        args.push(labels.join(","));
    }
    args
}

/// Whether the sidecar answers the pod's DNS (so capture sends port 53 to it): the
/// Trellis proxy does, and so does `trellis agent` beside Envoy; a bare Envoy (no
/// identity, so no agent) cannot.
pub fn serves_dns(kind: ProxyKind, with_identity: bool) -> bool {
    kind == ProxyKind::Trellis || with_identity
}

/// The DNS proxy's flags, on Istio's address.
pub fn dns_args() -> [String; 2] {
    [
        "--dns-address".into(),
        format!("127.0.0.1:{}", crate::capture::DNS_CAPTURE_PORT),
    ]
}

/// Where readiness is asked: Envoy's admin `/ready` (200 `LIVE` once its first xDS
/// configuration is in place); the Trellis proxy's admin `/ready` (its `:15021
/// /healthz/ready` replaces it once that lands).
pub fn readiness(kind: ProxyKind) -> (SocketAddr, &'static str) {
    match kind {
        ProxyKind::Envoy | ProxyKind::Trellis => (admin(), "/ready"),
    }
}

/// The sidecar's admin address inside its pod.
pub fn admin() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, ADMIN_PORT))
}

/// The node a workload's sidecar introduces itself with; `sds_socket` (see [`sds_socket`])
/// marks it `SDS: "true"`, which is what makes the control plane send it mTLS.
pub fn node(
    name: &str,
    namespace: &str,
    service_account: &str,
    labels: &std::collections::BTreeMap<String, String>,
    ip: Ipv4Addr,
    xds: SocketAddr,
    sds_socket: Option<PathBuf>,
) -> BootstrapOptions {
    BootstrapOptions {
        node_id: None,
        kind: trellis_control_plane::proxy::ProxyKind::Sidecar,
        name: name.to_string(),
        namespace: namespace.to_string(),
        service_account: service_account.to_string(),
        labels: labels.clone(),
        ip: ip.into(),
        xds_host: xds.ip().to_string(),
        xds_port: xds.port(),
        admin_port: ADMIN_PORT,
        delta: false,
        sds_socket,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn the_node(sds_socket: Option<PathBuf>) -> BootstrapOptions {
        let labels = BTreeMap::from([
            ("app".to_string(), "reviews".to_string()),
            ("version".to_string(), "v1".to_string()),
        ]);
        node(
            "reviews-v1",
            "default",
            "bookinfo-reviews",
            &labels,
            Ipv4Addr::new(10, 241, 0, 2),
            "10.241.0.1:15010".parse().unwrap(),
            sds_socket,
        )
    }

    fn identity() -> Identity {
        Identity {
            ca_address: "http://10.241.0.1:15010".into(),
            token_file: "/pod/ca-token".into(),
        }
    }

    fn programs() -> Programs {
        Programs {
            envoy: "/bin/envoy".into(),
            trellis: "/bin/trellis".into(),
        }
    }

    #[test]
    fn envoy_runs_on_a_bootstrap_naming_the_workload() {
        let dir = tempfile::tempdir().unwrap();
        let args = command(
            ProxyKind::Envoy,
            &programs(),
            &the_node(None),
            dir.path(),
            None,
        )
        .unwrap();
        assert_eq!(args[0], "/bin/envoy");
        let bootstrap: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("envoy.json")).unwrap()).unwrap();
        assert_eq!(
            bootstrap["node"]["id"],
            "sidecar~10.241.0.2~reviews-v1.default~default.svc.cluster.local"
        );
        assert_eq!(bootstrap["node"]["metadata"]["LABELS"]["version"], "v1");
        assert_eq!(bootstrap["node"]["metadata"]["INSTANCE_IPS"], "10.241.0.2");
    }

    #[test]
    fn the_trellis_proxy_gets_the_same_node_flags() {
        let dir = tempfile::tempdir().unwrap();
        let args = command(
            ProxyKind::Trellis,
            &programs(),
            &the_node(None),
            dir.path(),
            None,
        )
        .unwrap();
        let line = args.join(" ");
        assert_eq!(
            line,
            "/bin/trellis proxy --xds-address 10.241.0.1:15010 --name reviews-v1 --namespace \
             default --service-account bookinfo-reviews --ip 10.241.0.2 --admin-port 15000 \
             --labels app=reviews,version=v1 --dns-address 127.0.0.1:15053"
        );
        // With an identity: the CA flags, and no SDS socket (it holds its certificate).
        let identity = identity();
        let args = command(
            ProxyKind::Trellis,
            &programs(),
            &the_node(None),
            dir.path(),
            Some(&identity),
        )
        .unwrap();
        assert!(
            args.join(" ").ends_with(
                "--labels app=reviews,version=v1 --ca-address http://10.241.0.1:15010 \
                 --ca-token-file /pod/ca-token --dns-address 127.0.0.1:15053"
            ),
            "{args:?}"
        );
    }

    #[test]
    fn envoy_with_an_identity_runs_under_the_agent_on_the_pods_sds_socket() {
        let dir = Path::new("/pod");
        let identity = identity();
        let socket = sds_socket(ProxyKind::Envoy, dir, Some(&identity));
        assert_eq!(socket, Some(PathBuf::from("/pod/sds.sock")));
        let node = the_node(socket);
        let args = command(ProxyKind::Envoy, &programs(), &node, dir, Some(&identity)).unwrap();
        assert_eq!(
            args.join(" "),
            "/bin/trellis agent --xds-address 10.241.0.1:15010 --name reviews-v1 --namespace \
             default --service-account bookinfo-reviews --ip 10.241.0.2 --admin-port 15000 \
             --labels app=reviews,version=v1 --ca-address http://10.241.0.1:15010 \
             --ca-token-file /pod/ca-token --dns-address 127.0.0.1:15053 --sds-socket \
             /pod/sds.sock --bootstrap-out \
             /pod/envoy.json --envoy /bin/envoy -- --concurrency 2 --disable-hot-restart \
             --drain-time-s 5 -l warning"
        );
        // The agent's bootstrap (as `trellis bootstrap envoy --sds-socket` writes it) says
        // SDS, which is what the control plane sends mTLS for.
        let bootstrap = envoy_bootstrap(&node);
        assert_eq!(bootstrap["node"]["metadata"]["SDS"], "true");
        assert_eq!(sds_socket(ProxyKind::Envoy, dir, None), None);
        assert_eq!(sds_socket(ProxyKind::Trellis, dir, Some(&identity)), None);
    }
}
