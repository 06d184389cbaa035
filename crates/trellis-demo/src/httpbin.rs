//! An httpbin-like server (Istio's samples and tasks use httpbin on port 8000): echo
//! endpoints that show what reached the app, and endpoints that answer with a chosen
//! status, delay or size. Every size and delay is bounded: `/delay` waits at most 10 s
//! (httpbin's cap), `/bytes` serves at most 100 KiB and refuses more with `400`.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use serde_json::{Map, Value, json};

use crate::http::{self, Reply, form_pairs, not_found};

/// httpbin's port.
pub const PORT: u16 = 8000;

/// The longest `/delay` waits.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// The most bytes `/bytes` serves.
pub const MAX_BYTES: usize = 100 * 1024;

/// The httpbin-like app.
#[derive(Debug, Clone)]
pub struct Httpbin {
    pub version: String,
}

impl Default for Httpbin {
    fn default() -> Self {
        Httpbin {
            version: "v1".into(),
        }
    }
}

/// The HTTP methods with an echo endpoint of their own (`/get`, `/post`...).
const METHOD_ENDPOINTS: [(&str, Method); 5] = [
    ("/get", Method::GET),
    ("/post", Method::POST),
    ("/put", Method::PUT),
    ("/patch", Method::PATCH),
    ("/delete", Method::DELETE),
];

impl Httpbin {
    /// Answers one request.
    pub async fn handle(&self, request: Request<Bytes>, peer: SocketAddr) -> Reply {
        let path = request.uri().path().to_string();
        if let Some((_, method)) = METHOD_ENDPOINTS.iter().find(|(p, _)| *p == path) {
            return if request.method() == method {
                http::json(StatusCode::OK, &echo(&request, peer))
            } else {
                http::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            };
        }
        let (first, rest) = split_first(&path);
        match (first, rest) {
            ("", _) => http::text(StatusCode::OK, INDEX),
            ("health", "") => http::json(StatusCode::OK, &json!({"status": "ok"})),
            ("anything", _) => http::json(StatusCode::OK, &echo(&request, peer)),
            ("headers", "") => http::json(
                StatusCode::OK,
                &json!({"headers": headers(request.headers())}),
            ),
            ("ip", "") => http::json(StatusCode::OK, &json!({"origin": origin(&request, peer)})),
            ("user-agent", "") => http::json(
                StatusCode::OK,
                &json!({"user-agent": http::header(request.headers(), "user-agent")}),
            ),
            ("status", codes) => status(codes),
            ("delay", seconds) => match parse_delay(seconds) {
                Some(delay) => {
                    tokio::time::sleep(delay).await;
                    http::json(StatusCode::OK, &echo(&request, peer))
                }
                None => bad_request("delay must be a number of seconds"),
            },
            ("bytes", n) => match n.parse::<usize>() {
                Ok(n) if n <= MAX_BYTES => http::octets(random_bytes(n, &request)),
                _ => bad_request("bytes must be a number from 0 to 102400"),
            },
            ("response-headers", "") => response_headers(&request),
            _ => not_found(),
        }
    }
}

const INDEX: &str = "trellis-app httpbin: /status/{code}, /delay/{seconds}, /headers, /ip, \
/user-agent, /bytes/{n}, /anything, /get, /post, /put, /patch, /delete, /response-headers, /health\n";

fn bad_request(message: &str) -> Reply {
    http::json(StatusCode::BAD_REQUEST, &json!({"error": message}))
}

/// `/a/b/c` → (`a`, `b/c`); `/` → (``, ``).
fn split_first(path: &str) -> (&str, &str) {
    let trimmed = path.trim_start_matches('/');
    trimmed.split_once('/').unwrap_or((trimmed, ""))
}

/// `/status/503` answers 503; `/status/200,503` one of them at random. Codes must be
/// final statuses (200–599).
fn status(codes: &str) -> Reply {
    let parsed: Option<Vec<StatusCode>> = codes
        .split(',')
        .map(|code| {
            code.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (200..=599).contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok())
        })
        .collect();
    match parsed.and_then(fastrand::choice) {
        Some(chosen) => http::text(chosen, ""),
        None => bad_request("status must be a code from 200 to 599, or a comma-separated list"),
    }
}

/// Seconds as a decimal, capped at [`MAX_DELAY`]; negative or not a number → `None`.
fn parse_delay(seconds: &str) -> Option<Duration> {
    let s: f64 = seconds.parse().ok()?;
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(MAX_DELAY.as_secs_f64())))
}

/// `n` pseudo-random bytes; `?seed=N` makes them repeatable.
fn random_bytes(n: usize, request: &Request<Bytes>) -> Vec<u8> {
    let seed = query(request)
        .into_iter()
        .find(|(k, _)| k == "seed")
        .and_then(|(_, v)| v.parse::<u64>().ok());
    let mut rng = seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
    (0..n).map(|_| rng.u8(..)).collect()
}

/// `/response-headers?k=v` answers with header `k: v` (and echoes them as JSON).
fn response_headers(request: &Request<Bytes>) -> Reply {
    let pairs = query(request);
    let mut response = http::json(StatusCode::OK, &grouped(&pairs));
    for (name, value) in pairs {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().append(name, value);
            }
            _ => return bad_request("invalid header name or value"),
        }
    }
    response
}

fn query(request: &Request<Bytes>) -> Vec<(String, String)> {
    form_pairs(request.uri().query().unwrap_or_default())
}

/// Pairs as a JSON object: one value as a string, repeated keys as a list (httpbin's
/// shape for `args` and `form`).
fn grouped(pairs: &[(String, String)]) -> Value {
    let mut map = Map::new();
    for (key, value) in pairs {
        match map.get_mut(key) {
            Some(Value::Array(values)) => values.push(json!(value)),
            Some(single) => *single = json!([single.clone(), value]),
            None => {
                map.insert(key.clone(), json!(value));
            }
        }
    }
    Value::Object(map)
}

/// Request headers with httpbin's title-cased names; repeated headers joined by commas.
fn headers(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        map.insert(title_case(name.as_str()), json!(values.join(",")));
    }
    Value::Object(map)
}

fn title_case(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The client's address: the first `x-forwarded-for` entry, else the peer.
fn origin(request: &Request<Bytes>, peer: SocketAddr) -> String {
    http::header(request.headers(), "x-forwarded-for")
        .and_then(|xff| xff.split(',').next())
        .map(|first| first.trim().to_string())
        .filter(|first| !first.is_empty())
        .unwrap_or_else(|| peer.ip().to_string())
}

/// Everything about the request: method, url, args, headers, body (as text, as a form and
/// as JSON when it is one), origin.
fn echo(request: &Request<Bytes>, peer: SocketAddr) -> Value {
    let data = String::from_utf8_lossy(request.body()).into_owned();
    let content_type = http::header(request.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
    let form = if content_type.starts_with("application/x-www-form-urlencoded") {
        grouped(&form_pairs(&data))
    } else {
        json!({})
    };
    let host = http::header(request.headers(), HOST.as_str())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    json!({
        "method": request.method().as_str(),
        "url": format!("http://{host}{path_and_query}"),
        "args": grouped(&query(request)),
        "headers": headers(request.headers()),
        "origin": origin(request, peer),
        "data": data,
        "form": form,
        "json": serde_json::from_slice::<Value>(request.body()).unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_capped_and_checked() {
        assert_eq!(parse_delay("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_delay("1e9"), Some(MAX_DELAY));
        for bad in ["-1", "NaN", "inf", "x", ""] {
            assert_eq!(parse_delay(bad), None, "{bad}");
        }
    }

    #[test]
    fn status_codes_are_checked() {
        assert_eq!(status("418").status(), StatusCode::IM_A_TEAPOT);
        assert!([200, 503].contains(&status("200, 503").status().as_u16()));
        for bad in ["100", "600", "abc", "", "200,", "99999"] {
            assert_eq!(status(bad).status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn repeated_args_become_lists() {
        let pairs = form_pairs("a=1&b=2&a=3&a=4");
        assert_eq!(grouped(&pairs), json!({"a": ["1", "3", "4"], "b": "2"}));
    }

    #[test]
    fn header_names_are_title_cased() {
        assert_eq!(title_case("x-b3-traceid"), "X-B3-Traceid");
        assert_eq!(title_case("end-user"), "End-User");
        assert_eq!(title_case("a--b"), "A--B");
    }

    #[test]
    fn paths_split_at_the_first_segment() {
        assert_eq!(split_first("/status/200"), ("status", "200"));
        assert_eq!(split_first("/anything/a/b"), ("anything", "a/b"));
        assert_eq!(split_first("/"), ("", ""));
    }
}
