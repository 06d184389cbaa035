//! One JWT, parsed and verified as Envoy's jwt_verify_lib does, as pure functions: the
//! three base64url sections and their JSON, the registered claims' types, the time window
//! with clock skew, the audiences, then the signature against the JWKS (a key is tried
//! when its `kid` and `alg`, if it has them, agree with the token's and its type fits the
//! algorithm). Cryptography is aws-lc-rs, the same library as the proxy's TLS.

use aws_lc_rs::{hmac, signature};
use serde_json::{Map, Value};

use super::jwks::{Curve, Jwk, Key, b64};
use super::status::Status;

/// Tokens longer than this are refused unread (Envoy's 60 KiB header limit bounds them too).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

const ALGORITHMS: [&str; 13] = [
    "ES256", "ES384", "ES512", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256",
    "PS384", "PS512", "EdDSA",
];

/// A token whose sections and registered claims are well formed (not yet verified).
#[derive(Debug, Clone, PartialEq)]
pub struct Jwt<'a> {
    pub alg: String,
    pub kid: Option<String>,
    pub iss: String,
    pub audiences: Vec<String>,
    pub nbf: Option<u64>,
    pub exp: Option<u64>,
    pub claims: Map<String, Value>,
    /// `header.payload`: what is signed.
    pub signed: &'a str,
    /// The payload section as sent (for `forward_payload_header`).
    pub payload_b64: &'a str,
    pub signature: Vec<u8>,
}

pub fn parse(token: &str) -> Result<Jwt<'_>, Status> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Status::BadFormat);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Status::BadFormat);
    };
    // Envoy counts non-empty sections: `header.payload.` (an unsigned token) is malformed.
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(Status::BadFormat);
    }
    let header = json_object(h, Status::HeaderBadBase64, Status::HeaderBadJson)?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.clone(),
        _ => return Err(Status::HeaderBadAlg),
    };
    if !ALGORITHMS.contains(&alg.as_str()) {
        return Err(Status::HeaderNotImplementedAlg);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Status::HeaderBadKid),
    };
    let claims = json_object(p, Status::PayloadBadBase64, Status::PayloadBadJson)?;
    let string = |name: &str, bad: Status| match claims.get(name) {
        None => Ok(String::new()),
        Some(Value::String(v)) => Ok(v.clone()),
        Some(_) => Err(bad),
    };
    let iss = string("iss", Status::IssNotString)?;
    string("sub", Status::SubNotString)?;
    string("jti", Status::JtiNotString)?;
    time(
        &claims,
        "iat",
        Status::IatNotInteger,
        Status::IatNotPositive,
    )?;
    let nbf = time(
        &claims,
        "nbf",
        Status::NbfNotInteger,
        Status::NbfNotPositive,
    )?;
    let exp = time(
        &claims,
        "exp",
        Status::ExpNotInteger,
        Status::ExpNotPositive,
    )?;
    let audiences = match claims.get("aud") {
        None => Vec::new(),
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| a.as_str().map(str::to_string).ok_or(Status::AudNotString))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Status::AudNotString),
    };
    let signature = b64(s).ok_or(Status::SignatureBadBase64)?;
    Ok(Jwt {
        alg,
        kid,
        iss,
        audiences,
        nbf,
        exp,
        claims,
        signed: token.get(..h.len() + 1 + p.len()).unwrap_or_default(),
        payload_b64: p,
        signature,
    })
}

fn json_object(
    section: &str,
    bad_base64: Status,
    bad_json: Status,
) -> Result<Map<String, Value>, Status> {
    let bytes = b64(section).ok_or(bad_base64)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(bad_json),
    }
}

fn time(
    claims: &Map<String, Value>,
    name: &str,
    not_integer: Status,
    not_positive: Status,
) -> Result<Option<u64>, Status> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64()),
        Some(Value::Number(n)) if n.is_i64() => Err(not_positive),
        Some(_) => Err(not_integer),
    }
}

impl Jwt<'_> {
    /// `nbf` and `exp`, each with `skew` seconds of tolerance.
    pub fn check_time(&self, now: u64, skew: u64) -> Result<(), Status> {
        if self.nbf.is_some_and(|nbf| now.saturating_add(skew) < nbf) {
            return Err(Status::NotYetValid);
        }
        if self.exp.is_some_and(|exp| now > exp.saturating_add(skew)) {
            return Err(Status::Expired);
        }
        Ok(())
    }

    /// Whether one of the token's audiences is allowed (none configured: any). Like Envoy,
    /// an `http://` or `https://` scheme and a trailing `/` do not count.
    pub fn audience_allowed(&self, allowed: &[String]) -> bool {
        fn bare(a: &str) -> &str {
            let a = a
                .strip_prefix("http://")
                .or_else(|| a.strip_prefix("https://"))
                .unwrap_or(a);
            a.strip_suffix('/').unwrap_or(a)
        }
        allowed.is_empty()
            || self
                .audiences
                .iter()
                .any(|t| allowed.iter().any(|a| bare(a) == bare(t)))
    }

    /// The signature against the keys that fit the token.
    pub fn verify(&self, keys: &[Jwk]) -> Result<(), Status> {
        let mut tried = false;
        for k in keys {
            if let (Some(want), Some(have)) = (&self.kid, &k.kid)
                && want != have
            {
                continue;
            }
            if k.alg.as_ref().is_some_and(|a| *a != self.alg) {
                continue;
            }
            let Some(ok) = check(&self.alg, &k.key, self.signed.as_bytes(), &self.signature) else {
                continue;
            };
            tried = true;
            if ok {
                return Ok(());
            }
        }
        Err(if tried {
            Status::VerificationFail
        } else {
            Status::KidAlgMismatch
        })
    }
}

/// `None` when the key does not fit the algorithm; else whether the signature verifies.
fn check(alg: &str, key: &Key, message: &[u8], sig: &[u8]) -> Option<bool> {
    use signature::VerificationAlgorithm as _;
    let rsa = |params: &'static signature::RsaParameters, n: &[u8], e: &[u8]| {
        signature::RsaPublicKeyComponents { n, e }
            .verify(params, message, sig)
            .is_ok()
    };
    Some(match (alg, key) {
        ("RS256", Key::Rsa { n, e }) => rsa(&signature::RSA_PKCS1_2048_8192_SHA256, n, e),
        ("RS384", Key::Rsa { n, e }) => rsa(&signature::RSA_PKCS1_2048_8192_SHA384, n, e),
        ("RS512", Key::Rsa { n, e }) => rsa(&signature::RSA_PKCS1_2048_8192_SHA512, n, e),
        ("PS256", Key::Rsa { n, e }) => rsa(&signature::RSA_PSS_2048_8192_SHA256, n, e),
        ("PS384", Key::Rsa { n, e }) => rsa(&signature::RSA_PSS_2048_8192_SHA384, n, e),
        ("PS512", Key::Rsa { n, e }) => rsa(&signature::RSA_PSS_2048_8192_SHA512, n, e),
        (
            "ES256",
            Key::Ec {
                curve: Curve::P256,
                point,
            },
        )
        | (
            "ES384",
            Key::Ec {
                curve: Curve::P384,
                point,
            },
        )
        | (
            "ES512",
            Key::Ec {
                curve: Curve::P521,
                point,
            },
        ) => {
            let algorithm: &dyn signature::VerificationAlgorithm = match alg {
                "ES256" => &signature::ECDSA_P256_SHA256_FIXED,
                "ES384" => &signature::ECDSA_P384_SHA384_FIXED,
                _ => &signature::ECDSA_P521_SHA512_FIXED,
            };
            algorithm.verify_sig(point, message, sig).is_ok()
        }
        ("EdDSA", Key::Ed25519(x)) => signature::ED25519.verify_sig(x, message, sig).is_ok(),
        ("HS256" | "HS384" | "HS512", Key::Hmac(k)) => {
            let algorithm = match alg {
                "HS256" => hmac::HMAC_SHA256,
                "HS384" => hmac::HMAC_SHA384,
                _ => hmac::HMAC_SHA512,
            };
            hmac::verify(&hmac::Key::new(algorithm, k), message, sig).is_ok()
        }
        _ => return None,
    })
}
