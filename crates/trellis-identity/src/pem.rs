//! PEM and X.509 helpers the CA and its clients share: splitting bundles into certificates,
//! reading a certificate's validity and its SPIFFE URI.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::spiffe::SpiffeId;

/// Why certificate material is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("no certificate in the PEM text")]
    Empty,
    #[error("bad PEM: {0}")]
    Pem(String),
    #[error("bad certificate: {0}")]
    Certificate(String),
}

/// Every certificate in a PEM text, in order.
pub fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(PemError::Empty);
    }
    Ok(certs)
}

/// A DER certificate as PEM text.
pub fn to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Parses a DER certificate.
pub fn parse(der: &[u8]) -> Result<X509Certificate<'_>, PemError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| PemError::Certificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(PemError::Certificate("trailing bytes".into()));
    }
    Ok(cert)
}

/// A certificate's validity window.
pub fn validity(cert: &X509Certificate<'_>) -> (SystemTime, SystemTime) {
    let at = |t: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    (
        at(cert.validity().not_before.timestamp()),
        at(cert.validity().not_after.timestamp()),
    )
}

/// The URI SANs of a certificate.
pub fn uri_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some(uri.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The SPIFFE id of a workload certificate: its one URI SAN, parsed.
pub fn spiffe_id(cert: &X509Certificate<'_>) -> Option<SpiffeId> {
    match uri_sans(cert).as_slice() {
        [uri] => uri.parse().ok(),
        _ => None,
    }
}
