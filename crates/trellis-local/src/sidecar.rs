//! The sidecar beside a workload: which program runs (a stock Envoy on the bootstrap of
//! `trellis bootstrap envoy`, or `trellis proxy` with the same node flags), how to tell it
//! is ready, and how it is started inside the pod as the proxy user.
//!
//! Both introduce themselves with the workload's node metadata (namespace, pod IP, labels,
//! service account), which is what makes the control plane register the workload as an
//! endpoint of the services selecting its labels (no WorkloadGroup needed). This is also
//! the seam for workload identity: when `trellis agent` supplies certificates, the command
//! built here gains the agent's token and SDS socket.

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

/// The command line of the sidecar for `node`; for Envoy its bootstrap is written to
/// `dir/envoy.json` first.
pub fn command(
    kind: ProxyKind,
    programs: &Programs,
    node: &BootstrapOptions,
    dir: &Path,
) -> Result<Vec<String>> {
    match kind {
        ProxyKind::Envoy => {
            let bootstrap = dir.join("envoy.json");
            let text = serde_json::to_string_pretty(&envoy_bootstrap(node))
                .map_err(|e| Error::Failed(format!("cannot render the Envoy bootstrap: {e}")))?;
            std::fs::write(&bootstrap, text)
                .map_err(Error::io(format!("cannot write {}", bootstrap.display())))?;
            Ok(vec![
                programs.envoy.display().to_string(),
                "-c".into(),
                bootstrap.display().to_string(),
                "--concurrency".into(),
                "2".into(),
                "--disable-hot-restart".into(),
                "--drain-time-s".into(),
                "5".into(),
                "-l".into(),
                "warning".into(),
            ])
        }
        ProxyKind::Trellis => {
            let labels: Vec<String> = node
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let mut args = vec![
                programs.trellis.display().to_string(),
                "proxy".into(),
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
            if !labels.is_empty() {
                args.push("--labels".into());
                args.push(labels.join(","));
            }
            args.extend(dns_args());
            Ok(args)
        }
    }
}

/// Whether the sidecar answers the pod's DNS (so capture sends port 53 to it): the
/// Trellis proxy does; a bare Envoy cannot (`trellis agent` serves DNS beside Envoy with
/// the same [`dns_args`]).
pub fn serves_dns(kind: ProxyKind) -> bool {
    kind == ProxyKind::Trellis
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

/// The node a workload's sidecar introduces itself with.
pub fn node(
    name: &str,
    namespace: &str,
    service_account: &str,
    labels: &std::collections::BTreeMap<String, String>,
    ip: Ipv4Addr,
    xds: SocketAddr,
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
        // No agent serves certificates in pods yet: the sidecar gets no mTLS config.
        sds_socket: None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn the_node() -> BootstrapOptions {
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
        )
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
        let args = command(ProxyKind::Envoy, &programs(), &the_node(), dir.path()).unwrap();
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
        let args = command(ProxyKind::Trellis, &programs(), &the_node(), dir.path()).unwrap();
        let line = args.join(" ");
        assert_eq!(
            line,
            "/bin/trellis proxy --xds-address 10.241.0.1:15010 --name reviews-v1 --namespace \
             default --service-account bookinfo-reviews --ip 10.241.0.2 --admin-port 15000 \
             --labels app=reviews,version=v1 --dns-address 127.0.0.1:15053"
        );
    }
}
