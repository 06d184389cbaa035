//! The CA client: make a key (it never leaves this process), ask the CA to certify it for
//! a SPIFFE id with `CreateCertificate`, and hold the result as a [`WorkloadIdentity`].
//!
//! The caller proves who it is with a bootstrap token (`authorization: Bearer ...`), or,
//! over TLS, with the identity it already holds as its client certificate (renewal).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::pb::{self, IstioCertificateRequest};
use crate::pem::{self, PemError};
use crate::spiffe::SpiffeId;

/// The name the control plane's TLS certificate carries, as istiod's does.
pub const CA_SERVER_NAME: &str = "istiod.istio-system.svc";

/// A certified key: what TLS acceptors and connectors serve and check with.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkloadIdentity {
    pub id: SpiffeId,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The leaf, then intermediates (what a TLS peer is sent), PEM.
    pub chain_pem: String,
    /// Every trusted root (the trust bundle), PEM.
    pub roots_pem: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// When the CA's answer arrived. CAs backdate `not_before` for clock skew; the
    /// lifetime that counts for renewal starts at the later of the two.
    pub received: SystemTime,
}

impl std::fmt::Debug for WorkloadIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadIdentity")
            .field("id", &self.id.uri())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl WorkloadIdentity {
    /// When to renew: half-way through the lifetime, less up to `jitter` of the lifetime
    /// (so that workloads started together do not renew together).
    pub fn renew_at(&self, jitter: f64) -> SystemTime {
        let start = self.not_before.max(self.received);
        let life = self.not_after.duration_since(start).unwrap_or_default();
        let jitter = jitter.clamp(0.0, 0.5);
        start + life.mul_f64(0.5 - jitter)
    }
}

/// Where the CA is and how to prove who we are.
#[derive(Debug, Clone)]
pub struct CaClientConfig {
    /// `http://HOST:15010` (plaintext) or `https://HOST:15012` (TLS).
    pub address: String,
    /// The name to expect on the CA's certificate over TLS.
    pub server_name: String,
    /// Roots to trust the CA's certificate with before we hold an identity (TLS only).
    pub ca_roots_pem: Option<String>,
    /// The bootstrap token, read afresh for every request.
    pub token: Option<TokenSource>,
    /// The lifetime to ask for; the CA may shorten it.
    pub ttl: Duration,
}

impl CaClientConfig {
    /// Plaintext to `address` with a token, asking for Istio's 24 h.
    pub fn new(address: impl Into<String>, token: Option<TokenSource>) -> Self {
        CaClientConfig {
            address: address.into(),
            server_name: CA_SERVER_NAME.to_string(),
            ca_roots_pem: None,
            token,
            ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Where the bootstrap token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    Value(String),
    /// A file (re-read each time, so whoever writes it can refresh it).
    File(PathBuf),
}

impl TokenSource {
    fn read(&self) -> Result<String, ClientError> {
        match self {
            TokenSource::Value(token) => Ok(token.clone()),
            TokenSource::File(path) => std::fs::read_to_string(path)
                .map(|t| t.trim().to_string())
                .map_err(|e| ClientError::Token(format!("{}: {e}", path.display()))),
        }
    }
}

/// Why no certificate came back.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot make a key or CSR: {0}")]
    Key(#[from] rcgen::Error),
    #[error("cannot read the bootstrap token: {0}")]
    Token(String),
    #[error("bad CA address {address:?}: {message}")]
    Address { address: String, message: String },
    #[error("CA refused: {} ({})", .0.message(), .0.code())]
    Refused(tonic::Status),
    #[error("CA unreachable: {0}")]
    Connect(String),
    #[error("CA answered with an unusable certificate chain: {0}")]
    Chain(String),
}

impl ClientError {
    /// True when trying again later may succeed (the CA is away), false when the CA said
    /// no or the request itself is wrong.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Connect(_) => true,
            ClientError::Refused(status) => matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
            ),
            _ => false,
        }
    }
}

impl From<PemError> for ClientError {
    fn from(e: PemError) -> Self {
        ClientError::Chain(e.to_string())
    }
}

/// A fresh P-256 key and a PEM CSR for `id` (its only SAN, no subject).
pub fn key_and_csr(id: &SpiffeId) -> Result<(KeyPair, String), rcgen::Error> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(id.uri().try_into()?)];
    let csr = params.serialize_request(&key)?.pem()?;
    Ok((key, csr))
}

/// Gets a certificate for `id` from the CA; `current`, if any, is presented as the TLS
/// client certificate (renewal over 15012).
pub async fn request_identity(
    config: &CaClientConfig,
    id: &SpiffeId,
    current: Option<&WorkloadIdentity>,
) -> Result<WorkloadIdentity, ClientError> {
    let (key, csr) = key_and_csr(id)?;
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr,
        validity_duration: i64::try_from(config.ttl.as_secs()).unwrap_or(i64::MAX),
        metadata: None,
    });
    if let Some(source) = &config.token {
        let token = source.read()?;
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| ClientError::Token("not a valid header value".into()))?;
        request.metadata_mut().insert("authorization", value);
    }
    let channel = connect(config, current).await?;
    let response = pb::create_certificate(channel, request)
        .await
        .map_err(ClientError::Refused)?;
    identity_from_chain(id, key.serialize_pem(), &response.cert_chain)
}

/// A [`WorkloadIdentity`] from `CreateCertificate`'s answer, checked: a leaf for `id`,
/// and a trust bundle last.
pub fn identity_from_chain(
    id: &SpiffeId,
    key_pem: String,
    cert_chain: &[String],
) -> Result<WorkloadIdentity, ClientError> {
    let [first, middle @ .., last] = cert_chain else {
        return Err(ClientError::Chain(format!(
            "{} element(s); needs a leaf and a root",
            cert_chain.len()
        )));
    };
    let leaf = pem::certificates(first)?;
    let Some(leaf_der) = leaf.first() else {
        return Err(ClientError::Chain("no leaf".into()));
    };
    let cert = pem::parse(leaf_der)?;
    let got = pem::spiffe_id(&cert);
    if got.as_ref() != Some(id) {
        return Err(ClientError::Chain(format!(
            "the leaf is for {got:?}, not {id}"
        )));
    }
    let (not_before, not_after) = pem::validity(&cert);
    let mut chain_pem = pem::to_pem(leaf_der);
    for element in middle {
        for der in pem::certificates(element)? {
            chain_pem.push_str(&pem::to_pem(&der));
        }
    }
    let roots_pem: String = pem::certificates(last)?
        .iter()
        .map(|der| pem::to_pem(der))
        .collect();
    Ok(WorkloadIdentity {
        id: id.clone(),
        key_pem,
        chain_pem,
        roots_pem,
        not_before,
        not_after,
        received: SystemTime::now(),
    })
}

async fn connect(
    config: &CaClientConfig,
    current: Option<&WorkloadIdentity>,
) -> Result<Channel, ClientError> {
    let bad_address = |message: String| ClientError::Address {
        address: config.address.clone(),
        message,
    };
    let mut endpoint = Endpoint::from_shared(config.address.clone())
        .map_err(|e| bad_address(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    if config.address.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().domain_name(config.server_name.clone());
        let roots = current
            .map(|c| c.roots_pem.clone())
            .or_else(|| config.ca_roots_pem.clone())
            .ok_or_else(|| bad_address("TLS needs the CA's root (--ca-root)".into()))?;
        tls = tls.ca_certificate(Certificate::from_pem(roots));
        if let Some(current) = current {
            tls = tls.identity(Identity::from_pem(&current.chain_pem, &current.key_pem));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| bad_address(e.to_string()))?;
    }
    endpoint
        .connect()
        .await
        .map_err(|e| ClientError::Connect(format!("{}: {e}", config.address)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csr_carries_exactly_the_spiffe_uri() {
        let id = SpiffeId::new("cluster.local", "default", "reviews").unwrap();
        let (_, csr) = key_and_csr(&id).unwrap();
        let parsed = rcgen::CertificateSigningRequestParams::from_pem(&csr).unwrap();
        assert_eq!(
            parsed.params.subject_alt_names,
            vec![SanType::URI(id.uri().try_into().unwrap())]
        );
    }

    #[test]
    fn renewal_is_due_at_half_life_less_jitter() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let identity = WorkloadIdentity {
            id: SpiffeId::new("cluster.local", "a", "b").unwrap(),
            key_pem: String::new(),
            chain_pem: String::new(),
            roots_pem: String::new(),
            not_before: start,
            not_after: start + Duration::from_secs(100),
            received: start,
        };
        assert_eq!(identity.renew_at(0.0), start + Duration::from_secs(50));
        assert_eq!(identity.renew_at(0.1), start + Duration::from_secs(40));
        assert_eq!(identity.renew_at(9.0), start);
        // A backdated certificate: the half-life counts from its arrival.
        let backdated = WorkloadIdentity {
            not_before: start - Duration::from_secs(60),
            ..identity
        };
        assert_eq!(backdated.renew_at(0.0), start + Duration::from_secs(50));
    }

    #[test]
    fn short_or_foreign_chains_are_refused() {
        let id = SpiffeId::new("cluster.local", "a", "b").unwrap();
        assert!(identity_from_chain(&id, String::new(), &[]).is_err());
        assert!(identity_from_chain(&id, String::new(), &["junk".into()]).is_err());
        assert!(identity_from_chain(&id, String::new(), &["junk".into(), "junk".into()]).is_err());
    }
}
