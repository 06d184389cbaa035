//! The CORS filter's per-route configuration (`envoy.extensions.filters.http.cors.v3.
//! CorsPolicy` in a route's `typed_per_filter_config`) → [`crate::cors::CorsPolicy`].

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::google::protobuf::Any;

use super::listener::unpack;
use super::{Result, millionths, string_matcher};
use crate::cors;

pub const CORS_FILTER: &str = "envoy.filters.http.cors";

pub fn cors_policy(any: &Any, p: &str) -> Result<cors::CorsPolicy> {
    let CorsPolicy {
        allow_origin_string_match,
        allow_methods,
        allow_headers,
        expose_headers,
        max_age,
        allow_credentials,
        filter_enabled,
        // Shadow mode only feeds Envoy's `cors.origin_*` stats.
        shadow_enabled: _,
        allow_private_network_access,
        forward_not_matching_preflights,
    } = unpack::<CorsPolicy>(any, p)?;
    let allow_origins = allow_origin_string_match
        .iter()
        .enumerate()
        .map(|(i, m)| string_matcher(m, &format!("{p}.allow_origin_string_match[{i}]")))
        .collect::<Result<_>>()?;
    // The runtime key is not consulted: the proxy has no runtime.
    let enabled = filter_enabled.as_ref().map_or(
        1_000_000,
        |RuntimeFractionalPercent {
             default_value,
             runtime_key: _,
         }| default_value.as_ref().map_or(0, millionths),
    );
    Ok(cors::CorsPolicy {
        allow_origins,
        allow_methods,
        allow_headers,
        expose_headers,
        max_age,
        allow_credentials: allow_credentials.is_some_and(|b| b.value),
        allow_private_network_access: allow_private_network_access.is_some_and(|b| b.value),
        enabled,
        forward_not_matching_preflights: forward_not_matching_preflights.is_none_or(|b| b.value),
    })
}
