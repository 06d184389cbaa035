//! Checking a certificate signing request against the identity the caller proved. Only the
//! public key of a CSR is used; everything else in the certificate is the CA's choice. The
//! CSR must be well formed, signed by its own key (proof of possession), and name no one
//! but the caller: exactly one URI SAN equal to the caller's SPIFFE id, or no SAN at all
//! (then the CA fills the id in). DNS, IP or e-mail SANs are refused.

use rcgen::{CertificateSigningRequestParams, SanType};
use trellis_identity::spiffe::SpiffeId;

/// Why a CSR is refused; `Foreign` is a permission problem, the rest are bad arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("the CSR is not valid PEM/PKCS#10: {0}")]
    Malformed(String),
    #[error("the CSR's signature does not verify with its own public key")]
    BadSignature,
    #[error("the CSR asks for {0} subject alternative names; at most one URI SAN is allowed")]
    TooManyNames(usize),
    #[error("the CSR asks for a {0} SAN; only the workload's SPIFFE URI is allowed")]
    NotUri(&'static str),
    #[error("the CSR asks for {requested}, but the caller is {caller}")]
    Foreign { requested: String, caller: String },
}

/// The CSR, reduced to its public key, if it may be signed for `caller`.
pub fn check(pem: &str, caller: &SpiffeId) -> Result<rcgen::PublicKey, CsrError> {
    let parsed = CertificateSigningRequestParams::from_pem(pem).map_err(|e| match e {
        rcgen::Error::InvalidCertificationRequestSignature => CsrError::BadSignature,
        other => CsrError::Malformed(other.to_string()),
    })?;
    match parsed.params.subject_alt_names.as_slice() {
        [] => {}
        [SanType::URI(uri)] => {
            if uri.as_str() != caller.uri() {
                return Err(CsrError::Foreign {
                    requested: uri.as_str().to_string(),
                    caller: caller.uri(),
                });
            }
        }
        [other] => return Err(CsrError::NotUri(san_kind(other))),
        many => return Err(CsrError::TooManyNames(many.len())),
    }
    Ok(parsed.public_key)
}

fn san_kind(san: &SanType) -> &'static str {
    match san {
        SanType::DnsName(_) => "DNS",
        SanType::IpAddress(_) => "IP",
        SanType::Rfc822Name(_) => "e-mail",
        SanType::URI(_) => "URI",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, KeyPair};
    use rustls_pki_types::pem::PemObject;

    fn caller() -> SpiffeId {
        SpiffeId::new("cluster.local", "default", "reviews").unwrap()
    }

    fn csr_with(sans: Vec<SanType>) -> String {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = sans;
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(s.try_into().unwrap())
    }

    #[test]
    fn own_identity_or_no_san_is_accepted() {
        assert!(check(&csr_with(vec![uri(&caller().uri())]), &caller()).is_ok());
        assert!(check(&csr_with(vec![]), &caller()).is_ok());
        let (_, from_client) = trellis_identity::client::key_and_csr(&caller()).unwrap();
        assert!(check(&from_client, &caller()).is_ok());
    }

    #[test]
    fn someone_elses_identity_is_refused() {
        let other = "spiffe://cluster.local/ns/default/sa/admin";
        assert_eq!(
            check(&csr_with(vec![uri(other)]), &caller()),
            Err(CsrError::Foreign {
                requested: other.into(),
                caller: caller().uri()
            })
        );
    }

    #[test]
    fn extra_or_non_uri_names_are_refused() {
        let two = csr_with(vec![uri(&caller().uri()), uri(&caller().uri())]);
        assert_eq!(check(&two, &caller()), Err(CsrError::TooManyNames(2)));
        let dns = csr_with(vec![SanType::DnsName("reviews".try_into().unwrap())]);
        assert_eq!(check(&dns, &caller()), Err(CsrError::NotUri("DNS")));
        let ip = csr_with(vec![SanType::IpAddress("127.0.0.1".parse().unwrap())]);
        assert_eq!(check(&ip, &caller()), Err(CsrError::NotUri("IP")));
    }

    #[test]
    fn garbage_and_forged_signatures_are_refused() {
        for garbage in [
            "",
            "hello",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        ] {
            assert!(
                matches!(check(garbage, &caller()), Err(CsrError::Malformed(_))),
                "{garbage:?}"
            );
        }
        // Flip a bit in the signature (the last bytes of the DER).
        let pem = csr_with(vec![uri(&caller().uri())]);
        let der =
            rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(pem.as_bytes()).unwrap();
        let mut bytes = der.as_ref().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let tampered = pem_of(&bytes);
        assert_eq!(check(&tampered, &caller()), Err(CsrError::BadSignature));
    }

    fn pem_of(der: &[u8]) -> String {
        use base64::Engine;
        format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        )
    }
}
