//! Arbitrary bytes through authentication and authorization: a token verified by a
//! `jwt_authn` filter with a fixed JWKS (RSA sample key of Istio, an EC key, an HMAC key),
//! and an arbitrary protobuf RBAC filter converted and evaluated against arbitrary request
//! attributes (path, header, JWT-claim metadata). Any panic is a bug.
#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::route::v3::RouteMatch;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_provider::JwksSourceSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_requirement::RequiresType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::requirement_rule::RequirementType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtProvider, JwtRequirement, RequirementRule,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as PbHttpRbac;
use hyper::HeaderMap;
use hyper::header::HeaderValue;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use trellis_proxy::jwt::authn::{Request as JwtRequest, authenticate};
use trellis_proxy::jwt::config::JwtAuthn;
use trellis_proxy::rbac::matcher::{Attributes, Metadata, PeerIdentity, Request, evaluate};

const JWKS: &str = include_str!("../../../shared/corpus/istio/security/tools/jwt/samples/jwks.json");
const EXTRA_KEYS: &str = r#"{"keys":[
 {"kty":"EC","crv":"P-256","kid":"ec","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
 {"kty":"oct","kid":"hs","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#;

static JWT: LazyLock<JwtAuthn> = LazyLock::new(|| {
    let provider = |jwks: &str| JwtProvider {
        issuer: "testing@secure.istio.io".into(),
        payload_in_metadata: "payload".into(),
        forward_payload_header: "x-payload".into(),
        jwks_source_specifier: Some(JwksSourceSpecifier::LocalJwks(DataSource {
            watched_directory: None,
            specifier: Some(Specifier::InlineString(jwks.into())),
        })),
        ..Default::default()
    };
    let requires = |r| JwtRequirement { requires_type: Some(r) };
    let cfg = JwtAuthentication {
        providers: HashMap::from([
            ("a".to_string(), provider(JWKS)),
            ("b".to_string(), provider(EXTRA_KEYS)),
        ]),
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            requirement_type: Some(RequirementType::Requires(requires(RequiresType::RequiresAny(
                envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::JwtRequirementOrList {
                    requirements: vec![
                        requires(RequiresType::ProviderName("a".into())),
                        requires(RequiresType::ProviderName("b".into())),
                        requires(RequiresType::AllowMissing(Default::default())),
                    ],
                },
            )))),
        }],
        ..Default::default()
    };
    trellis_proxy::jwt::convert::jwt_authn(&cfg, "fuzz").expect("fixed config converts")
});

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == 0);
    let token = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let policy = parts.next().unwrap_or_default();
    let claims = parts.next().unwrap_or_default();

    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        headers.insert("authorization", v);
    }
    if let Ok(v) = HeaderValue::from_bytes(token.as_bytes()) {
        headers.insert("x-token", v);
    }
    let _ = trellis_proxy::jwt::token::parse(&token).map(|t| t.check_time(1_700_000_000, 60));
    let _ = authenticate(
        &JWT,
        &JwtRequest { method: "GET", path: &path, headers: &headers },
        1_700_000_000,
    );

    let Ok(pb) = PbHttpRbac::decode(policy) else {
        return;
    };
    let Ok(rbac) = trellis_proxy::rbac::convert::http_rbac(&pb, "fuzz") else {
        return;
    };
    let mut metadata = Metadata::new();
    if let Ok(serde_json::Value::Object(payload)) = serde_json::from_slice(claims) {
        metadata.insert(
            "envoy.filters.http.jwt_authn".into(),
            serde_json::Map::from_iter([("payload".to_string(), serde_json::Value::Object(payload))]),
        );
    }
    let peer = PeerIdentity { principal: Some(token.to_string()) };
    let attributes = Attributes {
        destination: "10.0.0.1:9080".parse().expect("address"),
        direct_remote: "10.0.0.2:4000".parse().expect("address"),
        remote: "10.0.0.3".parse().expect("address"),
        server_name: &token,
        peer: &peer,
        request: Some(Request {
            method: "GET",
            path: &path,
            authority: &token,
            scheme: "http",
            headers: &headers,
        }),
        metadata: &metadata,
    };
    for rules in [&rbac.rules, &rbac.shadow_rules].into_iter().flatten() {
        let _ = evaluate(rules, &attributes);
    }
});
