//! `CreateCertificate`: authenticate the caller, check its CSR names only the caller, and
//! sign. Each refusal carries the gRPC code that says whose fault it is: UNAUTHENTICATED
//! (no or bad credential), INVALID_ARGUMENT (unusable CSR), PERMISSION_DENIED (a CSR for
//! somebody else).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tonic::{Request, Response, Status};
use trellis_identity::pb::{CertificateService, IstioCertificateRequest, IstioCertificateResponse};

use super::auth::{self, Authenticator, Caller};
use super::authority::Authority;
use super::csr::{self, CsrError};
use super::metrics::CaMetrics;

/// The CA as a gRPC service.
pub struct CaService {
    authority: Arc<Authority>,
    authenticators: Vec<Arc<dyn Authenticator>>,
    trust_domain: String,
    metrics: CaMetrics,
}

impl CaService {
    pub fn new(
        authority: Arc<Authority>,
        authenticators: Vec<Arc<dyn Authenticator>>,
        trust_domain: String,
        metrics: CaMetrics,
    ) -> Self {
        CaService {
            authority,
            authenticators,
            trust_domain,
            metrics,
        }
    }
}

impl CertificateService for CaService {
    async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        self.metrics.csrs.inc();
        let caller = Caller::of(&request);
        let id = auth::authenticate(&self.authenticators, &caller, &self.trust_domain)
            .await
            .map_err(|e| {
                self.metrics.authentication_failures.inc();
                tracing::info!(error = %e, "CreateCertificate: unauthenticated");
                Status::unauthenticated(e.to_string())
            })?;
        let body = request.into_inner();
        let public_key = csr::check(&body.csr, &id).map_err(|e| {
            tracing::info!(caller = %id, error = %e, "CreateCertificate: CSR refused");
            match e {
                CsrError::Foreign { .. } => {
                    self.metrics.permission_denied.inc();
                    Status::permission_denied(e.to_string())
                }
                _ => {
                    self.metrics.csr_errors.inc();
                    Status::invalid_argument(e.to_string())
                }
            }
        })?;
        let requested = Duration::from_secs(u64::try_from(body.validity_duration).unwrap_or(0));
        let cert_chain = self
            .authority
            .issue_workload(&id, public_key, requested, SystemTime::now())
            .map_err(|e| Status::internal(format!("cannot sign: {e}")))?;
        self.metrics.issued.inc();
        tracing::info!(caller = %id, "CreateCertificate: issued");
        Ok(Response::new(IstioCertificateResponse { cert_chain }))
    }
}
