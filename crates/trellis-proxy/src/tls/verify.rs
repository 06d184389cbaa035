//! Peer certificate checks as Envoy makes them for mesh TLS: the chain must lead to one of
//! the mesh roots, and the leaf must carry a SAN that the context's
//! `match_typed_subject_alt_names` accept. Host names are not checked: mesh SNI
//! (`outbound_.9080_._.reviews...`) names a cluster, and workload certificates carry only
//! their SPIFFE URI.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::config::{SanKind, SanMatcher, Sans, sans_match};
use crate::config::StringMatch;

/// The SANs of a DER certificate; none when it does not parse.
pub fn sans(cert: &CertificateDer<'_>) -> Sans {
    use x509_parser::extensions::GeneralName;
    let mut out = Sans::default();
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return out;
    };
    if let Ok(Some(ext)) = parsed.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::URI(u) => out.uris.push((*u).to_string()),
                GeneralName::DNSName(d) => out.dns.push((*d).to_string()),
                _ => {}
            }
        }
    }
    out
}

/// What the admin `/certs` shows of a certificate, under Envoy's keys: serial (hex), URI
/// SANs, validity (RFC 3339) and whole days left; `None` when it does not parse.
pub fn describe(cert: &CertificateDer<'_>) -> Option<serde_json::Value> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let time = |t: x509_parser::time::ASN1Time| rfc3339(t.timestamp());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = (c.validity().not_after.timestamp() - now).div_euclid(86_400);
    let uris: Vec<serde_json::Value> = sans(cert)
        .uris
        .into_iter()
        .map(|u| serde_json::json!({ "uri": u }))
        .collect();
    Some(serde_json::json!({
        "serial_number": c.raw_serial_as_string().replace(':', ""),
        "subject_alt_names": uris,
        "days_until_expiration": days.to_string(),
        "valid_from": time(c.validity().not_before),
        "expiration_time": time(c.validity().not_after),
    }))
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (the civil calendar from days, after Howard
/// Hinnant's algorithm).
fn rfc3339(secs: i64) -> String {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// A certificate's subject as Envoy prints it (RFC 2253 style; empty for mesh
/// certificates).
pub fn subject(cert: &CertificateDer<'_>) -> String {
    x509_parser::parse_x509_certificate(cert.as_ref())
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_default()
}

/// The lowercase hex SHA-256 of a DER certificate (XFCC's `Hash`).
pub fn sha256_hex(cert: &CertificateDer<'_>) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.as_ref());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a peer's SANs do not pass the matchers, named for the log as far as the SANs and
/// matchers tell: Istio's mesh contexts accept the SPIFFE ids of listed trust domains
/// (prefix `spiffe://<domain>/`) or listed identities (exact).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum SanRefusal {
    /// URI SANs were expected and the certificate has none.
    #[error("peer certificate has no SPIFFE id (no URI subject alt name)")]
    NoSpiffeId,
    /// No matcher names the trust domain of the peer's SPIFFE id.
    #[error(
        "peer identity {id} is not an expected subject alt name: trust domain {trust_domain} is not accepted"
    )]
    TrustDomain { id: String, trust_domain: String },
    #[error("peer identity {0} is not an expected subject alt name")]
    Mismatch(String),
}

/// Why `sans` fail `matchers` (which they do).
fn refusal(matchers: &[SanMatcher], sans: &Sans) -> SanRefusal {
    let uri_matchers: Vec<&StringMatch> = matchers
        .iter()
        .filter(|m| m.kind == SanKind::Uri)
        .map(|m| &m.matcher)
        .collect();
    if sans.uris.is_empty() && !uri_matchers.is_empty() {
        return SanRefusal::NoSpiffeId;
    }
    let id = sans.principal().unwrap_or("(none)").to_string();
    let domain = id
        .strip_prefix("spiffe://")
        .and_then(|rest| rest.split('/').next());
    let names_domain = |domain: &str, m: &StringMatch| match m {
        StringMatch::Exact(v, _) | StringMatch::Prefix(v, _) => v
            .strip_prefix("spiffe://")
            .is_some_and(|rest| rest.split('/').next() == Some(domain)),
        _ => true,
    };
    match domain {
        Some(d) if !uri_matchers.is_empty() && !uri_matchers.iter().any(|m| names_domain(d, m)) => {
            SanRefusal::TrustDomain {
                trust_domain: d.to_string(),
                id,
            }
        }
        _ => SanRefusal::Mismatch(id),
    }
}

fn check_sans(matchers: &[SanMatcher], cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    let sans = sans(cert);
    if sans_match(matchers, &sans) {
        return Ok(());
    }
    let why = refusal(matchers, &sans);
    tracing::warn!(
        expected = ?matchers.iter().map(|m| &m.matcher).collect::<Vec<_>>(),
        "peer certificate refused: {why}"
    );
    Err(rustls::Error::InvalidCertificate(CertificateError::Other(
        OtherError(Arc::new(why)),
    )))
}

/// The roots of a trust bundle; a root that does not parse is skipped.
pub fn root_store(roots: &[CertificateDer<'static>]) -> RootCertStore {
    let mut store = RootCertStore::empty();
    let (_added, _ignored) = store.add_parsable_certificates(roots.iter().cloned());
    store
}

/// The client side's check of the server.
#[derive(Debug)]
pub struct ServerVerifier {
    roots: Arc<RootCertStore>,
    sans: Vec<SanMatcher>,
    provider: Arc<CryptoProvider>,
}

impl ServerVerifier {
    pub fn new(
        roots: Arc<RootCertStore>,
        sans: Vec<SanMatcher>,
        provider: Arc<CryptoProvider>,
    ) -> ServerVerifier {
        ServerVerifier {
            roots,
            sans,
            provider,
        }
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        check_sans(&self.sans, end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The server side's check of the client: rustls' chain verification, then the SANs.
#[derive(Debug)]
pub struct ClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<SanMatcher>,
}

impl ClientVerifier {
    /// A verifier against `roots`; `required`: a client without a certificate is refused.
    pub fn new(
        roots: Arc<RootCertStore>,
        sans: Vec<SanMatcher>,
        required: bool,
        provider: Arc<CryptoProvider>,
    ) -> Result<ClientVerifier, rustls::Error> {
        let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider);
        if !required {
            builder = builder.allow_unauthenticated();
        }
        let inner = builder
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        Ok(ClientVerifier { inner, sans })
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_sans(&self.sans, end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(pattern: StringMatch) -> SanMatcher {
        SanMatcher {
            kind: SanKind::Uri,
            matcher: pattern,
        }
    }

    fn with_uris(uris: &[&str]) -> Sans {
        Sans {
            uris: uris.iter().map(|u| u.to_string()).collect(),
            dns: vec!["reviews.example".into()],
        }
    }

    #[test]
    fn refusals_name_a_missing_spiffe_id_and_a_foreign_trust_domain() {
        let mesh = [
            uri(StringMatch::Prefix("spiffe://cluster.local/".into(), false)),
            uri(StringMatch::Prefix("spiffe://old.example/".into(), false)),
        ];
        assert_eq!(refusal(&mesh, &with_uris(&[])), SanRefusal::NoSpiffeId);
        let foreign = "spiffe://other.domain/ns/default/sa/x";
        let why = refusal(&mesh, &with_uris(&[foreign]));
        assert_eq!(
            why,
            SanRefusal::TrustDomain {
                id: foreign.into(),
                trust_domain: "other.domain".into()
            }
        );
        assert!(
            why.to_string().contains("trust domain other.domain"),
            "{why}"
        );
        // Another identity of an accepted trust domain is a plain mismatch.
        let exact = [uri(StringMatch::Exact(
            "spiffe://cluster.local/ns/default/sa/reviews".into(),
            false,
        ))];
        let other = "spiffe://cluster.local/ns/default/sa/ratings";
        assert_eq!(
            refusal(&exact, &with_uris(&[other])),
            SanRefusal::Mismatch(other.into())
        );
        // Only DNS matchers: no SPIFFE id is expected, the DNS name is reported.
        let dns = [SanMatcher {
            kind: SanKind::Dns,
            matcher: StringMatch::Exact("db.example".into(), false),
        }];
        assert_eq!(
            refusal(&dns, &with_uris(&[])),
            SanRefusal::Mismatch("reviews.example".into())
        );
    }

    #[test]
    fn unix_times_print_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_484_645), "2026-11-24T01:44:05Z");
    }
}
