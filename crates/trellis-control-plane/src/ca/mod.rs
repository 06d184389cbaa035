//! The certificate authority: workload identity for the mesh, as istiod's CA provides it.
//!
//! - [`store`]: the state directory (self-signed root created on first start, token key)
//!   and Istio's `cacerts` layout for a plugged-in CA; root rotation.
//! - [`authority`]: the loaded CA; issues workload certificates (one SPIFFE URI SAN, 24 h
//!   by default) and the control plane's serving certificate.
//! - [`csr`]: what a CSR may ask for (only the caller's own identity).
//! - [`auth`]: who is calling (bootstrap tokens, client certificates; the
//!   [`auth::Authenticator`] trait for more).
//! - [`service`]: `istio.v1.auth.IstioCertificateService/CreateCertificate`.
//!
//! [`Ca::open`] puts these together for the control plane.

pub mod auth;
pub mod authority;
pub mod csr;
pub mod service;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use auth::{Authenticator, ClientCertAuthenticator, TokenAuthenticator};
use authority::Authority;
use service::CaService;
use store::StoreError;
use trellis_identity::pb::CertificateServiceServer;

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
    pub fn service(&self) -> Result<CertificateServiceServer<CaService>, StoreError> {
        let key = store::token_key(&self.state_dir)?;
        let authenticators: Vec<Arc<dyn Authenticator>> = vec![
            Arc::new(ClientCertAuthenticator),
            Arc::new(TokenAuthenticator::new(key)),
        ];
        Ok(CertificateServiceServer::new(CaService::new(
            self.authority.clone(),
            authenticators,
            self.trust_domain.clone(),
        )))
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}

#[cfg(test)]
mod tests;
