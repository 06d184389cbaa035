//! The signing authority: a CA key and certificate, the intermediates between it and a
//! root, and the trust bundle (every root workloads should trust). It issues workload
//! certificates (one SPIFFE URI SAN, not a CA, digitalSignature + keyEncipherment,
//! serverAuth + clientAuth) and the control plane's own serving certificate.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;
use trellis_identity::pem;
use trellis_identity::spiffe::SpiffeId;

/// Istio's default workload certificate lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// The longest lifetime a workload may ask for (Istio's default maximum is 90 days).
pub const MAX_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// Certificates start a little in the past, for peers whose clocks lag.
const BACKDATE: Duration = Duration::from_secs(60);

/// Why the CA material cannot be used or a certificate cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot sign: {0}")]
    Sign(#[from] rcgen::Error),
    #[error(transparent)]
    Pem(#[from] pem::PemError),
}

/// The CA's material as PEM, the shape of Istio's `cacerts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    pub ca_cert: String,
    pub ca_key: String,
    /// `cert-chain.pem`: the CA certificate and what is above it (roots are dropped).
    pub cert_chain: String,
    /// `root-cert.pem`: every trusted root.
    pub root_cert: String,
}

/// A loaded, checked CA.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    /// PEM certificates between a leaf and the root: the CA certificate itself unless it
    /// is a root, then any further intermediates.
    intermediates: Vec<String>,
    /// All trusted roots, PEM.
    bundle: String,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("intermediates", &self.intermediates.len())
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Checks and loads CA material: the key must match the CA certificate, the CA
    /// certificate must be a CA, and its chain must end at one of the roots.
    pub fn load(files: &CaFiles) -> Result<Authority, AuthorityError> {
        let invalid = |m: String| AuthorityError::Invalid(m);
        let key =
            KeyPair::from_pem(&files.ca_key).map_err(|e| invalid(format!("ca-key.pem: {e}")))?;
        let ca_der = pem::certificates(&files.ca_cert)?
            .into_iter()
            .next()
            .ok_or_else(|| invalid("ca-cert.pem holds no certificate".into()))?;
        let ca = pem::parse(&ca_der)?;
        if ca.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(invalid("ca-key.pem does not belong to ca-cert.pem".into()));
        }
        if !ca.is_ca() {
            return Err(invalid("ca-cert.pem is not a CA certificate".into()));
        }
        let roots = pem::certificates(&files.root_cert)?;
        let mut chain = vec![ca_der.clone()];
        if !files.cert_chain.trim().is_empty() {
            for der in pem::certificates(&files.cert_chain)? {
                if der != ca_der {
                    chain.push(der);
                }
            }
        }
        // Leaves get every non-root link; the top one must be signed by a trusted root.
        let mut intermediates = Vec::new();
        for der in &chain {
            if !is_self_signed(der)? {
                intermediates.push(pem::to_pem(der));
            }
        }
        let top = chain.last().unwrap_or(&ca_der);
        if !signed_by_any(top, &roots)? {
            return Err(invalid(
                "the CA's chain does not end at any root in root-cert.pem".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&ca_der, key)
            .map_err(|e| invalid(format!("ca-cert.pem: {e}")))?;
        let bundle = roots.iter().map(|d| pem::to_pem(d)).collect();
        Ok(Authority {
            issuer,
            intermediates,
            bundle,
        })
    }

    /// When the first root of the bundle (the signer's, for a self-signed CA) expires, in
    /// Unix seconds; 0 if unknown.
    pub fn root_expiry(&self) -> i64 {
        pem::certificates(&self.bundle)
            .ok()
            .and_then(|roots| roots.into_iter().next())
            .and_then(|der| {
                pem::parse(&der)
                    .ok()
                    .map(|c| c.validity().not_after.timestamp())
            })
            .unwrap_or(0)
    }

    /// The trust bundle: every trusted root, PEM.
    pub fn bundle(&self) -> &str {
        &self.bundle
    }

    /// A workload certificate for `id` on `public_key`, living `requested` (zero: the
    /// default) capped at [`MAX_TTL`]. Returns the chain as `CreateCertificate` sends it:
    /// leaf, intermediates, trust bundle.
    pub fn issue_workload(
        &self,
        id: &SpiffeId,
        public_key: rcgen::PublicKey,
        requested: Duration,
        now: SystemTime,
    ) -> Result<Vec<String>, AuthorityError> {
        let ttl = if requested.is_zero() {
            DEFAULT_TTL
        } else {
            requested.min(MAX_TTL)
        };
        let mut params = leaf_params(now, ttl)?;
        params.subject_alt_names = vec![SanType::URI(id.uri().try_into()?)];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let leaf =
            CertificateSigningRequestParams { params, public_key }.signed_by(&self.issuer)?;
        Ok(self.chain_with(leaf.pem()))
    }

    /// A serving certificate (server auth, DNS names) and its fresh key, as PEM
    /// (chain with intermediates, key).
    pub fn issue_server(
        &self,
        dns_names: &[&str],
        ttl: Duration,
        now: SystemTime,
    ) -> Result<(String, String), AuthorityError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = leaf_params(now, ttl)?;
        for name in dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName((*name).try_into()?));
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        let mut chain = cert.pem();
        for pem in &self.intermediates {
            chain.push_str(pem);
        }
        Ok((chain, key.serialize_pem()))
    }

    fn chain_with(&self, leaf: String) -> Vec<String> {
        let mut chain = Vec::with_capacity(self.intermediates.len() + 2);
        chain.push(leaf);
        chain.extend(self.intermediates.iter().cloned());
        chain.push(self.bundle.clone());
        chain
    }
}

/// A new self-signed root for `trust_domain`, valid `ttl` from `now`.
pub fn new_root(
    trust_domain: &str,
    ttl: Duration,
    now: SystemTime,
) -> Result<CaFiles, AuthorityError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let start = offset(now);
    params.not_before = start;
    params.not_after = offset(now + ttl);
    params.serial_number = Some(random_serial()?);
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, trust_domain);
    params.distinguished_name.push(
        DnType::CommonName,
        format!("Trellis root CA {}", start.unix_timestamp()),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    let pem = cert.pem();
    Ok(CaFiles {
        ca_cert: pem.clone(),
        ca_key: key.serialize_pem(),
        cert_chain: pem.clone(),
        root_cert: pem,
    })
}

fn leaf_params(now: SystemTime, ttl: Duration) -> Result<CertificateParams, AuthorityError> {
    let mut params = CertificateParams::default();
    params.not_before = offset(now - BACKDATE);
    params.not_after = offset(now + ttl);
    params.serial_number = Some(random_serial()?);
    params.distinguished_name = DistinguishedName::new();
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn offset(at: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(at)
}

/// 128 random bits, positive.
fn random_serial() -> Result<SerialNumber, AuthorityError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| AuthorityError::Invalid("no randomness".into()))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn is_self_signed(der: &[u8]) -> Result<bool, AuthorityError> {
    let cert = pem::parse(der)?;
    Ok(cert.subject() == cert.issuer() && cert.verify_signature(None).is_ok())
}

fn signed_by_any(
    der: &[u8],
    roots: &[rustls_pki_types::CertificateDer<'static>],
) -> Result<bool, AuthorityError> {
    let cert = pem::parse(der)?;
    for root in roots {
        let root = pem::parse(root)?;
        if cert.issuer() == root.subject() && cert.verify_signature(Some(root.public_key())).is_ok()
        {
            return Ok(true);
        }
    }
    Ok(false)
}
