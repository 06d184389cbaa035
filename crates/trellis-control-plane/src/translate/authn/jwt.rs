//! RequestAuthentication → `envoy.filters.http.jwt_authn`, as Istio configures it.
//!
//! Every `jwtRule` of the RequestAuthentications that apply to the proxy (sorted by
//! issuer) becomes provider `origins-<i>`. A request may carry no token (it then reaches
//! authorization without a request principal); a token that is present must be valid
//! for one provider, or the request ends with 401:
//! - one rule: `requires_any [origins-0, allow_missing]`;
//! - several: `requires_any [origins-0, ..., origins-n, requires_all [requires_any
//!   [origins-i, allow_missing] for each i]]`.
//!
//! The payload goes to dynamic metadata `envoy.filters.http.jwt_authn` / `payload`, where
//! RBAC reads `request.auth.*` and request principals (`iss/sub`). JWKS are always sent
//! inline: `jwks` as written, `jwksUri` from the control plane's [`JwksCache`]; until a
//! URI was fetched (or when it cannot be), a public key whose private half no longer
//! exists stands in, so that every token of that issuer is rejected — never accepted.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::route::v3::RouteMatch;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_provider::{
    JwksSourceSpecifier, NormalizePayload,
};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_requirement::RequiresType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::requirement_rule::RequirementType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtClaimToHeader, JwtHeader, JwtProvider, JwtRequirement, JwtRequirementAndList,
    JwtRequirementOrList, RequirementRule,
};
use envoy_types::pb::google::protobuf::Empty;
use trellis_api::istio::security::JwtRule;

use crate::jwks::JwksCache;
use crate::translate::authz::matcher::JWT_PAYLOAD;

pub const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";

/// An RSA public key (JWKS) whose private key was discarded when it was made: no token
/// verifies against it. Stands in for JWKS that could not be fetched (yet).
pub const UNVERIFIABLE_JWKS: &str = r#"{"keys":[{"kty":"RSA","e":"AQAB","n":"rCiQevvQfH_VmOQJysgdue85PyDx2vhk0sUsz38CkErXynNIH2cqXUR46Pvro7q8mcmWWKLSS4wNMAVtGmraHCgV-vXH1OTgoU5BOfmv1R8r4xKdNPNCGiyB4CFiOc06WXIatPH5yxS9oEQadMnDMqA8-wdJEbL-53crf3OpAS1ZnbvpWTvTvxCq2KaXfRZ9t2qvA9Ix_W0I4fCy_xq2_w0Hndhwa1YpSWi5EjXB_O_fzzJVTNc2i0E29wPC8-z7xMowGI4YfjPv5N0vJzI3P40vfw1E-NgPP8754DXYYYYpdAmni7pTOJXb5GLq2d4zKtm_23VJsYxGku8uoaBAXw"}]}"#;

/// Claims Envoy splits on spaces into lists, besides those a rule names.
const DEFAULT_SPACE_DELIMITED: [&str; 2] = ["permission", "scope"];

/// `envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication` with its providers in
/// name order (the generated type's `HashMap` would encode in random order).
#[derive(Clone, PartialEq, prost::Message)]
pub struct JwtAuthentication {
    #[prost(btree_map = "string, message", tag = "1")]
    pub providers: BTreeMap<String, JwtProvider>,
    #[prost(message, repeated, tag = "2")]
    pub rules: Vec<RequirementRule>,
    #[prost(bool, tag = "4")]
    pub bypass_cors_preflight: bool,
}

impl prost::Name for JwtAuthentication {
    const NAME: &'static str = "JwtAuthentication";
    const PACKAGE: &'static str = "envoy.extensions.filters.http.jwt_authn.v3";

    fn type_url() -> String {
        format!("type.googleapis.com/{}", Self::full_name())
    }
}

fn provider(rule: &JwtRule, jwks: &JwksCache, clear_route_cache: bool) -> JwtProvider {
    let inline = if !rule.jwks.is_empty() {
        rule.jwks.clone()
    } else {
        jwks.get(&rule.jwks_uri)
            .unwrap_or_else(|| UNVERIFIABLE_JWKS.to_string())
    };
    let mut space_delimited: Vec<String> = DEFAULT_SPACE_DELIMITED
        .iter()
        .map(|s| s.to_string())
        .chain(rule.space_delimited_claims.iter().cloned())
        .collect();
    space_delimited.sort();
    space_delimited.dedup();
    JwtProvider {
        issuer: rule.issuer.clone(),
        audiences: rule.audiences.clone(),
        forward: rule.forward_original_token,
        forward_payload_header: rule.output_payload_to_header.clone(),
        payload_in_metadata: JWT_PAYLOAD.to_string(),
        normalize_payload_in_metadata: Some(NormalizePayload {
            space_delimited_claims: space_delimited,
        }),
        clear_route_cache,
        claim_to_headers: rule
            .output_claim_to_headers
            .iter()
            .map(|c| JwtClaimToHeader {
                header_name: c.header.clone(),
                claim_name: c.claim.clone(),
                ..Default::default()
            })
            .collect(),
        from_headers: rule
            .from_headers
            .iter()
            .map(|h| JwtHeader {
                name: h.name.clone(),
                value_prefix: h.prefix.clone(),
            })
            .collect(),
        from_params: rule.from_params.clone(),
        from_cookies: rule.from_cookies.clone(),
        jwks_source_specifier: Some(JwksSourceSpecifier::LocalJwks(DataSource {
            specifier: Some(Specifier::InlineString(inline)),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn requirement(t: RequiresType) -> JwtRequirement {
    JwtRequirement {
        requires_type: Some(t),
    }
}

fn any_of(items: Vec<JwtRequirement>) -> JwtRequirement {
    requirement(RequiresType::RequiresAny(JwtRequirementOrList {
        requirements: items,
    }))
}

/// The `jwt_authn` config for `rules` (any order; sorted by issuer here), `None` without
/// rules. Gateways clear the route cache so that routes may match on claims.
pub fn config(rules: &[&JwtRule], jwks: &JwksCache, gateway: bool) -> Option<JwtAuthentication> {
    if rules.is_empty() {
        return None;
    }
    let mut sorted: Vec<&JwtRule> = rules.to_vec();
    sorted.sort_by(|a, b| a.issuer.cmp(&b.issuer));
    let mut providers = BTreeMap::new();
    let mut each = Vec::new();
    let mut alone = Vec::new();
    for (i, rule) in sorted.iter().enumerate() {
        let name = format!("origins-{i}");
        providers.insert(name.clone(), provider(rule, jwks, gateway));
        let named = requirement(RequiresType::ProviderName(name));
        each.push(any_of(vec![
            named.clone(),
            requirement(RequiresType::AllowMissing(Empty {})),
        ]));
        alone.push(named);
    }
    let requires = match each.pop() {
        Some(only) if each.is_empty() => only,
        Some(last) => {
            each.push(last);
            alone.push(requirement(RequiresType::RequiresAll(
                JwtRequirementAndList { requirements: each },
            )));
            any_of(alone)
        }
        None => return None,
    };
    Some(JwtAuthentication {
        providers,
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
                ..Default::default()
            }),
            requirement_type: Some(RequirementType::Requires(requires)),
        }],
        bypass_cors_preflight: true,
    })
}
