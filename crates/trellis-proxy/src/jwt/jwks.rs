//! JSON Web Key Sets, read once at conversion into raw key material. Like Envoy
//! (jwt_verify_lib), a key that cannot be read is skipped, and a set with no usable key is
//! not a configuration error: tokens checked against it fail at request time.

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;

/// One public (or, for HMAC, shared) key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The key's own `alg`, when it names one: only tokens of that `alg` use it.
    pub alg: Option<String>,
    pub key: Key,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// Big-endian modulus and exponent.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point (`04 || x || y`) on the curve.
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
    Hmac(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

/// The keys of a JWKS document; `None` when the document is not a JWKS with a usable key.
pub fn parse(text: &str) -> Option<Vec<Jwk>> {
    let doc: Value = serde_json::from_str(text).ok()?;
    let keys: Vec<Jwk> = doc
        .get("keys")?
        .as_array()?
        .iter()
        .filter_map(jwk)
        .collect();
    (!keys.is_empty()).then_some(keys)
}

/// base64url with or without padding, unused trailing bits tolerated (as Envoy's decoder).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

pub fn b64(s: &str) -> Option<Vec<u8>> {
    LENIENT.decode(s).ok()
}

fn field<'a>(k: &'a Value, name: &str) -> Option<&'a str> {
    k.get(name)?.as_str()
}

fn jwk(k: &Value) -> Option<Jwk> {
    let key = match field(k, "kty")? {
        "RSA" => Key::Rsa {
            n: strip_zeros(b64(field(k, "n")?)?),
            e: strip_zeros(b64(field(k, "e")?)?),
        },
        "EC" => {
            let curve = match field(k, "crv")? {
                "P-256" => Curve::P256,
                "P-384" => Curve::P384,
                "P-521" => Curve::P521,
                _ => return None,
            };
            let (x, y) = (b64(field(k, "x")?)?, b64(field(k, "y")?)?);
            let len = curve.coordinate_len();
            if x.len() > len || y.len() > len {
                return None;
            }
            let mut point = vec![4u8];
            for c in [x, y] {
                point.resize(point.len() + len - c.len(), 0);
                point.extend(c);
            }
            Key::Ec { curve, point }
        }
        "OKP" if field(k, "crv")? == "Ed25519" => {
            let x = b64(field(k, "x")?)?;
            (x.len() == 32).then_some(())?;
            Key::Ed25519(x)
        }
        "oct" => Key::Hmac(b64(field(k, "k")?)?),
        _ => return None,
    };
    Some(Jwk {
        kid: field(k, "kid").map(str::to_string),
        alg: field(k, "alg").map(str::to_string),
        key,
    })
}

/// Leading zero bytes of an RSA integer are padding.
fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros.min(v.len().saturating_sub(1)));
    v
}
