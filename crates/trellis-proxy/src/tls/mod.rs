//! Mutual TLS, as Envoy's TLS transport socket does it for Istio: [`config`] is what a TLS
//! context asks for (converted from xDS in [`crate::convert::tls`]), [`secrets`] the
//! workload identity the contexts name (`default`, `ROOTCA`), [`verify`] the peer checks,
//! [`server`] terminates TLS on a filter chain and [`client`] originates it to an upstream;
//! [`failures`] keeps their failed handshakes from flooding the log.
//! rustls with aws-lc-rs; key exchange X25519MLKEM768 first, then X25519 and P-256.

pub mod client;
pub mod config;
pub mod failures;
pub mod secrets;
pub mod server;
pub mod verify;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedProtocolVersion};

use config::{CommonTls, Version};

/// Why a TLS configuration cannot be built now.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no workload certificate yet (SDS secret `default`)")]
    NoIdentity,
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The protocol versions between the context's bounds.
fn versions(c: &CommonTls) -> Vec<&'static SupportedProtocolVersion> {
    let mut out = Vec::new();
    if c.min <= Version::Tls13 && c.max >= Version::Tls13 {
        out.push(&rustls::version::TLS13);
    }
    if c.min <= Version::Tls12 && c.max >= Version::Tls12 {
        out.push(&rustls::version::TLS12);
    }
    out
}

/// The provider with the context's TLS 1.2 cipher suites (by their OpenSSL names, as Envoy
/// takes them; names rustls does not implement, such as the non-ECDHE ones of Istio's list,
/// are left out). TLS 1.3 suites are always all there.
fn provider(c: &CommonTls) -> Arc<CryptoProvider> {
    let base = secrets::provider();
    if c.cipher_suites.is_empty() {
        return base;
    }
    let wanted: Vec<CipherSuite> = c
        .cipher_suites
        .iter()
        .filter_map(|n| openssl_suite(n))
        .collect();
    let mut p = (*base).clone();
    p.cipher_suites
        .retain(|s| s.tls13().is_some() || wanted.contains(&s.suite()));
    Arc::new(p)
}

fn openssl_suite(name: &str) -> Option<CipherSuite> {
    Some(match name {
        "ECDHE-ECDSA-AES256-GCM-SHA384" => CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-RSA-AES256-GCM-SHA384" => CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-ECDSA-AES128-GCM-SHA256" => CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-RSA-AES128-GCM-SHA256" => CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-ECDSA-CHACHA20-POLY1305" => {
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "ECDHE-RSA-CHACHA20-POLY1305" => CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        _ => return None,
    })
}

/// ALPN names as rustls takes them.
fn alpn(names: &[String]) -> Vec<Vec<u8>> {
    names.iter().map(|n| n.as_bytes().to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(min: Version, max: Version, suites: &[&str]) -> CommonTls {
        CommonTls {
            min,
            max,
            cipher_suites: suites.iter().map(|s| s.to_string()).collect(),
            alpn: vec![],
            sans: vec![],
        }
    }

    #[test]
    fn versions_follow_the_bounds() {
        let both = versions(&common(Version::Tls12, Version::Tls13, &[]));
        assert_eq!(both.len(), 2);
        let only13 = versions(&common(Version::Tls13, Version::Tls13, &[]));
        assert_eq!(only13.len(), 1);
        assert_eq!(only13[0].version, rustls::ProtocolVersion::TLSv1_3);
    }

    #[test]
    fn istios_cipher_list_keeps_the_ecdhe_gcm_suites() {
        let istio = [
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "AES256-GCM-SHA384",
            "AES128-GCM-SHA256",
        ];
        let p = provider(&common(Version::Tls12, Version::Tls13, &istio));
        let tls12: Vec<_> = p
            .cipher_suites
            .iter()
            .filter(|s| s.tls13().is_none())
            .map(|s| s.suite())
            .collect();
        assert_eq!(tls12.len(), 4, "{tls12:?}");
        assert!(!tls12.contains(&CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256));
        assert!(p.cipher_suites.iter().any(|s| s.tls13().is_some()));
    }
}
