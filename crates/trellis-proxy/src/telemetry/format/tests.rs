use std::time::{Duration, UNIX_EPOCH};

use envoy_types::pb::google::protobuf::{Struct, Value as PbValue, value::Kind as PbKind};
use hyper::HeaderMap;
use proptest::prelude::*;

use super::*;
use crate::flags::{Flag, Flags};

/// Istio's `EnvoyTextLogFormat` (meshConfig `accessLogFormat` unset).
const ISTIO_TEXT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// Istio's `EnvoyJSONLogFormatIstio` (`accessLogEncoding: JSON`).
fn istio_json() -> Struct {
    let fields = [
        ("start_time", "%START_TIME%"),
        ("route_name", "%ROUTE_NAME%"),
        ("method", "%REQ(:METHOD)%"),
        ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
        ("protocol", "%PROTOCOL%"),
        ("response_code", "%RESPONSE_CODE%"),
        ("response_flags", "%RESPONSE_FLAGS%"),
        ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
        (
            "connection_termination_details",
            "%CONNECTION_TERMINATION_DETAILS%",
        ),
        ("bytes_received", "%BYTES_RECEIVED%"),
        ("bytes_sent", "%BYTES_SENT%"),
        ("duration", "%DURATION%"),
        (
            "upstream_service_time",
            "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
        ),
        ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
        ("user_agent", "%REQ(USER-AGENT)%"),
        ("request_id", "%REQ(X-REQUEST-ID)%"),
        ("authority", "%REQ(:AUTHORITY)%"),
        ("upstream_host", "%UPSTREAM_HOST%"),
        ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
        ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
        ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
        ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
        ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
        (
            "upstream_transport_failure_reason",
            "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
        ),
    ];
    Struct {
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), string(v)))
            .collect(),
    }
}

fn string(s: &str) -> PbValue {
    PbValue {
        kind: Some(PbKind::StringValue(s.to_string())),
    }
}

fn text(format: &str, ctx: &Context<'_>) -> String {
    let mut out = String::new();
    Template::parse(format)
        .unwrap()
        .render(ctx, false, &mut out);
    out
}

fn json(s: &Struct, ctx: &Context<'_>) -> String {
    let f = Format {
        kind: Kind::Json(json::Node::from_struct(s).unwrap()),
        omit_empty: false,
    };
    let mut out = String::new();
    f.render(ctx, &mut out);
    out
}

/// The request Envoy 1.40 answered 503 UH (no healthy upstream) for the lines below.
fn no_healthy_upstream(headers: &HeaderMap) -> Context<'_> {
    let mut flags = Flags::default();
    flags.insert(Flag::NoHealthyUpstream);
    Context {
        start: Some(UNIX_EPOCH + Duration::from_millis(1_795_477_037_457)),
        request: Some(Request {
            method: "GET",
            path: "/empty",
            authority: "127.0.0.1:19901",
            scheme: "http",
            headers,
        }),
        protocol: Some("HTTP/1.1"),
        response_code: 503,
        flags,
        details: "no_healthy_upstream",
        bytes_sent: 19,
        upstream_cluster: "empty",
        route_name: "empty",
        downstream_local: Some("127.0.0.1:19901".parse().unwrap()),
        downstream_remote: Some("127.0.0.1:40570".parse().unwrap()),
        ..Context::default()
    }
}

fn curl_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("user-agent", "curl/7.88.1".parse().unwrap());
    h.insert(
        "x-request-id",
        "2f7d9cb5-0a35-421b-a3a2-817e909477d9".parse().unwrap(),
    );
    h
}

/// The lines Envoy 1.40 wrote for the same request (Istio's default formats).
#[test]
fn istios_formats_match_envoy() {
    let headers = curl_headers();
    let ctx = no_healthy_upstream(&headers);
    assert_eq!(
        text(ISTIO_TEXT, &ctx),
        "[2026-11-23T23:37:17.457Z] \"GET /empty HTTP/1.1\" 503 UH no_healthy_upstream - \"-\" 0 19 0 - \"-\" \"curl/7.88.1\" \"2f7d9cb5-0a35-421b-a3a2-817e909477d9\" \"127.0.0.1:19901\" \"-\" empty - 127.0.0.1:19901 127.0.0.1:40570 - empty\n"
    );
    assert_eq!(
        json(&istio_json(), &ctx),
        "{\"authority\":\"127.0.0.1:19901\",\"bytes_received\":0,\"bytes_sent\":19,\"connection_termination_details\":null,\"downstream_local_address\":\"127.0.0.1:19901\",\"downstream_remote_address\":\"127.0.0.1:40570\",\"duration\":0,\"method\":\"GET\",\"path\":\"/empty\",\"protocol\":\"HTTP/1.1\",\"request_id\":\"2f7d9cb5-0a35-421b-a3a2-817e909477d9\",\"requested_server_name\":null,\"response_code\":503,\"response_code_details\":\"no_healthy_upstream\",\"response_flags\":\"UH\",\"route_name\":\"empty\",\"start_time\":\"2026-11-23T23:37:17.457Z\",\"upstream_cluster\":\"empty\",\"upstream_host\":null,\"upstream_local_address\":null,\"upstream_service_time\":null,\"upstream_transport_failure_reason\":null,\"user_agent\":\"curl/7.88.1\",\"x_forwarded_for\":null}\n"
    );
}

#[test]
fn a_refused_tcp_connection_matches_envoy() {
    let mut flags = Flags::default();
    flags.insert(Flag::UpstreamConnectFailure);
    flags.insert(Flag::RetryLimitExceeded);
    let ctx = Context {
        start: Some(UNIX_EPOCH + Duration::from_millis(1_795_477_037_457)),
        flags,
        transport_failure: "delayed_connect_error:_Connection_refused",
        upstream_host: Some("127.0.0.1:1".parse().unwrap()),
        upstream_cluster: "refused",
        downstream_local: Some("127.0.0.1:19902".parse().unwrap()),
        downstream_remote: Some("127.0.0.1:58594".parse().unwrap()),
        ..Context::default()
    };
    assert_eq!(
        text(ISTIO_TEXT, &ctx),
        "[2026-11-23T23:37:17.457Z] \"- - -\" 0 UF,URX - - \"delayed_connect_error:_Connection_refused\" 0 0 0 - \"-\" \"-\" \"-\" \"-\" \"127.0.0.1:1\" refused - 127.0.0.1:19902 127.0.0.1:58594 - -\n"
    );
}

#[test]
fn operators_arguments_lengths_and_escapes() {
    let mut headers = curl_headers();
    headers.insert("x-b3", "abc".parse().unwrap());
    let mut ctx = no_healthy_upstream(&headers);
    ctx.downstream_peer_uri_san = "spiffe://cluster.local/ns/a/sa/client";
    ctx.upstream_peer_uri_san = "spiffe://cluster.local/ns/b/sa/server";
    ctx.connection_id = Some(7);
    let t = |f: &str| text(f, &ctx);
    assert_eq!(
        t("%REQ(USER-AGENT):4%|%REQ(user-agent)%"),
        "curl|curl/7.88.1"
    );
    assert_eq!(t("%REQ(X-MISSING?X-B3)% %REQ(X-MISSING)%"), "abc -");
    assert_eq!(t("%REQUEST_HEADER(:PATH)% %RESP(SERVER)%"), "/empty -");
    assert_eq!(t("100%% %RESPONSE_CODE%"), "100% 503");
    assert_eq!(t("%START_TIME(%s.%3f)%"), "1795477037.457");
    assert_eq!(
        t("%DOWNSTREAM_PEER_URI_SAN% %UPSTREAM_PEER_URI_SAN% %DOWNSTREAM_LOCAL_URI_SAN%"),
        "spiffe://cluster.local/ns/a/sa/client spiffe://cluster.local/ns/b/sa/server -"
    );
    assert_eq!(
        t("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_PORT% %CONNECTION_ID%"),
        "127.0.0.1 19901 7"
    );
    assert_eq!(t("%RESPONSE_FLAGS_LONG%"), "NoHealthyUpstream");
    assert_eq!(t("%DYNAMIC_METADATA(istio.mixer:status)%"), "-");
    assert_eq!(t("%ROUTE_NAME%:%UPSTREAM_CLUSTER%"), "empty:empty");
    ctx.request = ctx.request.map(|r| Request {
        path: "/a?b=c",
        ..r
    });
    assert_eq!(
        text("%REQ_WITHOUT_QUERY(:PATH)% %REQ(:PATH)%", &ctx),
        "/a /a?b=c"
    );
}

/// Envoy's own default (a file logger without a format), as its docs show it.
#[test]
fn envoys_default_format() {
    let headers = curl_headers();
    let ctx = no_healthy_upstream(&headers);
    let mut out = String::new();
    Format::envoy_default().render(&ctx, &mut out);
    assert_eq!(
        out,
        "[2026-11-23T23:37:17.457Z] \"GET /empty HTTP/1.1\" 503 UH 0 19 0 - \"-\" \"curl/7.88.1\" \"2f7d9cb5-0a35-421b-a3a2-817e909477d9\" \"127.0.0.1:19901\" \"-\"\n"
    );
}

#[test]
fn errors_are_envoys() {
    assert_eq!(
        Template::parse("abc %FOO% d").unwrap_err().to_string(),
        "Not supported field in StreamInfo: FOO"
    );
    assert_eq!(
        Template::parse("ab %RESPONSE_CODE")
            .unwrap_err()
            .to_string(),
        "Incorrect configuration: ab %RESPONSE_CODE. Couldn't find valid command at position 3"
    );
    for bad in [
        "%",
        "%REQ(a%",
        "%lower%",
        "%REQ(A):x%",
        "%REQ%",
        "%PROTOCOL(x)%",
    ] {
        assert!(Template::parse(bad).is_err(), "{bad}");
    }
    let t = Template::parse("%CEL(x)% %UNIQUE_ID% %REQ(:PATH)%").unwrap();
    assert_eq!(t.unimplemented().collect::<Vec<_>>(), ["CEL", "UNIQUE_ID"]);
}

#[test]
fn json_types_nesting_and_omission() {
    let headers = curl_headers();
    let ctx = no_healthy_upstream(&headers);
    let s = Struct {
        fields: [
            ("code".to_string(), string("%RESPONSE_CODE%")),
            ("code_text".to_string(), string("code %RESPONSE_CODE%")),
            ("missing".to_string(), string("%UPSTREAM_HOST%")),
            ("mixed".to_string(), string("at %UPSTREAM_HOST% \"q\"")),
            (
                "n".to_string(),
                PbValue {
                    kind: Some(PbKind::NumberValue(1.5)),
                },
            ),
            (
                "nested".to_string(),
                PbValue {
                    kind: Some(PbKind::StructValue(Struct {
                        fields: [("port".to_string(), string("%DOWNSTREAM_LOCAL_PORT%"))]
                            .into_iter()
                            .collect(),
                    })),
                },
            ),
        ]
        .into_iter()
        .collect(),
    };
    assert_eq!(
        json(&s, &ctx),
        "{\"code\":503,\"code_text\":\"code 503\",\"missing\":null,\"mixed\":\"at - \\\"q\\\"\",\"n\":1.5,\"nested\":{\"port\":19901}}\n"
    );
    let omitting = Format {
        kind: Kind::Json(json::Node::from_struct(&s).unwrap()),
        omit_empty: true,
    };
    let mut out = String::new();
    omitting.render(&ctx, &mut out);
    assert!(!out.contains("missing"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["nested"]["port"], 19901);
}

proptest! {
    /// Whatever the control plane sends, parsing and rendering never panic.
    #[test]
    fn arbitrary_formats_never_panic(format in "([%()?:A-Z_0-9a-z ]|%REQ\\([A-Za-z:-]{0,8}\\)(:[0-9]{1,3})?%|%START_TIME\\([%a-zA-Z0-9 ]{0,8}\\)%|é){0,16}") {
        let headers = curl_headers();
        let ctx = no_healthy_upstream(&headers);
        if let Ok(t) = Template::parse(&format) {
            let mut out = String::new();
            t.render(&ctx, false, &mut out);
            t.render(&ctx, true, &mut out);
        }
    }
}

proptest! {
    /// Text without `%` is its own rendering.
    #[test]
    fn literal_text_renders_as_itself(format in "[^%]{0,40}") {
        let ctx = Context::default();
        prop_assert_eq!(text(&format, &ctx), format);
    }
}
