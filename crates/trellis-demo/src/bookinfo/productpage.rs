//! Bookinfo's productpage: the page of book 0 built from details and reviews, the sign-in
//! that sets the `end-user` header on its calls (Istio's routing-by-user samples match on
//! it), and Bookinfo's JSON API. Calls wait 3 s each; reviews is tried twice (Bookinfo's
//! deliberate "bug" that the fault-injection task shows); a failure degrades the page, it
//! never fails it.

use std::time::Duration;

use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderValue, REFERER, SET_COOKIE};
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use super::forward::{FORWARDED, select};
use super::page::{self, Fetch};
use crate::http::{self, Reply, cookie, form_pairs, not_found, percent_encode};
use crate::upstream::{self, Upstream};

/// How long productpage waits for each call (Bookinfo: 3 s).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// How many times productpage asks reviews before giving up (Bookinfo: 2).
const REVIEWS_TRIES: usize = 2;

/// The cookie that holds the signed-in user.
const USER_COOKIE: &str = "user";

/// Where productpage finds the other Bookinfo services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Services {
    pub details: Upstream,
    pub reviews: Upstream,
    pub ratings: Upstream,
}

impl Services {
    /// Bookinfo's defaults: `details`, `reviews`, `ratings` on port 9080.
    pub fn bookinfo() -> Services {
        Services {
            details: Upstream::new("details", super::PORT),
            reviews: Upstream::new("reviews", super::PORT),
            ratings: Upstream::new("ratings", super::PORT),
        }
    }
}

/// The productpage service.
#[derive(Debug, Clone)]
pub struct ProductPage {
    pub version: String,
    pub services: Services,
    /// The deadline of each call to another service.
    pub timeout: Duration,
}

impl ProductPage {
    /// Productpage `v1` with Bookinfo's timeouts.
    pub fn new(services: Services) -> ProductPage {
        ProductPage {
            version: "v1".into(),
            services,
            timeout: CALL_TIMEOUT,
        }
    }

    /// Answers one request to productpage.
    pub async fn handle(&self, request: Request<Bytes>) -> Reply {
        let path = request.uri().path().to_string();
        match (request.method(), path.as_str()) {
            (&Method::GET, "/" | "/index.html") => http::html(StatusCode::OK, page::index()),
            (&Method::GET, "/health") => http::text(StatusCode::OK, "Product page is healthy"),
            (&Method::POST, "/login") => login(&request),
            (&Method::GET, "/logout") => logout(&request),
            (&Method::GET, "/productpage") => self.front(&request).await,
            (&Method::GET, "/api/v1/products") => {
                http::json(StatusCode::OK, &super::data::products())
            }
            (&Method::GET, api) => match api.strip_prefix("/api/v1/products/") {
                Some(rest) => self.api(rest, request.headers()).await,
                None => not_found(),
            },
            _ => not_found(),
        }
    }

    async fn front(&self, request: &Request<Bytes>) -> Reply {
        let headers = forwarded(request.headers());
        let user = cookie(request.headers(), USER_COOKIE).filter(|u| !u.is_empty());
        let details = self.details(0, &headers).await;
        let reviews = self.reviews(0, &headers).await;
        let products = super::data::products();
        let body = page::product(&products[0], user.as_deref(), &details, &reviews);
        http::html(StatusCode::OK, body)
    }

    async fn api(&self, rest: &str, incoming: &HeaderMap) -> Reply {
        let (id, what) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(id) = super::parse_id(id) else {
            return http::json(
                StatusCode::BAD_REQUEST,
                &json!({"error": "please provide numeric product id"}),
            );
        };
        let headers = forwarded(incoming);
        let fetch = match what {
            "" => self.details(id, &headers).await,
            "reviews" => self.reviews(id, &headers).await,
            "ratings" => self.ratings(id, &headers).await,
            _ => return not_found(),
        };
        let status =
            StatusCode::from_u16(fetch.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        http::json(status, &fetch.body)
    }

    async fn details(&self, id: i64, headers: &HeaderMap) -> Fetch {
        let path = format!("/details/{id}");
        self.fetch(&self.services.details, &path, headers, 1, "details")
            .await
    }

    async fn reviews(&self, id: i64, headers: &HeaderMap) -> Fetch {
        let path = format!("/reviews/{id}");
        self.fetch(
            &self.services.reviews,
            &path,
            headers,
            REVIEWS_TRIES,
            "reviews",
        )
        .await
    }

    async fn ratings(&self, id: i64, headers: &HeaderMap) -> Fetch {
        let path = format!("/ratings/{id}");
        self.fetch(&self.services.ratings, &path, headers, 1, "ratings")
            .await
    }

    /// Up to `tries` calls; the first `200` with a JSON body wins. Otherwise the last
    /// status (500 when there was none) with Bookinfo's "Sorry, product X are currently
    /// unavailable for this book."
    async fn fetch(
        &self,
        upstream: &Upstream,
        path: &str,
        headers: &HeaderMap,
        tries: usize,
        what: &str,
    ) -> Fetch {
        let mut status = StatusCode::INTERNAL_SERVER_ERROR;
        for _ in 0..tries {
            match upstream::get(upstream, path, headers, self.timeout).await {
                Ok(fetched) if fetched.status == StatusCode::OK => {
                    match serde_json::from_slice::<Value>(&fetched.body) {
                        Ok(body) => return Fetch { status: 200, body },
                        Err(error) => {
                            tracing::info!(what, %error, "answer is not JSON");
                            status = StatusCode::INTERNAL_SERVER_ERROR;
                        }
                    }
                }
                Ok(fetched) => status = fetched.status,
                Err(error) => {
                    tracing::info!(what, %error, "call failed");
                    status = StatusCode::INTERNAL_SERVER_ERROR;
                }
            }
        }
        Fetch {
            status: status.as_u16(),
            body: json!({
                "error": format!("Sorry, product {what} are currently unavailable for this book.")
            }),
        }
    }
}

/// The headers productpage passes on: Bookinfo's list, with `end-user` taken from the
/// signed-in user rather than from the request.
fn forwarded(incoming: &HeaderMap) -> HeaderMap {
    let names: Vec<&'static str> = FORWARDED
        .iter()
        .copied()
        .filter(|name| *name != "end-user")
        .collect();
    let mut headers = select(incoming, &names);
    let user = cookie(incoming, USER_COOKIE).filter(|u| !u.is_empty());
    if let Some(value) = user.and_then(|u| HeaderValue::from_str(&u).ok()) {
        headers.insert("end-user", value);
    }
    headers
}

fn back(request: &Request<Bytes>) -> HeaderValue {
    request
        .headers()
        .get(REFERER)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("/productpage"))
}

fn login(request: &Request<Bytes>) -> Reply {
    let form = String::from_utf8_lossy(request.body());
    let user = form_pairs(&form)
        .into_iter()
        .find(|(key, _)| key == "username")
        .map(|(_, value)| value)
        .unwrap_or_default();
    let mut response = http::redirect(back(request));
    let cookie = format!("{USER_COOKIE}={}; Path=/", percent_encode(&user));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

fn logout(request: &Request<Bytes>) -> Reply {
    let mut response = http::redirect(back(request));
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("user=; Path=/; Max-Age=0"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_user_comes_from_the_cookie_only() {
        let mut incoming = HeaderMap::new();
        incoming.insert("end-user", HeaderValue::from_static("mallory"));
        incoming.insert("cookie", HeaderValue::from_static("user=jason"));
        incoming.insert("x-request-id", HeaderValue::from_static("r"));
        let out = forwarded(&incoming);
        assert_eq!(out["end-user"], "jason");
        assert_eq!(out["x-request-id"], "r");
        assert_eq!(out["cookie"], "user=jason");

        incoming.remove("cookie");
        assert!(forwarded(&incoming).get("end-user").is_none());
    }

    #[test]
    fn login_sets_the_cookie_and_returns() {
        let request = Request::post("/login")
            .header("referer", "http://x/productpage")
            .body(Bytes::from("username=jason&passwd=x"))
            .unwrap();
        let response = login(&request);
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(response.headers()["set-cookie"], "user=jason; Path=/");
        assert_eq!(response.headers()["location"], "http://x/productpage");
    }
}
