//! Property tests: whatever the input, parse → validate → analyze reports problems and
//! never panics.

use proptest::prelude::*;
use serde_json::{Map, Value};
use trellis_api::istio::mesh::MeshConfig;
use trellis_api::{Kind, decode_bytes};

/// Field names of Istio's API, so that random trees reach deep into the typed decoding and
/// the validators instead of stopping at the first unknown field.
const KEYS: &[&str] = &[
    "hosts",
    "http",
    "route",
    "destination",
    "host",
    "subset",
    "weight",
    "match",
    "uri",
    "exact",
    "prefix",
    "regex",
    "headers",
    "timeout",
    "retries",
    "attempts",
    "perTryTimeout",
    "retryOn",
    "fault",
    "delay",
    "abort",
    "fixedDelay",
    "httpStatus",
    "percentage",
    "value",
    "mirror",
    "mirrors",
    "gateways",
    "servers",
    "port",
    "number",
    "protocol",
    "name",
    "tls",
    "mode",
    "credentialName",
    "subsets",
    "labels",
    "trafficPolicy",
    "loadBalancer",
    "simple",
    "consistentHash",
    "httpHeaderName",
    "connectionPool",
    "tcp",
    "maxConnections",
    "outlierDetection",
    "consecutive5xxErrors",
    "interval",
    "baseEjectionTime",
    "selector",
    "matchLabels",
    "rules",
    "from",
    "source",
    "principals",
    "namespaces",
    "to",
    "operation",
    "methods",
    "paths",
    "ports",
    "when",
    "key",
    "values",
    "action",
    "provider",
    "mtls",
    "portLevelMtls",
    "jwtRules",
    "issuer",
    "jwksUri",
    "egress",
    "ingress",
    "defaultEndpoint",
    "bind",
    "captureMode",
    "workloadSelector",
    "endpoints",
    "address",
    "resolution",
    "location",
    "exportTo",
    "sniHosts",
    "redirect",
    "rewrite",
    "authority",
    "corsPolicy",
    "allowOrigins",
    "delegate",
    "namespace",
    "directResponse",
    "status",
    "body",
    "string",
    "targetRefs",
    "targetRef",
    "kind",
    "group",
    "accessLogging",
    "providers",
    "metrics",
    "tracing",
    "configPatches",
    "applyTo",
    "patch",
    "context",
    "listener",
    "portLevelSettings",
    "outboundTrafficPolicy",
    "serviceAccount",
    "network",
    "locality",
    "template",
    "probe",
];

const STRINGS: &[&str] = &[
    "",
    "*",
    "*.example.com",
    "reviews",
    "reviews.default.svc.cluster.local",
    "v1",
    "1s",
    "100ms",
    "-1s",
    "apple",
    "10.0.0.0/8",
    "::1/128",
    "GET",
    "HTTP",
    "HTTPS",
    "TCP",
    "GRPC",
    "TLS",
    "ISTIO_MUTUAL",
    "SIMPLE",
    "STRICT",
    "PERMISSIVE",
    "ALLOW",
    "DENY",
    "ROUND_ROBIN",
    "ns/host",
    "./*",
    "~/*",
    "default",
    "istio-system",
    "a/b/c",
    "[invalid(regex",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0u32..70000).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        proptest::sample::select(STRINGS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(proptest::sample::select(KEYS), inner, 0..5).prop_map(
                |m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            ),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    (proptest::sample::select(Kind::ALL), tree(), "[a-z]{1,8}").prop_map(|(kind, spec, name)| {
        let mut map = Map::new();
        map.insert("apiVersion".into(), kind.preferred_api_version().into());
        map.insert("kind".into(), kind.as_str().into());
        map.insert("metadata".into(), serde_json::json!({ "name": name }));
        map.insert("spec".into(), spec);
        Value::Object(map)
    })
}

fn run_all(bytes: &[u8]) {
    let decoded = decode_bytes("prop.yaml", bytes, "default");
    for resource in &decoded.resources {
        let _ = trellis_config::validate::validate(resource);
    }
    let _ = trellis_config::analyze::analyze(&decoded.resources, &MeshConfig::default());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        run_all(&bytes);
    }

    #[test]
    fn arbitrary_yaml_objects_never_panic(objects in prop::collection::vec(object(), 1..6)) {
        let docs: Vec<String> = objects
            .iter()
            .map(|o| serde_saphyr::to_string(o).unwrap_or_default())
            .collect();
        run_all(docs.join("---\n").as_bytes());
        // The same objects as JSON take the JSON path of the decoder.
        run_all(serde_json::to_string(&objects).unwrap_or_default().as_bytes());
    }
}
