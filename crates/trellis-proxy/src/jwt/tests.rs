//! JWT verification against Istio's sample tokens and key sets (`shared/corpus/jwt`), tokens
//! signed here with the corpus key and fresh EC/Ed25519/HMAC keys, malformed input, and the
//! filter's requirement semantics as Istio configures it (built as Envoy protos, converted).

use std::collections::HashMap;
use std::path::PathBuf;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
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
    JwtAuthentication, JwtClaimToHeader, JwtHeader, JwtProvider, JwtRequirement,
    JwtRequirementOrList, RemoteJwks, RequirementRule,
};
use hyper::HeaderMap;
use serde_json::{Value, json};

use super::authn::{Effects, Request, Verdict, authenticate};
use super::config::JwtAuthn;
use super::convert::jwt_authn;
use super::jwks;
use super::status::Status;
use super::token;

const NOW: u64 = 1_700_000_000;

fn corpus() -> PathBuf {
    std::env::var_os("TRELLIS_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(corpus().join(rel)).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload.signature` with `sign` over the first two.
fn token(header: Value, claims: Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let signed = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign(signed.as_bytes());
    format!("{signed}.{}", b64(&sig))
}

/// The corpus's sample signing key (the private half of `samples/jwks.json`).
fn sample_key() -> RsaKeyPair {
    let pem = read("istio/security/tools/jwt/samples/key.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    RsaKeyPair::from_der(&STANDARD.decode(body).unwrap()).unwrap()
}

fn rsa_sign(
    key: &RsaKeyPair,
    alg: &'static dyn signature::RsaEncoding,
) -> impl Fn(&[u8]) -> Vec<u8> {
    move |m: &[u8]| {
        let mut sig = vec![0; key.public_modulus_len()];
        key.sign(alg, &SystemRandom::new(), m, &mut sig).unwrap();
        sig
    }
}

const SAMPLE_KID: &str = "DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ";
const SAMPLE_ISS: &str = "testing@secure.istio.io";

fn sample_keys() -> Vec<jwks::Jwk> {
    jwks::parse(&read("istio/security/tools/jwt/samples/jwks.json")).unwrap()
}

fn verify(t: &str, keys: &[jwks::Jwk]) -> Result<(), Status> {
    let jwt = token::parse(t)?;
    jwt.check_time(NOW, 60)?;
    jwt.verify(keys)
}

#[test]
fn corpus_tokens_verify_or_fail_as_istio_says() {
    let sets = [
        (
            "istio/security/tools/jwt/samples",
            jwks::parse(&read("istio/security/tools/jwt/samples/jwks.json")).unwrap(),
        ),
        (
            "istio/tests/common/jwt",
            jwks::parse(&read("istio/tests/common/jwt/jwks.json")).unwrap(),
        ),
    ];
    let rows = read("jwt/tokens.jsonl");
    let mut checked = 0;
    for line in rows.lines().filter(|l| !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).unwrap();
        let name = row["name"].as_str().unwrap();
        let t = row["token"].as_str().unwrap();
        let set = row["jwks"].as_str().unwrap();
        let keys = &sets.iter().find(|(dir, _)| set.starts_with(dir)).unwrap().1;
        let expired = row["claims"]["exp"]
            .as_u64()
            .is_some_and(|exp| exp + 60 < NOW);
        let want = match (row["signature_verified_with_jwks"].as_bool(), expired) {
            (Some(true), false) => Ok(()),
            (Some(true), true) => Err(Status::Expired),
            _ => Err(Status::VerificationFail),
        };
        assert_eq!(verify(t, keys), want, "{name}");
        let jwt = token::parse(t).unwrap();
        let principal = format!("{}/{}", jwt.iss, jwt.claims["sub"].as_str().unwrap());
        assert_eq!(
            principal,
            row["request_principal"].as_str().unwrap(),
            "{name}"
        );
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} corpus tokens");
    println!("corpus JWTs: {checked} checked");
}

#[test]
fn the_expired_corpus_token_is_rejected_today() {
    let rows = read("jwt/tokens.jsonl");
    let expired = rows
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["name"] == "TokenExpired")
        .unwrap();
    let keys = jwks::parse(&read("istio/tests/common/jwt/jwks.json")).unwrap();
    let jwt = token::parse(expired["token"].as_str().unwrap()).unwrap();
    assert_eq!(jwt.verify(&keys), Ok(()), "the signature itself is good");
    assert_eq!(jwt.check_time(NOW, 60), Err(Status::Expired));
}

#[test]
fn rsa_pkcs1_and_pss_signatures_of_the_sample_key() {
    let key = sample_key();
    let keys = sample_keys();
    let claims = json!({"iss": SAMPLE_ISS, "sub": "x", "exp": NOW + 100});
    for (alg, enc) in [
        (
            "RS256",
            &signature::RSA_PKCS1_SHA256 as &'static dyn signature::RsaEncoding,
        ),
        ("RS384", &signature::RSA_PKCS1_SHA384),
        ("RS512", &signature::RSA_PKCS1_SHA512),
        ("PS256", &signature::RSA_PSS_SHA256),
        ("PS384", &signature::RSA_PSS_SHA384),
        ("PS512", &signature::RSA_PSS_SHA512),
    ] {
        let t = token(
            json!({"alg": alg, "kid": SAMPLE_KID}),
            claims.clone(),
            rsa_sign(&key, enc),
        );
        assert_eq!(verify(&t, &keys), Ok(()), "{alg}");
        // The same signature claimed as another algorithm fails.
        let other = if alg.starts_with("RS") {
            "PS256"
        } else {
            "RS256"
        };
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        parts[0] = b64(json!({"alg": other, "kid": SAMPLE_KID})
            .to_string()
            .as_bytes());
        assert_eq!(
            verify(&parts.join("."), &keys),
            Err(Status::VerificationFail),
            "{alg} as {other}"
        );
    }
}

#[test]
fn ec_eddsa_and_hmac_keys() {
    let rng = SystemRandom::new();
    let mut keys = Vec::new();
    let mut tokens = Vec::new();
    let claims = json!({"iss": "me", "exp": NOW + 100});
    for (alg, sign_alg, crv) in [
        (
            "ES256",
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            "P-256",
        ),
        (
            "ES384",
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            "P-384",
        ),
        (
            "ES512",
            &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            "P-521",
        ),
    ] {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(sign_alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(sign_alg, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let half = (point.len() - 1) / 2;
        keys.push(json!({"kty": "EC", "crv": crv, "kid": alg,
            "x": b64(&point[1..=half]), "y": b64(&point[half + 1..])}));
        tokens.push((
            alg,
            token(
                json!({"alg": alg, "kid": alg}),
                claims.clone(),
                |m: &[u8]| pair.sign(&rng, m).unwrap().as_ref().to_vec(),
            ),
        ));
    }
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    keys.push(json!({"kty": "OKP", "crv": "Ed25519", "x": b64(ed.public_key().as_ref())}));
    tokens.push((
        "EdDSA",
        token(json!({"alg": "EdDSA"}), claims.clone(), |m: &[u8]| {
            ed.sign(m).as_ref().to_vec()
        }),
    ));
    let secret = b"a shared secret of enough length!";
    keys.push(json!({"kty": "oct", "k": b64(secret), "alg": "HS256"}));
    tokens.push((
        "HS256",
        token(json!({"alg": "HS256"}), claims.clone(), |m: &[u8]| {
            let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
            aws_lc_rs::hmac::sign(&k, m).as_ref().to_vec()
        }),
    ));
    let keys = jwks::parse(&json!({"keys": keys}).to_string()).unwrap();
    assert_eq!(keys.len(), 5);
    for (alg, t) in &tokens {
        assert_eq!(verify(t, &keys), Ok(()), "{alg}");
        // Flip one bit of the signature: it no longer verifies.
        let (head, sig) = t.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
        raw[0] ^= 1;
        let bad = format!("{head}.{}", b64(&raw));
        assert_eq!(verify(&bad, &keys), Err(Status::VerificationFail), "{alg}");
    }
}

#[test]
fn malformed_tokens_fail_with_envoys_reasons() {
    let keys = sample_keys();
    let good = token(
        json!({"alg": "RS256", "kid": SAMPLE_KID}),
        json!({"iss": SAMPLE_ISS}),
        rsa_sign(&sample_key(), &signature::RSA_PKCS1_SHA256),
    );
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let enc = |v: Value| b64(v.to_string().as_bytes());
    let cases: Vec<(String, Status)> = vec![
        ("".into(), Status::BadFormat),
        ("abc".into(), Status::BadFormat),
        (format!("{h}.{p}"), Status::BadFormat),
        (format!("{good}.x"), Status::BadFormat),
        (format!("!!!.{p}.{s}"), Status::HeaderBadBase64),
        (
            format!("{}.{p}.{s}", b64(b"not json")),
            Status::HeaderBadJson,
        ),
        (
            format!("{}.{p}.{s}", enc(json!({"kid": "x"}))),
            Status::HeaderBadAlg,
        ),
        (
            format!("{}.{p}.{s}", enc(json!({"alg": 1}))),
            Status::HeaderBadAlg,
        ),
        (
            format!("{}.{p}.{s}", enc(json!({"alg": "none"}))),
            Status::HeaderNotImplementedAlg,
        ),
        (
            format!("{}.{p}.", enc(json!({"alg": "none"}))),
            Status::BadFormat,
        ),
        (format!(".{p}.{s}"), Status::BadFormat),
        (
            format!("{}.{p}.{s}", enc(json!({"alg": "RS256", "kid": 7}))),
            Status::HeaderBadKid,
        ),
        (format!("{h}.%%%.{s}"), Status::PayloadBadBase64),
        (
            format!("{h}.{}.{s}", enc(json!([1, 2]))),
            Status::PayloadBadJson,
        ),
        (
            format!("{h}.{}.{s}", enc(json!({"iss": 5}))),
            Status::IssNotString,
        ),
        (
            format!("{h}.{}.{s}", enc(json!({"exp": "soon"}))),
            Status::ExpNotInteger,
        ),
        (
            format!("{h}.{}.{s}", enc(json!({"exp": -5}))),
            Status::ExpNotPositive,
        ),
        (
            format!("{h}.{}.{s}", enc(json!({"aud": [1]}))),
            Status::AudNotString,
        ),
        (format!("{h}.{p}.***"), Status::SignatureBadBase64),
        (
            format!("{h}.{p}.{}", b64(b"garbage")),
            Status::VerificationFail,
        ),
        ("a".repeat(token::MAX_TOKEN_LEN + 1), Status::BadFormat),
    ];
    for (t, want) in cases {
        let got = verify(&t, &keys);
        assert_eq!(got, Err(want), "{}", &t[..t.len().min(80)]);
    }
    // A kid the JWKS does not have, and an algorithm no key fits.
    let unknown = token(
        json!({"alg": "RS256", "kid": "nope"}),
        json!({}),
        rsa_sign(&sample_key(), &signature::RSA_PKCS1_SHA256),
    );
    assert_eq!(verify(&unknown, &keys), Err(Status::KidAlgMismatch));
    let hs = token(json!({"alg": "HS256"}), json!({}), |_| vec![0; 32]);
    assert_eq!(verify(&hs, &keys), Err(Status::KidAlgMismatch));
    assert_eq!(verify(&good, &keys), Ok(()));
}

#[test]
fn time_window_with_clock_skew_and_audiences() {
    let parsed = |claims: Value| {
        let t = token(json!({"alg": "HS256"}), claims, |_| vec![1]);
        let j = token::parse(&t).unwrap();
        (
            j.check_time(NOW, 60),
            j.audience_allowed(&["https://foo.com/".to_string()]),
        )
    };
    assert_eq!(parsed(json!({"exp": NOW - 60})).0, Ok(()));
    assert_eq!(parsed(json!({"exp": NOW - 61})).0, Err(Status::Expired));
    assert_eq!(parsed(json!({"nbf": NOW + 60})).0, Ok(()));
    assert_eq!(parsed(json!({"nbf": NOW + 61})).0, Err(Status::NotYetValid));
    assert!(parsed(json!({"aud": "foo.com"})).1);
    assert!(parsed(json!({"aud": ["x", "http://foo.com"]})).1);
    assert!(!parsed(json!({"aud": "bar.com"})).1);
    assert!(!parsed(json!({})).1);
}

// ---------------------------------------------------------------------------------------
// The filter, configured as Istio's RequestAuthentication translation emits it.

fn provider(issuer: &str, jwks: &str) -> JwtProvider {
    JwtProvider {
        issuer: issuer.into(),
        payload_in_metadata: "payload".into(),
        normalize_payload_in_metadata: Some(NormalizePayload {
            space_delimited_claims: vec!["scope".into(), "permission".into()],
        }),
        jwks_source_specifier: Some(JwksSourceSpecifier::LocalJwks(DataSource {
            watched_directory: None,
            specifier: Some(Specifier::InlineString(jwks.into())),
        })),
        ..Default::default()
    }
}

fn requires(r: RequiresType) -> JwtRequirement {
    JwtRequirement {
        requires_type: Some(r),
    }
}

/// Istio's single-provider filter: `requires_any {origins-0, allow_missing}` on prefix `/`.
fn istio_filter(p: JwtProvider) -> JwtAuthentication {
    JwtAuthentication {
        providers: HashMap::from([("origins-0".to_string(), p)]),
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            requirement_type: Some(RequirementType::Requires(requires(
                RequiresType::RequiresAny(JwtRequirementOrList {
                    requirements: vec![
                        requires(RequiresType::ProviderName("origins-0".into())),
                        requires(RequiresType::AllowMissing(Default::default())),
                    ],
                }),
            ))),
        }],
        bypass_cors_preflight: true,
        ..Default::default()
    }
}

fn run(cfg: &JwtAuthn, method: &str, path: &str, headers: &[(&str, &str)]) -> Verdict {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    authenticate(
        cfg,
        &Request {
            method,
            path,
            headers: &h,
        },
        NOW,
    )
}

fn sample_token(claims: Value) -> String {
    token(
        json!({"alg": "RS256", "kid": SAMPLE_KID}),
        claims,
        rsa_sign(&sample_key(), &signature::RSA_PKCS1_SHA256),
    )
}

#[test]
fn istio_requirement_missing_passes_invalid_fails() {
    let cfg = jwt_authn(
        &istio_filter(provider(
            SAMPLE_ISS,
            &read("istio/security/tools/jwt/samples/jwks.json"),
        )),
        "l",
    )
    .unwrap();
    let good = sample_token(json!({"iss": SAMPLE_ISS, "sub": "alice", "scope": "read write"}));
    let bearer = format!("Bearer {good}");
    let Verdict::Passed(Effects {
        metadata,
        remove_headers,
        ..
    }) = run(&cfg, "GET", "/", &[("authorization", &bearer)])
    else {
        panic!("valid token refused");
    };
    let (key, claims) = &metadata[0];
    assert_eq!(key, "payload");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(
        claims["scope"],
        json!(["read", "write"]),
        "space-delimited claims become lists"
    );
    assert_eq!(
        remove_headers,
        vec!["authorization".to_string()],
        "forward: false strips the token"
    );
    // No token at all: allowed (the RBAC filter decides about anonymous requests).
    assert_eq!(
        run(&cfg, "GET", "/", &[]),
        Verdict::Passed(Effects::default())
    );
    // In the default query parameter.
    assert!(matches!(
        run(&cfg, "GET", &format!("/?access_token={good}"), &[]),
        Verdict::Passed(_)
    ));
    let expired = sample_token(json!({"iss": SAMPLE_ISS, "exp": NOW - 1000}));
    assert_eq!(
        run(
            &cfg,
            "GET",
            "/",
            &[("authorization", &format!("Bearer {expired}"))]
        ),
        Verdict::Failed(Status::Expired)
    );
    assert_eq!(
        run(&cfg, "GET", "/", &[("authorization", "Bearer not.a.token")]),
        Verdict::Failed(Status::HeaderBadJson)
    );
    let (head, sig) = good.rsplit_once('.').unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    raw[10] ^= 0x40;
    let forged = format!("{head}.{}", b64(&raw));
    assert_eq!(
        run(
            &cfg,
            "GET",
            "/",
            &[("authorization", &format!("Bearer {forged}"))]
        ),
        Verdict::Failed(Status::VerificationFail)
    );
    // A well-signed token of an issuer no provider has (Envoy's answer, per the differential test).
    let stranger = sample_token(json!({"iss": "someone@else"}));
    assert_eq!(
        run(
            &cfg,
            "GET",
            "/",
            &[("authorization", &format!("Bearer {stranger}"))]
        ),
        Verdict::Failed(Status::UnknownIssuer)
    );
    // CORS preflight bypasses.
    assert_eq!(
        run(
            &cfg,
            "OPTIONS",
            "/",
            &[
                ("authorization", "Bearer x"),
                ("origin", "o"),
                ("access-control-request-method", "GET")
            ]
        ),
        Verdict::Bypassed
    );
}

#[test]
fn locations_outputs_and_audiences() {
    let mut p = provider(
        SAMPLE_ISS,
        &read("istio/security/tools/jwt/samples/jwks.json"),
    );
    p.from_headers = vec![JwtHeader {
        name: "X-Jwt".into(),
        value_prefix: "Token ".into(),
    }];
    p.from_params = vec!["jwt".into()];
    p.from_cookies = vec!["session".into()];
    p.forward = true;
    p.forward_payload_header = "x-payload".into();
    p.claim_to_headers = vec![
        JwtClaimToHeader {
            header_name: "x-sub".into(),
            claim_name: "sub".into(),
            claim_path: vec![],
        },
        JwtClaimToHeader {
            header_name: "x-nested".into(),
            claim_name: "a.b".into(),
            claim_path: vec![],
        },
    ];
    p.audiences = vec!["bookinfo".into()];
    let cfg = jwt_authn(&istio_filter(p), "l").unwrap();
    let good =
        sample_token(json!({"iss": SAMPLE_ISS, "sub": "bob", "aud": "bookinfo", "a": {"b": 7}}));
    let payload = good.split('.').nth(1).unwrap().to_string();
    let want = Effects {
        metadata: vec![(
            "payload".into(),
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&payload).unwrap()).unwrap(),
        )],
        add_headers: vec![
            ("x-payload".into(), payload),
            ("x-sub".into(), "bob".into()),
            ("x-nested".into(), "7".into()),
        ],
        remove_headers: vec![],
    };
    let passed = |v: Verdict| match v {
        Verdict::Passed(e) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        passed(run(
            &cfg,
            "GET",
            "/",
            &[("x-jwt", &format!("Token {good}"))]
        )),
        want
    );
    assert_eq!(
        passed(run(&cfg, "GET", &format!("/p?a=1&jwt={good}"), &[])),
        want
    );
    assert_eq!(
        passed(run(
            &cfg,
            "GET",
            "/",
            &[("cookie", &format!("x=1; session={good}"))]
        )),
        want
    );
    // The default Authorization header is not looked at when locations are configured.
    assert_eq!(
        run(&cfg, "GET", "/", &[("authorization", "Bearer garbage")]),
        Verdict::Passed(Effects::default())
    );
    let other_aud = sample_token(json!({"iss": SAMPLE_ISS, "aud": "other"}));
    assert_eq!(
        run(
            &cfg,
            "GET",
            "/",
            &[("x-jwt", &format!("Token {other_aud}"))]
        ),
        Verdict::Failed(Status::AudienceNotAllowed)
    );
}

#[test]
fn a_provider_requirement_without_a_token_is_missing() {
    let mut cfg = istio_filter(provider(
        SAMPLE_ISS,
        &read("istio/security/tools/jwt/samples/jwks.json"),
    ));
    cfg.rules[0].requirement_type = Some(RequirementType::Requires(requires(
        RequiresType::ProviderName("origins-0".into()),
    )));
    let cfg = jwt_authn(&cfg, "l").unwrap();
    assert_eq!(run(&cfg, "GET", "/", &[]), Verdict::Failed(Status::Missing));
    assert_eq!(Status::Missing.http_status(), 401);
    assert_eq!(Status::AudienceNotAllowed.http_status(), 403);
    assert_eq!(
        Status::Missing.details(),
        "jwt_authn_access_denied{Jwt_is_missing}"
    );
}

#[test]
fn an_unreadable_jwks_is_accepted_and_fails_tokens() {
    let cfg = jwt_authn(&istio_filter(provider(SAMPLE_ISS, "not json")), "l").unwrap();
    let t = sample_token(json!({"iss": SAMPLE_ISS}));
    assert_eq!(
        run(
            &cfg,
            "GET",
            "/",
            &[("authorization", &format!("Bearer {t}"))]
        ),
        Verdict::Failed(Status::JwksFetchFail)
    );
}

#[test]
fn unsupported_settings_are_rejected_by_name() {
    let mut remote = provider("i", "{}");
    remote.jwks_source_specifier = Some(JwksSourceSpecifier::RemoteJwks(RemoteJwks::default()));
    let err = jwt_authn(&istio_filter(remote), "l").unwrap_err();
    assert!(err.contains("remote_jwks is not implemented"), "{err}");
    let mut expiring = provider("i", "{}");
    expiring.require_expiration = true;
    let err = jwt_authn(&istio_filter(expiring), "l").unwrap_err();
    assert!(err.contains("require_expiration"), "{err}");
    let mut unknown = istio_filter(provider("i", "{}"));
    unknown.rules[0].requirement_type = Some(RequirementType::Requires(requires(
        RequiresType::ProviderName("nope".into()),
    )));
    let err = jwt_authn(&unknown, "l").unwrap_err();
    assert!(err.contains("unknown provider \"nope\""), "{err}");
    let mut map = istio_filter(provider("i", "{}"));
    map.requirement_map.insert(
        "r".into(),
        requires(RequiresType::AllowMissing(Default::default())),
    );
    let err = jwt_authn(&map, "l").unwrap_err();
    assert!(err.contains("requirement_map is not implemented"), "{err}");
}
