//! The proxy's own SDS: the two secrets Istio's TLS contexts name, resolved in-process —
//! `default` is the workload's certificate chain and key, `ROOTCA` the mesh trust bundle,
//! both from one [`Identity`] that the binary keeps fresh (it comes from the CA and is
//! renewed before expiry). Every rotation bumps a generation; TLS configurations built from
//! an older generation are rebuilt on next use ([`Cached`]), so new connections present the
//! new certificate while connections already open keep theirs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The SDS name of the workload's key pair.
pub const WORKLOAD_CERT: &str = "default";
/// The SDS name of the trust bundle.
pub const ROOT_CA: &str = "ROOTCA";

/// A workload identity in rustls' terms.
#[derive(Debug)]
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub roots: Vec<CertificateDer<'static>>,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}: {1}")]
    Pem(&'static str, rustls_pki_types::pem::Error),
    #[error("{0}: no PEM block")]
    Empty(&'static str),
}

impl Identity {
    /// From the PEM the CA answers with.
    pub fn from_pem(chain: &str, key: &str, roots: &str) -> Result<Identity, IdentityError> {
        let certs = |what, pem: &str| {
            let all = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| IdentityError::Pem(what, e))?;
            if all.is_empty() {
                return Err(IdentityError::Empty(what));
            }
            Ok(all)
        };
        Ok(Identity {
            chain: certs("certificate chain", chain)?,
            key: PrivateKeyDer::from_pem_slice(key.as_bytes())
                .map_err(|e| IdentityError::Pem("private key", e))?,
            roots: certs("trust bundle", roots)?,
        })
    }
}

/// The current identity, shared by every TLS context; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Secrets(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    current: ArcSwapOption<Identity>,
    generation: AtomicU64,
}

impl Secrets {
    /// Installs a new identity (first one, or a renewal).
    pub fn set(&self, identity: Arc<Identity>) {
        self.0.current.store(Some(identity));
        self.0.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The identity and its generation; `None` before the first.
    pub fn current(&self) -> Option<(u64, Arc<Identity>)> {
        let generation = self.0.generation.load(Ordering::Acquire);
        self.0.current.load_full().map(|i| (generation, i))
    }
}

/// A TLS configuration built for one generation of the identity.
#[derive(Debug)]
pub struct Cached<T>(Mutex<Option<(u64, Arc<T>)>>);

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Cached(Mutex::new(None))
    }
}

impl<T> Cached<T> {
    /// The configuration for `generation`, built with `build` unless already there.
    pub fn get<E>(
        &self,
        generation: u64,
        build: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((g, config)) = slot.as_ref()
            && *g == generation
        {
            return Ok(config.clone());
        }
        let config = Arc::new(build()?);
        *slot = Some((generation, config.clone()));
        Ok(config)
    }
}

/// aws-lc-rs, with the hybrid post-quantum key exchange offered first, then X25519 and
/// P-256.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::aws_lc_rs::{self, kx_group};
    Arc::new(CryptoProvider {
        kx_groups: vec![
            kx_group::X25519MLKEM768,
            kx_group::X25519,
            kx_group::SECP256R1,
        ],
        ..aws_lc_rs::default_provider()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_rebuilds_on_a_new_generation_only() {
        let cache = Cached::<u32>::default();
        let mut builds = 0;
        let mut get = |g| {
            *cache
                .get::<()>(g, || {
                    builds += 1;
                    Ok(g as u32)
                })
                .unwrap()
        };
        assert_eq!(get(1), 1);
        assert_eq!(get(1), 1);
        assert_eq!(get(2), 2);
        assert_eq!(builds, 2);
    }

    #[test]
    fn pem_without_blocks_is_refused() {
        let e = Identity::from_pem("", "", "").unwrap_err();
        assert!(e.to_string().contains("certificate chain"), "{e}");
    }

    #[test]
    fn post_quantum_key_exchange_comes_first() {
        let names: Vec<_> = provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            names,
            [
                rustls::NamedGroup::X25519MLKEM768,
                rustls::NamedGroup::X25519,
                rustls::NamedGroup::secp256r1
            ]
        );
    }
}
