//! productpage's HTML, as pure functions of what the services answered. The marks tests
//! and scripts look for are stable: each filled star is
//! `<span class="glyphicon glyphicon-star" style="color: COLOR">`, and failures show
//! Bookinfo's texts ("Error fetching product details", "Error fetching product reviews",
//! "Ratings service is currently unavailable").

use std::fmt::Write;

use serde_json::Value;

use crate::http::escape_html;

/// What a call to another service gave: its status and body (the answer, or
/// `{"error": ...}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Fetch {
    pub status: u16,
    pub body: Value,
}

/// The landing page: links to the product page.
pub fn index() -> String {
    wrap(
        "<h1>Bookinfo Sample</h1>\n<p>This application is a copy of Istio's Bookinfo sample.</p>\n<p><a href=\"productpage?u=normal\">Normal user</a> | <a href=\"productpage?u=test\">Test user</a></p>\n",
    )
}

/// The product page of `product`, for `user` (signed in or not).
pub fn product(product: &Value, user: Option<&str>, details: &Fetch, reviews: &Fetch) -> String {
    let mut body = String::new();
    body.push_str(&sign_in(user));
    let _ = writeln!(body, "<h1>{}</h1>", text(&product["title"]));
    // Bookinfo shows the description as HTML; it is this crate's own constant.
    let _ = writeln!(
        body,
        "<p>{}</p>",
        product["descriptionHtml"].as_str().unwrap_or_default()
    );
    body.push_str(&details_section(details));
    body.push_str(&reviews_section(reviews));
    wrap(&body)
}

fn wrap(body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>Simple Bookstore App</title></head>\n<body>\n{body}</body>\n</html>\n"
    )
}

fn sign_in(user: Option<&str>) -> String {
    match user {
        Some(user) => format!(
            "<nav><p>Signed in as <span class=\"user\">{}</span> <a href=\"logout\">Sign out</a></p></nav>\n",
            escape_html(user)
        ),
        None => "<nav><form method=\"post\" action=\"login\" name=\"login_form\"><input name=\"username\" placeholder=\"Username\"><input name=\"passwd\" type=\"password\" placeholder=\"Password\"><button type=\"submit\">Sign in</button></form></nav>\n".to_string(),
    }
}

/// A JSON value as escaped HTML text (strings without their quotes).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => escape_html(s),
        Value::Null => String::new(),
        other => escape_html(&other.to_string()),
    }
}

fn failure(title: &str, fetch: &Fetch) -> String {
    format!(
        "<p class=\"error\">{title}</p>\n<p>{}</p>\n",
        text(&fetch.body["error"])
    )
}

fn details_section(details: &Fetch) -> String {
    if details.status != 200 {
        return failure("Error fetching product details", details);
    }
    let d = &details.body;
    format!(
        "<h4>Book Details</h4>\n<table class=\"details\">\n<tr><th>ISBN-10</th><th>Publisher</th><th>Pages</th><th>Type</th><th>Language</th></tr>\n<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n</table>\n",
        text(&d["ISBN-10"]),
        text(&d["publisher"]),
        text(&d["pages"]),
        text(&d["type"]),
        text(&d["language"]),
    )
}

fn reviews_section(reviews: &Fetch) -> String {
    if reviews.status != 200 {
        return failure("Error fetching product reviews", reviews);
    }
    let body = &reviews.body;
    let served_by = match body["clustername"].as_str() {
        Some(cluster) if cluster != "null" => format!(
            "{} on cluster {}",
            text(&body["podname"]),
            escape_html(cluster)
        ),
        _ => text(&body["podname"]),
    };
    let mut out = String::from("<h4>Book Reviews</h4>\n");
    for review in body["reviews"].as_array().into_iter().flatten() {
        let _ = write!(
            out,
            "<section class=\"review\">\n{}<blockquote><p>\"{}\"</p></blockquote>\n<p class=\"reviewer\">{}</p>\n<p class=\"served-by\">Reviews served by: {served_by}</p>\n</section>\n",
            rating(&review["rating"]),
            text(&review["text"]),
            text(&review["reviewer"]),
        );
    }
    out
}

/// Five stars, `stars` of them filled in the rating's colour; or the rating's error.
fn rating(rating: &Value) -> String {
    if let Some(stars) = rating["stars"].as_u64() {
        let filled = stars.min(5);
        let color = text(&rating["color"]);
        let mut out = String::from("<p class=\"stars\">");
        for _ in 0..filled {
            let _ = write!(
                out,
                "<span class=\"glyphicon glyphicon-star\" style=\"color: {color}\">&#9733;</span>"
            );
        }
        for _ in filled..5 {
            out.push_str("<span class=\"glyphicon glyphicon-star-empty\">&#9734;</span>");
        }
        out.push_str("</p>\n");
        out
    } else if rating["error"].is_string() {
        format!("<p class=\"error\">{}</p>\n", text(&rating["error"]))
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn products() -> Value {
        crate::bookinfo::data::products()
    }

    fn ok(body: Value) -> Fetch {
        Fetch { status: 200, body }
    }

    #[test]
    fn stars_are_counted_and_coloured() {
        let reviews = ok(json!({"podname": "p", "clustername": "null", "reviews": [
            {"reviewer": "R1", "text": "t", "rating": {"stars": 4, "color": "red"}}
        ]}));
        let details = ok(crate::bookinfo::data::details(0));
        let html = product(&products()[0], None, &details, &reviews);
        assert_eq!(
            html.matches("glyphicon-star\" style=\"color: red\"")
                .count(),
            4
        );
        assert_eq!(html.matches("glyphicon-star-empty").count(), 1);
        assert!(html.contains("1234567890"));
        assert!(html.contains("The Comedy of Errors"));
        assert!(!html.contains("on cluster"));
    }

    #[test]
    fn failures_show_bookinfo_texts_and_escape() {
        let failed = Fetch {
            status: 503,
            body: json!({"error": "<b>down</b>"}),
        };
        let html = product(&products()[0], Some("<jason>"), &failed, &failed);
        assert!(html.contains("Error fetching product details"));
        assert!(html.contains("Error fetching product reviews"));
        assert!(html.contains("&lt;b&gt;down&lt;/b&gt;"));
        assert!(html.contains("&lt;jason&gt;"));
    }

    #[test]
    fn rating_errors_are_shown_and_odd_shapes_ignored() {
        let reviews = ok(json!({"podname": 3, "reviews": [
            {"reviewer": "R1", "text": "t", "rating": {"error": "Ratings service is currently unavailable"}},
            {"reviewer": "R2", "rating": {"stars": 99, "color": "black"}},
            "not an object"
        ]}));
        let html = product(&products()[0], None, &ok(json!(null)), &reviews);
        assert!(html.contains("Ratings service is currently unavailable"));
        assert_eq!(html.matches("color: black").count(), 5);
    }
}
