//! Who is calling the CA. Each [`Authenticator`] looks for its own kind of credential in
//! the request; the first that recognises one decides. Bootstrap tokens (local mode) and
//! client certificates (renewal over TLS) exist today; Kubernetes service-account tokens
//! (TokenReview) are a further implementation of the same trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use rustls_pki_types::CertificateDer;
use trellis_identity::spiffe::SpiffeId;
use trellis_identity::token::{TokenKey, looks_like_bootstrap_token};

/// What a request offers as proof of identity.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The `authorization: Bearer` token, if any.
    pub bearer: Option<String>,
    /// The TLS client certificate chain (leaf first), already verified against the trust
    /// bundle by the TLS handshake.
    pub peer_certs: Vec<CertificateDer<'static>>,
}

impl Caller {
    /// The credentials of a gRPC request.
    pub fn of<T>(request: &tonic::Request<T>) -> Caller {
        let bearer = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_string());
        let peer_certs = request
            .peer_certs()
            .map(|certs| certs.iter().cloned().collect())
            .unwrap_or_default();
        Caller { bearer, peer_certs }
    }
}

/// Why a credential was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct AuthError {
    pub kind: &'static str,
    pub message: String,
}

/// The future an [`Authenticator`] returns: `Ok(None)` when the request carries no
/// credential of its kind.
pub type AuthFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<SpiffeId>, AuthError>> + Send + 'a>>;

/// One way of proving identity to the CA.
pub trait Authenticator: Send + Sync {
    fn authenticate<'a>(&'a self, caller: &'a Caller, trust_domain: &'a str) -> AuthFuture<'a>;
}

/// Asks each authenticator in turn; the first that recognises a credential decides (an
/// authenticator passes on credentials of other kinds, so a Kubernetes service-account
/// token and a bootstrap token can be told apart by the authenticators themselves).
pub async fn authenticate(
    authenticators: &[Arc<dyn Authenticator>],
    caller: &Caller,
    trust_domain: &str,
) -> Result<SpiffeId, AuthError> {
    for authenticator in authenticators {
        if let Some(id) = authenticator.authenticate(caller, trust_domain).await? {
            return Ok(id);
        }
    }
    Err(match caller.bearer {
        Some(_) => AuthError {
            kind: "bearer token",
            message: "not a credential this CA accepts (a Trellis bootstrap token)".into(),
        },
        None => AuthError {
            kind: "no credential",
            message: "send `authorization: Bearer <token>` or a client certificate".into(),
        },
    })
}

/// Bootstrap tokens minted with the state directory's key.
pub struct TokenAuthenticator {
    key: TokenKey,
}

impl TokenAuthenticator {
    pub fn new(key: TokenKey) -> Self {
        TokenAuthenticator { key }
    }

    fn check(&self, token: &str, trust_domain: &str) -> Result<SpiffeId, AuthError> {
        let error = |message: String| AuthError {
            kind: "bootstrap token",
            message,
        };
        let claims = self
            .key
            .verify(token, SystemTime::now())
            .map_err(|e| error(e.to_string()))?;
        SpiffeId::new(trust_domain, &claims.namespace, &claims.service_account)
            .map_err(|e| error(e.to_string()))
    }
}

impl Authenticator for TokenAuthenticator {
    fn authenticate<'a>(&'a self, caller: &'a Caller, trust_domain: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            match &caller.bearer {
                Some(token) if looks_like_bootstrap_token(token) => {
                    self.check(token, trust_domain).map(Some)
                }
                _ => Ok(None),
            }
        })
    }
}

/// A workload certificate presented over TLS: its SPIFFE id, if in our trust domain.
pub struct ClientCertAuthenticator;

impl Authenticator for ClientCertAuthenticator {
    fn authenticate<'a>(&'a self, caller: &'a Caller, trust_domain: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            let Some(leaf) = caller.peer_certs.first() else {
                return Ok(None);
            };
            let error = |message: String| AuthError {
                kind: "client certificate",
                message,
            };
            let cert = trellis_identity::pem::parse(leaf).map_err(|e| error(e.to_string()))?;
            let id = trellis_identity::pem::spiffe_id(&cert)
                .ok_or_else(|| error("carries no single SPIFFE URI".into()))?;
            if id.trust_domain != trust_domain {
                return Err(error(format!("{id} is not in trust domain {trust_domain}")));
            }
            Ok(Some(id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn chain() -> Vec<Arc<dyn Authenticator>> {
        let key = TokenKey::from_bytes(&[7; 32]).unwrap();
        vec![
            Arc::new(ClientCertAuthenticator),
            Arc::new(TokenAuthenticator::new(key)),
        ]
    }

    fn bearer(token: &str) -> Caller {
        Caller {
            bearer: Some(token.into()),
            peer_certs: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_bootstrap_token_names_its_workload_in_the_trust_domain() {
        let key = TokenKey::from_bytes(&[7; 32]).unwrap();
        let token = key
            .mint(
                "default",
                "reviews",
                Duration::from_secs(60),
                SystemTime::now(),
            )
            .unwrap();
        let id = authenticate(&chain(), &bearer(&token), "example.org")
            .await
            .unwrap();
        assert_eq!(id.uri(), "spiffe://example.org/ns/default/sa/reviews");
    }

    #[tokio::test]
    async fn foreign_or_missing_credentials_are_refused_with_a_reason() {
        let none = authenticate(&chain(), &Caller::default(), "cluster.local").await;
        assert_eq!(none.unwrap_err().kind, "no credential");
        let jwt = authenticate(&chain(), &bearer("eyJhbGciOi.x.y"), "cluster.local").await;
        assert_eq!(jwt.unwrap_err().kind, "bearer token");
        let forged = authenticate(&chain(), &bearer("trellis1.e30.AAAA"), "cluster.local").await;
        assert_eq!(forged.unwrap_err().kind, "bootstrap token");
        let garbage_cert = Caller {
            bearer: None,
            peer_certs: vec![CertificateDer::from(vec![1, 2, 3])],
        };
        let cert = authenticate(&chain(), &garbage_cert, "cluster.local").await;
        assert_eq!(cert.unwrap_err().kind, "client certificate");
    }
}
