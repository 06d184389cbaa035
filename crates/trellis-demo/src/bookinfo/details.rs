//! Bookinfo's details service: `GET /details/<id>` → the book's details as JSON; a
//! non-numeric id → `400` with Bookinfo's error text.

use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use serde_json::json;

use crate::http::{Reply, json, not_found};

/// Answers one request to details.
pub fn handle(request: &Request<Bytes>) -> Reply {
    if request.method() != Method::GET {
        return not_found();
    }
    match request.uri().path() {
        "/health" => json(StatusCode::OK, &json!({"status": "Details is healthy"})),
        path => match path.strip_prefix("/details/") {
            Some(id) => match super::parse_id(id) {
                Some(id) => json(StatusCode::OK, &super::data::details(id)),
                None => json(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "please provide numeric product id"}),
                ),
            },
            None => not_found(),
        },
    }
}
