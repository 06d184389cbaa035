//! Bookinfo's ratings service (v1, in memory): `GET /ratings/<id>` → both reviewers'
//! stars; a non-numeric id → `400` with Bookinfo's error text.

use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use serde_json::json;

use crate::http::{Reply, json, not_found};

/// Answers one request to ratings.
pub fn handle(request: &Request<Bytes>) -> Reply {
    if request.method() != Method::GET {
        return not_found();
    }
    match request.uri().path() {
        "/health" => json(StatusCode::OK, &json!({"status": "Ratings is healthy"})),
        path => match path.strip_prefix("/ratings/") {
            Some(id) => match super::parse_id(id) {
                Some(id) => json(StatusCode::OK, &super::data::ratings(id)),
                None => json(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "please provide numeric product ID"}),
                ),
            },
            None => not_found(),
        },
    }
}
