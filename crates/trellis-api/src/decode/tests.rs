use super::*;

fn decode(text: &str) -> Decoded {
    decode_bytes("test.yaml", text.as_bytes(), "default")
}

const REVIEWS: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 100
";

#[test]
fn reads_a_virtual_service_into_the_default_namespace() {
    let out = decode(REVIEWS);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let [vs] = out.resources.as_slice() else {
        panic!("one object expected")
    };
    assert_eq!(vs.full_name(), "default/reviews");
    let Spec::VirtualService(spec) = &vs.spec else {
        panic!("wrong kind")
    };
    let dest = spec.http[0].route[0].destination.as_ref().unwrap();
    assert_eq!(
        (dest.host.as_str(), dest.subset.as_str()),
        ("reviews", "v1")
    );
    assert_eq!(spec.http[0].route[0].weight, 100);
}

#[test]
fn unknown_field_names_its_path_and_the_nearest_field() {
    let out = decode(&REVIEWS.replace("weight:", "wieght:"));
    let [err] = out.errors.as_slice() else {
        panic!("{:?}", out.errors)
    };
    assert_eq!(err.path.as_deref(), Some("spec.http[0].route[0].wieght"));
    assert_eq!(err.message, "unknown field, did you mean `weight`?");
    assert_eq!(
        err.object.as_deref(),
        Some("VirtualService default/reviews")
    );
}

#[test]
fn one_broken_document_does_not_hide_the_others() {
    let text = format!(
        "{REVIEWS}---\nkind: [unclosed\n---\n{}",
        REVIEWS.replace("name: reviews", "name: other")
    );
    let out = decode(&text);
    assert_eq!(out.resources.len(), 2);
    let [err] = out.errors.as_slice() else {
        panic!("{:?}", out.errors)
    };
    assert!(err.message.starts_with("invalid YAML"), "{err}");
    assert_eq!(err.origin.line, 14);
}

#[test]
fn document_lines_are_counted_across_markers() {
    let text = format!("# comment\n---\n{REVIEWS}---\n{REVIEWS}");
    let out = decode(&text);
    let lines: Vec<usize> = out.resources.iter().map(|r| r.origin.line).collect();
    assert_eq!(lines, vec![3, 16]);
}

#[test]
fn reads_json_and_kind_list() {
    let json = r#"{"apiVersion":"v1","kind":"List","items":[
        {"apiVersion":"networking.istio.io/v1alpha3","kind":"Gateway","metadata":{"name":"gw","namespace":"istio-system"},"spec":{}},
        {"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sa"}}]}"#;
    let out = decode_bytes("x.json", json.as_bytes(), "default");
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.resources[0].full_name(), "istio-system/gw");
    assert_eq!(out.skipped[0].kind, "ServiceAccount");
}

#[test]
fn unknown_istio_kind_and_unserved_version_are_errors() {
    let out = decode(
        "apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: {name: a}\n---\napiVersion: networking.istio.io/v1\nkind: EnvoyFilter\nmetadata: {name: b}\n",
    );
    assert_eq!(out.errors.len(), 2);
    assert!(
        out.errors[0]
            .message
            .contains("did you mean \"VirtualService\""),
        "{}",
        out.errors[0]
    );
    assert!(
        out.errors[1]
            .message
            .contains("networking.istio.io/v1alpha3"),
        "{}",
        out.errors[1]
    );
}

#[test]
fn missing_name_and_unknown_enum_are_errors() {
    let out = decode(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {}\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec: {mtls: {mode: STRIKT}}\n",
    );
    assert_eq!(out.errors.len(), 2, "{:?}", out.errors);
    assert_eq!(out.errors[0].path.as_deref(), Some("metadata.name"));
    assert_eq!(out.errors[1].path.as_deref(), Some("spec.mtls.mode"));
    assert_eq!(
        out.errors[1].message,
        "unknown variant, did you mean `STRICT`?"
    );
}

#[test]
fn invalid_utf8_names_the_line() {
    let out = decode_bytes("bad.yaml", b"a: 1\nb: \xff\n", "default");
    assert_eq!(out.errors[0].origin.line, 2);
}

#[test]
fn durations_accept_go_syntax() {
    let out = decode(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: a\n  trafficPolicy:\n    outlierDetection: {interval: 5m, baseEjectionTime: 15m}\n",
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(decode(&deep).errors.len(), 1);
    assert_eq!(decode_bytes("d.json", deep.as_bytes(), "x").errors.len(), 1);
}

#[test]
fn yaml_1_1_booleans_follow_kubernetes() {
    // Kubernetes reads `y`, `yes`, `on` as booleans; so do we: a string field then needs quotes.
    let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec: {hosts: [y]}\n";
    let out = decode(text);
    assert_eq!(out.errors[0].path.as_deref(), Some("spec.hosts[0]"));
    assert!(
        out.errors[0].message.contains("boolean"),
        "{}",
        out.errors[0]
    );
}

#[test]
fn far_from_any_field_lists_the_camel_case_names_only() {
    let out = decode(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: r}\nspec:\n  jwtRules:\n  - issuer: x\n    completelyDifferent: 1\n",
    );
    let message = &out.errors[0].message;
    assert!(
        message.starts_with("unknown field `completelyDifferent`, expected one of issuer,"),
        "{message}"
    );
    assert!(
        message.contains("jwksUri") && !message.contains("jwks_uri"),
        "{message}"
    );
}

#[test]
fn crd_schema_violations_reject_the_object_with_the_api_server_s_words() {
    let text = "\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: empty-port-level
spec:
  selector:
    matchLabels:
      foo: bar
  portLevelMtls: {}
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: wasm
spec:
  url: oci://example/plugin
  pluginName: \"\"
  imagePullSecret: \"\"
  nosuch: 1
";
    let out = decode(text);
    assert!(out.resources.is_empty(), "{:?}", out.resources);
    let shown: Vec<String> = out.errors.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 4, "{shown:#?}");
    assert_eq!(
        shown[..3],
        [
            "test.yaml:9: PeerAuthentication default/empty-port-level: spec.portLevelMtls: \
             Invalid value: 0: spec.portLevelMtls in body should have at least 1 properties",
            "test.yaml:18: WasmPlugin default/wasm: spec.imagePullSecret: \
             Invalid value: \"\": spec.imagePullSecret in body should be at least 1 chars long",
            "test.yaml:17: WasmPlugin default/wasm: spec.pluginName: \
             Invalid value: \"\": spec.pluginName in body should be at least 1 chars long",
        ]
    );
    // The typed decoding's own complaint comes after the schema's.
    assert!(
        shown[3].starts_with("test.yaml:19: WasmPlugin default/wasm: spec.nosuch: unknown field"),
        "{}",
        shown[3]
    );
}
