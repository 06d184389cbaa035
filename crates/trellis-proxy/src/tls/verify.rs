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

use super::config::{SanMatcher, Sans, sans_match};

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

/// The peer's identity does not pass the SAN matchers.
#[derive(Debug, thiserror::Error)]
#[error("peer identity {0} is not an expected subject alt name")]
struct SanMismatch(String);

fn check_sans(matchers: &[SanMatcher], cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    let sans = sans(cert);
    if sans_match(matchers, &sans) {
        return Ok(());
    }
    let found = sans.principal().unwrap_or("(none)").to_string();
    tracing::warn!(
        peer = %found,
        expected = ?matchers.iter().map(|m| &m.matcher).collect::<Vec<_>>(),
        "peer certificate refused: {}",
        SanMismatch(found.clone())
    );
    Err(rustls::Error::InvalidCertificate(CertificateError::Other(
        OtherError(Arc::new(SanMismatch(found))),
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
