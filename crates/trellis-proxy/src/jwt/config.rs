//! Envoy's `jwt_authn` filter as the proxy's own immutable types.

use std::collections::BTreeMap;

use super::jwks::Jwk;
use crate::config::RouteMatch;

/// `JwtAuthentication`: providers by name and the rules that say which are required.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtAuthn {
    pub providers: BTreeMap<String, Provider>,
    /// The first rule whose match fits the request applies; none: no requirement.
    pub rules: Vec<Rule>,
    /// CORS preflights (OPTIONS with `origin` and `access-control-request-method`) pass.
    pub bypass_cors_preflight: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub matcher: RouteMatch,
    /// `None`: the matching requests need no token.
    pub requires: Option<Requirement>,
}

/// `JwtRequirement`.
#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    /// A valid token of this provider (with these audiences instead of its own, if any).
    Provider {
        name: String,
        audiences: Option<Vec<String>>,
    },
    Any(Vec<Requirement>),
    All(Vec<Requirement>),
    /// No token passes; a token, whoever issued it, must be valid.
    AllowMissing,
    /// Anything passes; valid tokens still yield their payload.
    AllowMissingOrFailed,
}

/// `JwtProvider`.
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    /// Empty: any issuer.
    pub issuer: String,
    pub audiences: Vec<String>,
    /// From `local_jwks`; `None`: unreadable (every token fails).
    pub keys: Option<Vec<Jwk>>,
    /// Where tokens are looked for (Envoy's defaults when the provider names none).
    pub locations: Vec<Location>,
    /// Keep the token in the request (else its header is removed).
    pub forward: bool,
    /// `forward_payload_header`: the payload section, base64url.
    pub payload_header: Option<String>,
    pub pad_payload_header: bool,
    /// `payload_in_metadata`: the claims in the filter's dynamic metadata under this key.
    pub payload_in_metadata: Option<String>,
    /// Claims holding space-separated strings that the metadata presents as lists.
    pub space_delimited_claims: Vec<String>,
    /// (header, claim path): claim values copied into request headers.
    pub claim_to_headers: Vec<(String, Vec<String>)>,
    pub clock_skew_seconds: u64,
}

/// Where a token is carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A header (lower case), the token after `prefix`.
    Header {
        name: String,
        prefix: String,
    },
    Param(String),
    Cookie(String),
}

impl Location {
    /// Envoy's defaults: `Authorization: Bearer <token>`, then `?access_token=<token>`.
    pub fn defaults() -> Vec<Location> {
        vec![
            Location::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            },
            Location::Param("access_token".into()),
        ]
    }
}
