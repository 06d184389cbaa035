//! `trellis control-plane`: watch a directory of Istio YAML and serve Envoy xDS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use trellis_control_plane::runtime::{self, Options};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of configuration (YAML/JSON), watched for changes.
    #[arg(long, value_name = "DIR")]
    config_dir: PathBuf,
    /// Address of the xDS (ADS) gRPC server.
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds_address: SocketAddr,
    /// Address of the debug and metrics HTTP server.
    #[arg(long, default_value = "127.0.0.1:15014")]
    debug_address: SocketAddr,
    /// Namespace for objects that do not name one.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Address of xDS + CA over TLS (Istio's 15012; the CA issues the serving
    /// certificate for istiod.istio-system.svc). Off when absent.
    #[arg(long, value_name = "ADDRESS")]
    secure_xds_address: Option<SocketAddr>,
    /// Where the CA keeps its self-signed root and the bootstrap-token key (created on
    /// first start). Default: $XDG_STATE_HOME/trellis, else ~/.local/state/trellis.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Sign with a plugged-in CA: a directory in Istio's cacerts layout (ca-cert.pem,
    /// ca-key.pem, root-cert.pem, cert-chain.pem).
    #[arg(long, value_name = "DIR")]
    cacerts: Option<PathBuf>,
    /// MeshConfig file (the `mesh` key of Istio's `istio` ConfigMap).
    #[arg(long, value_name = "FILE")]
    mesh_config: Option<PathBuf>,
}

/// Runs until SIGINT or SIGTERM.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.config_dir.is_dir(),
        "--config-dir {} is not a directory",
        args.config_dir.display()
    );
    let mut options = Options::new(args.config_dir.clone());
    options.xds_address = args.xds_address;
    options.debug_address = args.debug_address;
    options.namespace = args.namespace.clone();
    options.secure_xds_address = args.secure_xds_address;
    options.cacerts = args.cacerts.clone();
    if let Some(dir) = &args.state_dir {
        options.state_dir = dir.clone();
    }
    if let Some(path) = &args.mesh_config {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mesh = trellis_api::decode_mesh_config(&path.display().to_string(), &bytes)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        // Istio's rules; a bad value is reported and translation falls back to Istio's
        // default for it (an access-log format, for one), the rest applies.
        for finding in trellis_config::validate::validate_mesh_config(&mesh) {
            tracing::warn!(file = %path.display(), "mesh config {finding}");
        }
        options.mesh_config = Arc::new(mesh);
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(runtime::run(options, shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
