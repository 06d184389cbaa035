//! The flags that say who a proxy is, shared by `trellis bootstrap envoy` and
//! `trellis proxy`: a stock Envoy and the Trellis proxy introduce themselves to the control
//! plane identically, so registration and translation cannot tell them apart.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::Context;
use trellis_control_plane::bootstrap::BootstrapOptions;
use trellis_control_plane::proxy::ProxyKind;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    Sidecar,
    Router,
}

#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// Istio node id (`sidecar~IP~NAME.NS~NS.svc.cluster.local`); built from --type, --ip,
    /// --name and --namespace when absent.
    #[arg(long)]
    node_id: Option<String>,
    /// The control plane's xDS address, HOST:PORT.
    #[arg(long)]
    xds_address: String,
    /// The workload's name (pod name); the program's name when absent.
    #[arg(long)]
    name: Option<String>,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[arg(long, default_value = "default")]
    service_account: String,
    /// Workload labels, `k=v,k2=v2`.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// The workload's IP address.
    #[arg(long, default_value = "127.0.0.1")]
    ip: IpAddr,
    /// Port of the proxy's admin interface (on 127.0.0.1).
    #[arg(long, default_value_t = 15000)]
    admin_port: u16,
    #[arg(long = "type", value_enum, default_value = "sidecar")]
    kind: Kind,
}

impl NodeArgs {
    /// The bootstrap options these flags describe; `default_name` names the workload when
    /// `--name` is absent.
    pub fn options(&self, default_name: &str, delta: bool) -> anyhow::Result<BootstrapOptions> {
        let (host, port) = self
            .xds_address
            .rsplit_once(':')
            .context("--xds-address must be HOST:PORT")?;
        let port: u16 = port.parse().context("--xds-address: bad port")?;
        let mut labels = BTreeMap::new();
        for label in self.labels.iter().filter(|l| !l.is_empty()) {
            let (k, v) = label
                .split_once('=')
                .with_context(|| format!("--labels: {label:?} is not k=v"))?;
            labels.insert(k.to_string(), v.to_string());
        }
        Ok(BootstrapOptions {
            node_id: self.node_id.clone(),
            kind: match self.kind {
                Kind::Sidecar => ProxyKind::Sidecar,
                Kind::Router => ProxyKind::Router,
            },
            name: self
                .name
                .clone()
                .unwrap_or_else(|| default_name.to_string()),
            namespace: self.namespace.clone(),
            service_account: self.service_account.clone(),
            labels,
            ip: self.ip,
            xds_host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            xds_port: port,
            admin_port: self.admin_port,
            delta,
            sds_socket: None,
        })
    }

    /// The control plane's xDS address as given.
    pub fn xds_address(&self) -> &str {
        &self.xds_address
    }

    /// The admin port.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// The workload's IP address.
    pub fn ip(&self) -> std::net::IpAddr {
        self.ip
    }
}
