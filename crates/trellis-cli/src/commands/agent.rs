//! `trellis agent`: Istio's pilot-agent for a stock Envoy — get the workload certificate
//! from the CA, serve it to Envoy over SDS (`default`, `ROOTCA`) on a Unix socket, write
//! the bootstrap (with the `sds-grpc` cluster) and run Envoy; exit with Envoy's status.
//! With `--dns-address`, also proxy the workload's DNS (Istio's DNS proxying).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use trellis_control_plane::bootstrap::envoy_bootstrap;
use trellis_identity::agent::{self, AgentDns, AgentOptions};
use trellis_identity::client::{CaClientConfig, TokenSource};
use trellis_identity::spiffe::{DEFAULT_TRUST_DOMAIN, SpiffeId};

use super::node::NodeArgs;

/// The environment variable that may carry the bootstrap token.
const TOKEN_ENV: &str = "TRELLIS_CA_TOKEN";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    node: NodeArgs,
    /// The CA: `http://HOST:15010` or `https://HOST:15012`; the xDS address over plaintext
    /// when absent.
    #[arg(long)]
    ca_address: Option<String>,
    /// A file holding the bootstrap token (else $TRELLIS_CA_TOKEN).
    #[arg(long, value_name = "FILE")]
    ca_token_file: Option<PathBuf>,
    /// PEM roots to trust the CA's TLS certificate with (https CA addresses).
    #[arg(long, value_name = "FILE")]
    ca_root: Option<PathBuf>,
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,
    /// The certificate lifetime to ask for (Istio's SECRET_TTL); renewed at half-life.
    #[arg(long, default_value = "24h")]
    cert_ttl: trellis_api::Duration,
    /// Where to serve SDS (Istio's path, relative to the working directory).
    #[arg(long, default_value = "./var/run/secrets/workload-spiffe-uds/socket")]
    sds_socket: PathBuf,
    /// Where to write Envoy's bootstrap.
    #[arg(long, default_value = "./envoy-rev.json")]
    bootstrap_out: PathBuf,
    /// The Envoy binary.
    #[arg(long, default_value = "envoy")]
    envoy: PathBuf,
    /// Use incremental xDS (DELTA_GRPC) instead of state of the world.
    #[arg(long)]
    delta: bool,
    /// Proxy the workload's DNS here, as pilot-agent does on 127.0.0.1:15053 (capture
    /// sends the pod's port 53 there): mesh host names answered from the control plane's
    /// name table, anything else NXDOMAIN. Off when absent.
    #[arg(long, value_name = "ADDRESS")]
    dns_address: Option<std::net::SocketAddr>,
    /// Further Envoy arguments (after `--`).
    #[arg(last = true)]
    envoy_args: Vec<String>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut node = args.node.options("envoy", args.delta)?;
    node.sds_socket = Some(args.sds_socket.clone());
    let id = SpiffeId::new(&args.trust_domain, &node.namespace, &node.service_account)?;
    let bootstrap = envoy_bootstrap(&node);
    let token = match (&args.ca_token_file, std::env::var(TOKEN_ENV)) {
        (Some(file), _) => Some(TokenSource::File(file.clone())),
        (None, Ok(token)) => Some(TokenSource::Value(token)),
        (None, Err(_)) => None,
    };
    let address = args
        .ca_address
        .clone()
        .unwrap_or_else(|| format!("http://{}", args.node.xds_address()));
    let mut ca = CaClientConfig::new(address, token);
    anyhow::ensure!(
        !args.cert_ttl.is_negative(),
        "--cert-ttl must not be negative"
    );
    ca.ttl = args.cert_ttl.to_std();
    if let Some(path) = &args.ca_root {
        ca.ca_roots_pem = Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        );
    }
    let options = AgentOptions {
        ca,
        id,
        sds_socket: args.sds_socket.clone(),
        bootstrap: serde_json::to_string_pretty(&bootstrap)?,
        bootstrap_path: args.bootstrap_out.clone(),
        envoy: args.envoy.clone(),
        envoy_args: args.envoy_args.clone(),
        dns: args.dns_address.map(|address| AgentDns {
            address,
            xds_address: args.node.xds_address().to_string(),
            node_id: bootstrap["node"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            cluster: bootstrap["node"]["cluster"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let status = runtime.block_on(agent::run(options, super::control_plane::shutdown_signal()))?;
    Ok(exit_code(status))
}

/// Envoy's exit status as ours: its code, or 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
