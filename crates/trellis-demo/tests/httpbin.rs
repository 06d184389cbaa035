//! The httpbin-like server on a real loopback socket.

mod common;

use common::*;
use hyper::{Method, StatusCode};
use serde_json::Value;
use trellis_demo::App;
use trellis_demo::httpbin::Httpbin;

fn json(f: &trellis_demo::upstream::Fetched) -> Value {
    serde_json::from_slice(&f.body).unwrap_or_else(|e| panic!("{e}: {}", f.text()))
}

#[tokio::test]
async fn statuses_delays_and_sizes() {
    let bin = start(App::Httpbin(Httpbin::default())).await;
    let at = bin.address();
    for code in [200, 201, 404, 418, 503, 599] {
        let reply = get(at, &format!("/status/{code}"), &[]).await;
        assert_eq!(reply.status.as_u16(), code);
        assert_eq!(reply.headers["x-trellis-app"], "httpbin-v1");
    }
    let reply = get(at, "/delay/0.05?x=1", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(json(&reply)["args"]["x"], "1");
    let bytes = get(at, "/bytes/1000?seed=7", &[]).await;
    assert_eq!(bytes.body.len(), 1000);
    assert_eq!(
        bytes.body,
        get(at, "/bytes/1000?seed=7", &[]).await.body,
        "seeded"
    );
    assert_eq!(get(at, "/bytes/0", &[]).await.body.len(), 0);
    assert_eq!(get(at, "/health", &[]).await.status, StatusCode::OK);

    let bad = [
        "/status/99",
        "/status/1000",
        "/status/x",
        "/status/",
        "/delay/-1",
        "/delay/abc",
        "/bytes/102401",
        "/bytes/99999999999999999999999999",
        "/bytes/-1",
    ];
    for path in bad {
        assert_eq!(
            get(at, path, &[]).await.status,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    assert_eq!(get(at, "/nope", &[]).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn echoes_what_arrived() {
    let bin = start(App::Httpbin(Httpbin::default())).await;
    let at = bin.address();

    let headers = json(
        &get(
            at,
            "/headers",
            &[("end-user", "jason"), ("x-b3-sampled", "1")],
        )
        .await,
    );
    assert_eq!(headers["headers"]["End-User"], "jason");
    assert_eq!(headers["headers"]["X-B3-Sampled"], "1");
    assert_eq!(headers["headers"]["Host"], at.to_string());

    assert_eq!(json(&get(at, "/ip", &[]).await)["origin"], "127.0.0.1");
    let forwarded = get(at, "/ip", &[("x-forwarded-for", "10.1.2.3, 127.0.0.6")]).await;
    assert_eq!(json(&forwarded)["origin"], "10.1.2.3");

    let anything = request(
        at,
        Method::PUT,
        "/anything/deep/path?a=1&a=2",
        &[("content-type", "application/json")],
        r#"{"k": [1, 2]}"#,
    )
    .await;
    let echo = json(&anything);
    assert_eq!(echo["method"], "PUT");
    assert_eq!(
        echo["url"],
        format!("http://{at}/anything/deep/path?a=1&a=2")
    );
    assert_eq!(echo["args"]["a"], serde_json::json!(["1", "2"]));
    assert_eq!(echo["json"]["k"][1], 2);
    assert_eq!(echo["data"], r#"{"k": [1, 2]}"#);

    let form = request(
        at,
        Method::POST,
        "/post",
        &[("content-type", "application/x-www-form-urlencoded")],
        "name=a+b&x=%3D",
    )
    .await;
    assert_eq!(
        json(&form)["form"],
        serde_json::json!({"name": "a b", "x": "="})
    );
    assert_eq!(json(&form)["json"], Value::Null);

    assert_eq!(json(&get(at, "/get?q=v", &[]).await)["args"]["q"], "v");
    assert_eq!(
        request(at, Method::POST, "/get", &[], "").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        get(at, "/post", &[]).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );

    let set = get(at, "/response-headers?x-version=v2&x-version=v3", &[]).await;
    let values: Vec<_> = set.headers.get_all("x-version").iter().collect();
    assert_eq!(values, ["v2", "v3"]);
    assert_eq!(
        get(at, "/response-headers?bad%20name=x", &[]).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let bin = start(App::Httpbin(Httpbin::default())).await;
    let big = "x".repeat(trellis_demo::server::MAX_REQUEST_BODY + 1);
    let reply = request(bin.address(), Method::POST, "/post", &[], &big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.headers["x-trellis-app"], "httpbin-v1");
}
