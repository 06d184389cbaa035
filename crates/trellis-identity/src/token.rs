//! Bootstrap tokens for the local mode: a short-lived credential, minted for one workload
//! (namespace + service account) when it starts, that it presents to the CA as
//! `authorization: Bearer <token>` to get its first certificate. In Kubernetes the
//! service-account token plays this part.
//!
//! Form: `trellis1.<base64url(ns/sa/expiry-unix-seconds/random-id)>.<base64url(HMAC-SHA256)>`,
//! the MAC over everything before the last dot, keyed by a 32-byte secret that lives in the
//! control plane's state directory ([`TokenKey::load_or_create`]).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::files;
use crate::spiffe::{SpiffeError, SpiffeId};

const PREFIX: &str = "trellis1";
const KEY_LEN: usize = 32;

/// The secret that signs and checks bootstrap tokens.
pub struct TokenKey {
    key: hmac::Key,
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub namespace: String,
    pub service_account: String,
    pub expires: SystemTime,
    /// Random, so that two tokens for one workload differ (and can be told apart in logs).
    pub id: String,
}

/// Why a token is refused or cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not match (tampered, or minted with another key)")]
    BadSignature,
    #[error("the token expired {0:?} ago")]
    Expired(Duration),
    #[error(transparent)]
    Name(#[from] SpiffeError),
    #[error("token key {path}: {message}")]
    Key { path: String, message: String },
    #[error("no randomness available")]
    Random,
}

/// True when `token` has the form of a Trellis bootstrap token (not whether it is valid):
/// lets an authenticator leave other bearer tokens (Kubernetes JWTs) to others.
pub fn looks_like_bootstrap_token(token: &str) -> bool {
    token
        .strip_prefix(PREFIX)
        .is_some_and(|rest| rest.starts_with('.'))
}

impl TokenKey {
    /// A key from raw bytes (at least 32).
    pub fn from_bytes(bytes: &[u8]) -> Result<TokenKey, TokenError> {
        if bytes.len() < KEY_LEN {
            return Err(TokenError::Key {
                path: String::new(),
                message: format!("needs {KEY_LEN} bytes, has {}", bytes.len()),
            });
        }
        Ok(TokenKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        })
    }

    /// Reads the key at `path` (base64), creating it (mode 0600) with fresh random bytes
    /// if it does not exist. Safe when several processes race to create it: one wins and
    /// all read the winner's key.
    pub fn load_or_create(path: &Path) -> Result<TokenKey, TokenError> {
        let key_error = |message: String| TokenError::Key {
            path: path.display().to_string(),
            message,
        };
        if !path.exists() {
            let mut bytes = [0u8; KEY_LEN];
            aws_lc_rs::rand::fill(&mut bytes).map_err(|_| TokenError::Random)?;
            let text = format!("{}\n", URL_SAFE_NO_PAD.encode(bytes));
            files::write_new_private(path, text.as_bytes())
                .map_err(|e| key_error(e.to_string()))?;
        }
        let text = std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|e| key_error(format!("not base64: {e}")))?;
        TokenKey::from_bytes(&bytes).map_err(|e| key_error(e.to_string()))
    }

    /// A token for `namespace`/`service_account`, valid for `ttl` from `now`.
    pub fn mint(
        &self,
        namespace: &str,
        service_account: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<String, TokenError> {
        // The names must be ones a SPIFFE id can carry (and so contain no '/').
        SpiffeId::new("x", namespace, service_account)?;
        let expires = now
            .checked_add(ttl)
            .ok_or(TokenError::Malformed)?
            .duration_since(UNIX_EPOCH)
            .map_err(|_| TokenError::Malformed)?
            .as_secs();
        let mut id = [0u8; 12];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| TokenError::Random)?;
        let payload = format!(
            "{namespace}/{service_account}/{expires}/{}",
            URL_SAFE_NO_PAD.encode(id)
        );
        let signed = format!("{PREFIX}.{}", URL_SAFE_NO_PAD.encode(payload));
        let tag = hmac::sign(&self.key, signed.as_bytes());
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())))
    }

    /// The claims of `token` if this key signed it and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<TokenClaims, TokenError> {
        let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (prefix, payload) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        if prefix != PREFIX {
            return Err(TokenError::Malformed);
        }
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        hmac::verify(&self.key, signed.as_bytes(), &tag).map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let payload = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
        let mut parts = payload.split('/');
        let (Some(namespace), Some(service_account), Some(expires), Some(id), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        let seconds = expires.parse().map_err(|_| TokenError::Malformed)?;
        let expires = UNIX_EPOCH
            .checked_add(Duration::from_secs(seconds))
            .ok_or(TokenError::Malformed)?;
        if let Ok(ago) = now.duration_since(expires) {
            return Err(TokenError::Expired(ago));
        }
        SpiffeId::new("x", namespace, service_account)?;
        Ok(TokenClaims {
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
            expires,
            id: id.to_string(),
        })
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> TokenKey {
        TokenKey::from_bytes(&[byte; 32]).unwrap()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_minted_token_verifies_with_its_claims() {
        let now = SystemTime::now();
        let token = key(1).mint("default", "reviews", HOUR, now).unwrap();
        let claims = key(1).verify(&token, now).unwrap();
        assert_eq!(claims.namespace, "default");
        assert_eq!(claims.service_account, "reviews");
        let other = key(1).mint("default", "reviews", HOUR, now).unwrap();
        assert_ne!(token, other, "tokens carry a random id");
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let now = SystemTime::now();
        let token = key(1).mint("default", "reviews", HOUR, now).unwrap();
        let later = now + 2 * HOUR;
        assert!(matches!(
            key(1).verify(&token, later),
            Err(TokenError::Expired(_))
        ));
        assert!(matches!(
            key(2).verify(&token, now),
            Err(TokenError::BadSignature)
        ));
        // Claim another service account with the same signature.
        let (_, rest) = token.split_once('.').unwrap();
        let (_, tag) = rest.split_once('.').unwrap();
        let payload = URL_SAFE_NO_PAD.encode("default/admin/99999999999/x");
        let forged = format!("{PREFIX}.{payload}.{tag}");
        assert!(matches!(
            key(1).verify(&forged, now),
            Err(TokenError::BadSignature)
        ));
        // Correctly signed but absurd: an expiry beyond the clock's range.
        let k = key(1);
        let payload = URL_SAFE_NO_PAD.encode(format!("default/a/{}/x", u64::MAX));
        let signed = format!("{PREFIX}.{payload}");
        let tag = hmac::sign(&k.key, signed.as_bytes());
        let absurd = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert!(matches!(k.verify(&absurd, now), Err(TokenError::Malformed)));
        for garbage in ["", "a.b", "trellis1..", "x.y.z", "trellis1.!!.??"] {
            assert!(key(1).verify(garbage, now).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn names_are_checked_when_minting() {
        let now = SystemTime::now();
        assert!(key(1).mint("default", "a", Duration::MAX, now).is_err());
        assert!(key(1).mint("de/fault", "a", HOUR, now).is_err());
        assert!(key(1).mint("default", "", HOUR, now).is_err());
    }

    #[test]
    fn the_key_file_is_created_private_once_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token-key");
        let now = SystemTime::now();
        let first = TokenKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let token = first.mint("default", "a", HOUR, now).unwrap();
        let again = TokenKey::load_or_create(&path).unwrap();
        assert!(again.verify(&token, now).is_ok());
    }
}
