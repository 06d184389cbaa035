//! The control plane's own TLS on 15012: a serving certificate from its CA for istiod's
//! names (so Istio-configured clients that expect `istiod.istio-system.svc` connect
//! unchanged), and optional client certificates checked against the trust bundle — a
//! workload renewing its certificate proves who it is with the one it holds.

use std::time::{Duration, SystemTime};

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use super::Ca;
use super::store::StoreError;

/// The names on the control plane's serving certificate.
pub const SERVER_NAMES: &[&str] = &[
    "istiod.istio-system.svc",
    "istiod.istio-system.svc.cluster.local",
    "istiod.istio-system",
    "istiod",
    "localhost",
];

/// How long the serving certificate lives. It is issued afresh at every start.
pub const SERVER_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// TLS for the secure xDS + CA port.
pub fn server_config(ca: &Ca) -> Result<ServerTlsConfig, StoreError> {
    let (chain, key) = ca
        .authority
        .issue_server(SERVER_NAMES, SERVER_TTL, SystemTime::now())
        .map_err(|source| StoreError::Authority {
            dir: ca.state_dir().to_path_buf(),
            source,
        })?;
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(chain, key))
        .client_ca_root(Certificate::from_pem(ca.authority.bundle()))
        .client_auth_optional(true))
}
