//! `corsPolicy` → per-route configuration of Envoy's CORS filter (`envoy.filters.http.cors`,
//! which the listeners put before the router). The policy is always enabled; preflights
//! that match no origin are forwarded upstream unless `unmatchedPreflights: IGNORE`.

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCors;
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::BoolValue;
use trellis_api::istio::networking::{CorsPolicy, CorsPolicyUnmatchedPreflights};

use super::mirror::hundredths;
use super::{Skip, matches};

pub(super) fn cors_policy(input: &CorsPolicy) -> Result<EnvoyCors, Skip> {
    let origins: Vec<StringMatcher> = if !input.allow_origins.is_empty() {
        input
            .allow_origins
            .iter()
            .filter(|m| m.exact.is_some() || m.prefix.is_some() || m.regex.is_some())
            .map(matches::string_matcher)
            .collect::<Result<_, _>>()?
    } else {
        input
            .allow_origin
            .iter()
            .map(|o| StringMatcher {
                match_pattern: Some(MatchPattern::Exact(o.clone())),
                ignore_case: false,
            })
            .collect()
    };
    Ok(EnvoyCors {
        allow_origin_string_match: origins,
        allow_methods: input.allow_methods.join(","),
        allow_headers: input.allow_headers.join(","),
        expose_headers: input.expose_headers.join(","),
        max_age: input
            .max_age
            .map(|d| d.to_std().as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: input.allow_credentials.map(|value| BoolValue { value }),
        filter_enabled: Some(RuntimeFractionalPercent {
            default_value: Some(hundredths(100)),
            ..Default::default()
        }),
        forward_not_matching_preflights: Some(BoolValue {
            value: input.unmatched_preflights != CorsPolicyUnmatchedPreflights::Ignore,
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use trellis_api::istio::networking::StringMatch;

    use super::*;

    #[test]
    fn policy() {
        let c = CorsPolicy {
            allow_origins: vec![
                StringMatch {
                    exact: Some("https://example.com".into()),
                    ..Default::default()
                },
                StringMatch {
                    regex: Some(".*\\.example\\.org".into()),
                    ..Default::default()
                },
            ],
            allow_methods: vec!["GET".into(), "POST".into()],
            max_age: Some(trellis_api::Duration::from_secs(86400)),
            allow_credentials: Some(false),
            ..Default::default()
        };
        let out = cors_policy(&c).unwrap();
        assert_eq!(out.allow_origin_string_match.len(), 2);
        assert_eq!(out.allow_methods, "GET,POST");
        assert_eq!(out.max_age, "86400");
        assert_eq!(out.allow_credentials, Some(BoolValue { value: false }));
        assert_eq!(
            out.forward_not_matching_preflights,
            Some(BoolValue { value: true })
        );
    }

    #[test]
    fn deprecated_origins_and_bad_regex() {
        let c = CorsPolicy {
            allow_origin: vec!["*".into()],
            unmatched_preflights: CorsPolicyUnmatchedPreflights::Ignore,
            ..Default::default()
        };
        let out = cors_policy(&c).unwrap();
        assert_eq!(out.allow_origin_string_match.len(), 1);
        assert_eq!(
            out.forward_not_matching_preflights,
            Some(BoolValue { value: false })
        );
        let c = CorsPolicy {
            allow_origins: vec![StringMatch {
                regex: Some("(".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(cors_policy(&c).is_err());
    }
}
