//! `envoy.filters.http.jwt_authn` → [`JwtAuthn`]: what Istio's RequestAuthentication
//! translation emits (inline JWKS, token locations, payload outputs, `requires_any` of a
//! provider and `allow_missing`, one rule on prefix `/`). Remote JWKS (the proxy has no
//! fetcher yet), caches, per-route requirement maps and filter-state rules are rejected.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_provider::{
    JwksSourceSpecifier, NormalizePayload,
};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_requirement::RequiresType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::requirement_rule::RequirementType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtClaimToHeader, JwtHeader, JwtProvider, JwtRequirement,
    JwtRequirementAndList, JwtRequirementOrList, ProviderWithAudiences, RequirementRule,
};

use super::config::{JwtAuthn, Location, Provider, Requirement, Rule};
use super::jwks;
use crate::convert::listener::unpack;
use crate::convert::route::route_match;
use crate::convert::{Result, reject};

pub const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";

/// Envoy's default clock skew.
const DEFAULT_CLOCK_SKEW: u64 = 60;
/// Requirements nested deeper than this are rejected (evaluation recurses).
const MAX_DEPTH: usize = 32;

/// Decodes and converts the filter's typed config.
pub fn http_filter(any: &envoy_types::pb::google::protobuf::Any, p: &str) -> Result<JwtAuthn> {
    jwt_authn(&unpack(any, p)?, p)
}

pub fn jwt_authn(j: &JwtAuthentication, p: &str) -> Result<JwtAuthn> {
    let JwtAuthentication {
        providers,
        rules,
        filter_state_rules,
        bypass_cors_preflight,
        requirement_map,
        strip_failure_response,
        stat_prefix,
    } = j;
    let p = format!("{p} ({JWT_AUTHN})");
    reject!(p; filter_state_rules, requirement_map, strip_failure_response, stat_prefix);
    let providers = providers
        .iter()
        .map(|(name, pr)| {
            Ok((
                name.clone(),
                provider(pr, &format!("{p}.providers[{name}]"))?,
            ))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    let rules = rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule(r, &format!("{p}.rules[{i}]"), &providers))
        .collect::<Result<_>>()?;
    Ok(JwtAuthn {
        providers,
        rules,
        bypass_cors_preflight: *bypass_cors_preflight,
    })
}

fn provider(pr: &JwtProvider, p: &str) -> Result<Provider> {
    let JwtProvider {
        issuer,
        audiences,
        subjects,
        require_expiration,
        max_lifetime,
        forward,
        from_headers,
        from_params,
        from_cookies,
        forward_payload_header,
        pad_forward_payload_header,
        payload_in_metadata,
        normalize_payload_in_metadata,
        header_in_metadata,
        failed_status_in_metadata,
        clock_skew_seconds,
        jwt_cache_config: _,
        claim_to_headers,
        clear_route_cache: _,
        jwks_source_specifier,
    } = pr;
    reject!(p; subjects, require_expiration, max_lifetime, header_in_metadata,
        failed_status_in_metadata);
    let keys = match jwks_source_specifier {
        Some(JwksSourceSpecifier::LocalJwks(d)) => {
            let text = inline(d, &format!("{p}.local_jwks"))?;
            let keys = jwks::parse(&text);
            if keys.is_none() {
                tracing::warn!(path = %p, "local_jwks has no usable key: its tokens will fail");
            }
            keys
        }
        Some(JwksSourceSpecifier::RemoteJwks(_)) => {
            return Err(format!("{p}.remote_jwks is not implemented"));
        }
        None => return Err(format!("{p}: no JWKS")),
    };
    let mut locations: Vec<Location> = from_headers
        .iter()
        .map(|JwtHeader { name, value_prefix }| Location::Header {
            name: name.to_ascii_lowercase(),
            prefix: value_prefix.clone(),
        })
        .collect();
    locations.extend(from_params.iter().cloned().map(Location::Param));
    locations.extend(from_cookies.iter().cloned().map(Location::Cookie));
    if locations.is_empty() {
        locations = Location::defaults();
    }
    let claim_to_headers = claim_to_headers
        .iter()
        .map(|c| {
            let JwtClaimToHeader {
                header_name,
                claim_name,
                claim_path,
            } = c;
            if !claim_path.is_empty() {
                return Err(format!(
                    "{p}.claim_to_headers.claim_path is not implemented"
                ));
            }
            Ok((
                header_name.to_ascii_lowercase(),
                claim_name.split('.').map(str::to_string).collect(),
            ))
        })
        .collect::<Result<_>>()?;
    let space_delimited_claims = normalize_payload_in_metadata
        .as_ref()
        .map(
            |NormalizePayload {
                 space_delimited_claims,
             }| space_delimited_claims.clone(),
        )
        .unwrap_or_default();
    Ok(Provider {
        issuer: issuer.clone(),
        audiences: audiences.clone(),
        keys,
        locations,
        forward: *forward,
        payload_header: (!forward_payload_header.is_empty())
            .then(|| forward_payload_header.to_ascii_lowercase()),
        pad_payload_header: *pad_forward_payload_header,
        payload_in_metadata: (!payload_in_metadata.is_empty()).then(|| payload_in_metadata.clone()),
        space_delimited_claims,
        claim_to_headers,
        clock_skew_seconds: if *clock_skew_seconds == 0 {
            DEFAULT_CLOCK_SKEW
        } else {
            u64::from(*clock_skew_seconds)
        },
    })
}

fn inline(d: &DataSource, p: &str) -> Result<String> {
    let DataSource {
        watched_directory,
        specifier,
    } = d;
    reject!(p; watched_directory);
    match specifier {
        Some(Specifier::InlineString(s)) => Ok(s.clone()),
        Some(Specifier::InlineBytes(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        _ => Err(format!(
            "{p}: only inline_string and inline_bytes are implemented"
        )),
    }
}

fn rule(r: &RequirementRule, p: &str, providers: &BTreeMap<String, Provider>) -> Result<Rule> {
    let RequirementRule {
        r#match,
        requirement_type,
    } = r;
    let Some(m) = r#match else {
        return Err(format!("{p}.match: required"));
    };
    let requires = match requirement_type {
        None => None,
        Some(RequirementType::Requires(req)) => {
            Some(requirement(req, &format!("{p}.requires"), providers, 0)?)
        }
        Some(RequirementType::RequirementName(_)) => {
            return Err(format!("{p}.requirement_name is not implemented"));
        }
    };
    Ok(Rule {
        matcher: route_match(m, &format!("{p}.match"))?,
        requires,
    })
}

fn requirement(
    r: &JwtRequirement,
    p: &str,
    providers: &BTreeMap<String, Provider>,
    depth: usize,
) -> Result<Requirement> {
    if depth > MAX_DEPTH {
        return Err(format!("{p}: nested deeper than {MAX_DEPTH}"));
    }
    let known = |name: &str| {
        if providers.contains_key(name) {
            Ok(name.to_string())
        } else {
            Err(format!("{p}: unknown provider {name:?}"))
        }
    };
    let list = |items: &[JwtRequirement], what: &str| {
        items
            .iter()
            .enumerate()
            .map(|(i, x)| requirement(x, &format!("{p}.{what}[{i}]"), providers, depth + 1))
            .collect::<Result<Vec<_>>>()
    };
    Ok(match &r.requires_type {
        Some(RequiresType::ProviderName(name)) => Requirement::Provider {
            name: known(name)?,
            audiences: None,
        },
        Some(RequiresType::ProviderAndAudiences(ProviderWithAudiences {
            provider_name,
            audiences,
        })) => Requirement::Provider {
            name: known(provider_name)?,
            audiences: Some(audiences.clone()),
        },
        Some(RequiresType::RequiresAny(JwtRequirementOrList { requirements })) => {
            Requirement::Any(list(requirements, "requires_any")?)
        }
        Some(RequiresType::RequiresAll(JwtRequirementAndList { requirements })) => {
            Requirement::All(list(requirements, "requires_all")?)
        }
        Some(RequiresType::AllowMissing(_)) => Requirement::AllowMissing,
        Some(RequiresType::AllowMissingOrFailed(_)) => Requirement::AllowMissingOrFailed,
        Some(RequiresType::ExtractOnlyWithoutValidation(_)) => {
            return Err(format!(
                "{p}.extract_only_without_validation is not implemented"
            ));
        }
        None => return Err(format!("{p}: empty requirement")),
    })
}
