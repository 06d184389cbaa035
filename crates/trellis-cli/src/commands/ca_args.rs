//! The flags that say how a proxy gets its workload certificate from the CA, shared by
//! `trellis agent` (which serves it to Envoy over SDS) and `trellis proxy` (which uses it
//! itself): the CA's address, the bootstrap token, the CA's roots, the trust domain and the
//! certificate lifetime.

use std::path::PathBuf;

use anyhow::Context;
use trellis_identity::client::{CaClientConfig, TokenSource};
use trellis_identity::spiffe::{DEFAULT_TRUST_DOMAIN, SpiffeId};

/// The environment variable that may carry the bootstrap token.
pub const TOKEN_ENV: &str = "TRELLIS_CA_TOKEN";

#[derive(Debug, clap::Args)]
pub struct CaArgs {
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
}

impl CaArgs {
    /// The bootstrap token's source: the file, else the environment.
    pub fn token(&self) -> Option<TokenSource> {
        match (&self.ca_token_file, std::env::var(TOKEN_ENV)) {
            (Some(file), _) => Some(TokenSource::File(file.clone())),
            (None, Ok(token)) => Some(TokenSource::Value(token)),
            (None, Err(_)) => None,
        }
    }

    /// The CA client these flags describe; `xds_address` (HOST:PORT) is the CA when no
    /// `--ca-address` is given.
    pub fn client(&self, xds_address: &str) -> anyhow::Result<CaClientConfig> {
        let address = self
            .ca_address
            .clone()
            .unwrap_or_else(|| format!("http://{xds_address}"));
        let mut ca = CaClientConfig::new(address, self.token());
        anyhow::ensure!(
            !self.cert_ttl.is_negative(),
            "--cert-ttl must not be negative"
        );
        ca.ttl = self.cert_ttl.to_std();
        if let Some(path) = &self.ca_root {
            ca.ca_roots_pem = Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            );
        }
        Ok(ca)
    }

    /// The workload's SPIFFE id in this trust domain.
    pub fn spiffe_id(&self, namespace: &str, service_account: &str) -> anyhow::Result<SpiffeId> {
        Ok(SpiffeId::new(
            &self.trust_domain,
            namespace,
            service_account,
        )?)
    }
}
