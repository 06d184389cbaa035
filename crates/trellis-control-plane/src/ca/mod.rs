//! The certificate authority: workload identity for the mesh, as istiod's CA provides it.
//!
//! - [`store`]: the state directory (self-signed root created on first start, token key)
//!   and Istio's `cacerts` layout for a plugged-in CA; root rotation.
//! - [`authority`]: the loaded CA; issues workload certificates (one SPIFFE URI SAN, 24 h
//!   by default) and the control plane's serving certificate.
//! - [`csr`]: what a CSR may ask for (only the caller's own identity).
//! - [`auth`]: who is calling (bootstrap tokens, client certificates; the
//!   [`auth::Authenticator`] trait for more).
//! - [`service`]: serves `istio.v1.auth.IstioCertificateService/CreateCertificate`.
//! - [`metrics`]: istiod's CA metrics (`citadel_server_*`).
//! - [`tls`]: the control plane's own serving certificate for the TLS port (15012).
//!
//! [`Ca::open`] puts these together for the control plane.

pub mod auth;
pub mod authority;
pub mod csr;
pub mod metrics;
pub mod service;
pub mod store;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use auth::{Authenticator, ClientCertAuthenticator, TokenAuthenticator};
use authority::Authority;
use service::CaService;
use store::StoreError;
use trellis_api::istio::mesh::MeshConfig;
use trellis_identity::pb::CertificateServiceServer;
use trellis_identity::spiffe::DEFAULT_TRUST_DOMAIN;

/// A bootstrap token for the workload `namespace`/`service_account`, valid for `ttl`,
/// signed with the key in `state_dir` (created if needed). The local runtime calls this
/// when it starts a workload and hands the token to its proxy or agent
/// (`--ca-token-file`); `trellis token` prints one.
pub fn mint_token(
    state_dir: &Path,
    namespace: &str,
    service_account: &str,
    ttl: std::time::Duration,
) -> Result<String, StoreError> {
    let key = store::token_key(state_dir)?;
    Ok(key.mint(namespace, service_account, ttl, SystemTime::now())?)
}

/// The mesh's trust domain: MeshConfig's `trustDomain`, `cluster.local` when unset.
pub fn trust_domain(mesh: &MeshConfig) -> String {
    if mesh.trust_domain.is_empty() {
        DEFAULT_TRUST_DOMAIN.to_string()
    } else {
        mesh.trust_domain.clone()
    }
}

/// Where the CA's material comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaOptions {
    pub state_dir: PathBuf,
    /// A plugged-in CA in Istio's cacerts layout instead of the self-signed one.
    pub cacerts: Option<PathBuf>,
    pub trust_domain: String,
}

/// The CA of a running control plane.
#[derive(Debug, Clone)]
pub struct Ca {
    pub authority: Arc<Authority>,
    pub trust_domain: String,
    state_dir: PathBuf,
}

impl Ca {
    /// Loads (or on first start creates) the CA.
    pub fn open(options: &CaOptions) -> Result<Ca, StoreError> {
        let files = match &options.cacerts {
            Some(dir) => store::read_cacerts(dir)?,
            None => store::load_or_create_self_signed(
                &options.state_dir,
                &options.trust_domain,
                SystemTime::now(),
            )?,
        };
        let dir = options
            .cacerts
            .clone()
            .unwrap_or_else(|| options.state_dir.join(store::CA_DIR));
        let authority =
            Authority::load(&files).map_err(|source| StoreError::Authority { dir, source })?;
        Ok(Ca {
            authority: Arc::new(authority),
            trust_domain: options.trust_domain.clone(),
            state_dir: options.state_dir.clone(),
        })
    }

    /// The gRPC service, accepting client certificates and the state directory's
    /// bootstrap tokens.
    pub fn service(
        &self,
        metrics: metrics::CaMetrics,
    ) -> Result<CertificateServiceServer<CaService>, StoreError> {
        metrics.root_expiry.set(self.authority.root_expiry());
        let key = store::token_key(&self.state_dir)?;
        let authenticators: Vec<Arc<dyn Authenticator>> = vec![
            Arc::new(ClientCertAuthenticator),
            Arc::new(TokenAuthenticator::new(key)),
        ];
        Ok(CertificateServiceServer::new(CaService::new(
            self.authority.clone(),
            authenticators,
            self.trust_domain.clone(),
            metrics,
        )))
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}

#[cfg(test)]
mod tests;
