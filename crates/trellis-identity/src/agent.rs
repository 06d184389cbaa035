//! `trellis agent`: what Istio's pilot-agent does for a stock Envoy. It makes the
//! workload's key, gets its certificate from the CA, serves both to Envoy over SDS on a
//! local Unix socket (renewing at half-life and pushing the new secret), writes Envoy's
//! bootstrap and runs Envoy as its child. Envoy dies with the agent, and the agent exits
//! with Envoy's status. With [`AgentDns`] it also proxies the workload's DNS, as
//! pilot-agent does, from a name table it gets on an ADS stream of its own
//! ([`trellis_dns::client`]).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;

use tokio::sync::watch;

use crate::client::{CaClientConfig, ClientError};
use crate::manager;
use crate::sds::Sds;
use crate::spiffe::SpiffeId;

/// What the agent runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub ca: CaClientConfig,
    pub id: SpiffeId,
    /// Where SDS listens (Istio: `./var/run/secrets/workload-spiffe-uds/socket`).
    pub sds_socket: PathBuf,
    /// The Envoy bootstrap (JSON) and where to write it.
    pub bootstrap: String,
    pub bootstrap_path: PathBuf,
    pub envoy: PathBuf,
    /// Extra Envoy arguments after `-c BOOTSTRAP`.
    pub envoy_args: Vec<String>,
    /// The DNS proxy, if the agent runs one.
    pub dns: Option<AgentDns>,
}

/// The agent's DNS proxy: where it listens, and where and as whom it asks for the name
/// table.
#[derive(Debug, Clone)]
pub struct AgentDns {
    /// Istio's `127.0.0.1:15053`.
    pub address: SocketAddr,
    /// The control plane, `host:port` (plaintext xDS).
    pub xds_address: String,
    /// Envoy's node id and cluster: the table is the one Envoy's proxy would see.
    pub node_id: String,
    pub cluster: String,
}

/// Why the agent could not run Envoy.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot get the workload certificate: {0}")]
    Identity(#[from] ClientError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> AgentError {
    move |source| AgentError::Io { what, source }
}

/// Runs until Envoy exits (its status is returned) or `shutdown` completes (Envoy is sent
/// SIGTERM and awaited).
pub async fn run(
    options: AgentOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<ExitStatus, AgentError> {
    let dns = match &options.dns {
        Some(dns) => Some(start_dns(dns).await?),
        None => None,
    };
    let identity = manager::start(options.ca.clone(), options.id.clone()).await?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let socket = options.sds_socket.clone();
    if let Some(parent) = socket.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
    }
    // Bind before Envoy starts, so its first SDS connection finds the socket.
    let listener = Sds::bind(&socket).map_err(io(format!("listen on {}", socket.display())))?;
    let sds_task = tokio::spawn(Sds::new(identity).serve(listener, async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    std::fs::write(&options.bootstrap_path, &options.bootstrap)
        .map_err(io(format!("write {}", options.bootstrap_path.display())))?;
    let mut command = tokio::process::Command::new(&options.envoy);
    command
        .arg("-c")
        .arg(&options.bootstrap_path)
        .args(&options.envoy_args)
        .kill_on_drop(true);
    die_with_parent(&mut command);
    let mut child = command
        .spawn()
        .map_err(io(format!("start {}", options.envoy.display())))?;
    tracing::info!(id = %options.id, sds = %socket.display(), pid = ?child.id(), "Envoy started");
    tokio::pin!(shutdown);
    let status = tokio::select! {
        status = child.wait() => status,
        () = &mut shutdown => {
            if let Some(pid) = child.id().and_then(|p| rustix::process::Pid::from_raw(p.cast_signed())) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            child.wait().await
        }
    }
    .map_err(io("wait for Envoy".into()))?;
    stop_tx.send_replace(true);
    for task in dns.into_iter().flatten() {
        task.abort();
    }
    let _ = sds_task.await;
    let _ = std::fs::remove_file(&socket);
    Ok(status)
}

/// Binds the DNS proxy and starts its name-table stream; returns both tasks.
async fn start_dns(dns: &AgentDns) -> Result<[tokio::task::JoinHandle<()>; 2], AgentError> {
    let scope =
        trellis_dns::ProxyScope::from_node_id(&dns.node_id).ok_or_else(|| AgentError::Io {
            what: format!("node id {:?}", dns.node_id),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no namespace for the DNS proxy",
            ),
        })?;
    let names = trellis_dns::Names::new(scope);
    let server = trellis_dns::DnsServer::bind(dns.address)
        .await
        .map_err(io(format!("listen for DNS on {}", dns.address)))?;
    tracing::info!(address = %dns.address, "DNS proxy started");
    let node = trellis_dns::client::node(&dns.node_id, &dns.cluster);
    Ok([
        tokio::spawn(server.run(names.clone())),
        tokio::spawn(trellis_dns::client::watch(
            dns.xds_address.clone(),
            node,
            names,
        )),
    ])
}

/// Envoy gets SIGKILL when the agent dies, even by SIGKILL (as pilot-agent sets
/// `Pdeathsig`). The signal follows the thread that forked, so callers drive [`run`] on a
/// thread that lives as long as the agent (`block_on`), not in a spawned task.
fn die_with_parent(command: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and only makes one prctl
    // system call, which is async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
}
