//! Bookinfo end to end in-process: productpage, details, reviews and ratings on real
//! loopback sockets, and what productpage shows when parts fail.

mod common;

use std::time::Duration;

use common::*;
use hyper::{Method, StatusCode};
use trellis_demo::App;
use trellis_demo::bookinfo::ReviewsVersion;
use trellis_demo::bookinfo::{ProductPage, Services};

/// productpage → details, reviews `version` → ratings, all real.
async fn bookinfo(version: ReviewsVersion) -> Vec<trellis_demo::Running> {
    let details = start(App::Details("v1".into())).await;
    let ratings = start(App::Ratings("v1".into())).await;
    let reviews = reviews(version, at(ratings.address())).await;
    let page = productpage(at(details.address()), at(reviews.address())).await;
    vec![page, details, reviews, ratings]
}

#[tokio::test]
async fn reviews_v2_shows_black_stars() {
    let apps = bookinfo(ReviewsVersion::V2).await;
    let page = get(apps[0].address(), "/productpage", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["x-trellis-app"], "productpage-v1");
    let html = page.text();
    assert_eq!(stars(&html, "black"), 9, "5 + 4 black stars:\n{html}");
    assert_eq!(stars(&html, "red"), 0);
    assert!(html.contains("The Comedy of Errors"));
    assert!(html.contains("1234567890"), "details shown");
    assert!(html.contains("Reviews served by: reviews-v2-pod"));
    assert!(!html.contains("Error fetching"));
}

#[tokio::test]
async fn reviews_v1_shows_no_stars_and_v3_red() {
    let v1 = bookinfo(ReviewsVersion::V1).await;
    let html = get(v1[0].address(), "/productpage", &[]).await.text();
    assert_eq!(stars(&html, "black") + stars(&html, "red"), 0, "{html}");
    assert!(html.contains("Reviewer1") && html.contains("Reviewer2"));

    let v3 = bookinfo(ReviewsVersion::V3).await;
    let html = get(v3[0].address(), "/productpage", &[]).await.text();
    assert_eq!(stars(&html, "red"), 9, "{html}");
    assert_eq!(stars(&html, "black"), 0);
}

#[tokio::test]
async fn end_user_and_trace_headers_follow_the_request() {
    let ratings = Recorder::start(
        200,
        r#"{"id":0,"ratings":{"Reviewer1":1,"Reviewer2":2}}"#,
        Duration::ZERO,
    )
    .await;
    let reviews = reviews(ReviewsVersion::V2, at(ratings.address)).await;
    let details = Recorder::start(200, "{}", Duration::ZERO).await;
    let page = productpage(at(details.address), at(reviews.address())).await;

    let html = get(
        page.address(),
        "/productpage",
        &[
            ("cookie", "user=jason"),
            ("x-request-id", "req-1"),
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("x-not-forwarded", "secret"),
            ("end-user", "mallory"),
        ],
    )
    .await
    .text();
    assert_eq!(
        stars(&html, "black"),
        3,
        "ratings from the recorder:\n{html}"
    );
    assert!(html.contains("Signed in as <span class=\"user\">jason</span>"));

    for (hop, seen) in [
        ("details", details.requests()),
        ("ratings", ratings.requests()),
    ] {
        assert_eq!(seen.len(), 1, "{hop}");
        let headers = &seen[0];
        assert_eq!(headers["end-user"], "jason", "{hop}");
        assert_eq!(headers["x-request-id"], "req-1", "{hop}");
        assert_eq!(
            headers["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7",
            "{hop}"
        );
        assert!(headers.contains_key("traceparent"), "{hop}");
        assert!(!headers.contains_key("x-not-forwarded"), "{hop}");
    }
}

#[tokio::test]
async fn ratings_down_still_renders_the_page() {
    let details = start(App::Details("v1".into())).await;
    let reviews = reviews(ReviewsVersion::V2, closed()).await;
    let page = productpage(at(details.address()), at(reviews.address())).await;
    let reply = get(page.address(), "/productpage", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let html = reply.text();
    assert_eq!(
        html.matches("Ratings service is currently unavailable")
            .count(),
        2,
        "{html}"
    );
    assert_eq!(stars(&html, "black"), 0);
    assert!(!html.contains("Error fetching product reviews"));
}

#[tokio::test]
async fn details_down_shows_the_error_and_the_reviews() {
    let reviews = reviews(ReviewsVersion::V1, closed()).await;
    let page = productpage(closed(), at(reviews.address())).await;
    let reply = get(page.address(), "/productpage", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let html = reply.text();
    assert!(html.contains("Error fetching product details"), "{html}");
    assert!(html.contains("Sorry, product details are currently unavailable for this book."));
    assert!(html.contains("Reviewer1"), "reviews still shown");
}

#[tokio::test]
async fn failing_reviews_are_tried_twice_then_reported() {
    let details = start(App::Details("v1".into())).await;
    let reviews = Recorder::start(503, "no healthy upstream", Duration::ZERO).await;
    let page = productpage(at(details.address()), at(reviews.address)).await;
    let html = get(page.address(), "/productpage", &[]).await.text();
    assert!(html.contains("Error fetching product reviews"), "{html}");
    assert!(html.contains("Sorry, product reviews are currently unavailable for this book."));
    assert_eq!(reviews.requests().len(), 2, "Bookinfo asks reviews twice");

    let api = get(page.address(), "/api/v1/products/0/reviews", &[]).await;
    assert_eq!(
        api.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the last status is passed on"
    );
}

#[tokio::test]
async fn slow_reviews_time_out() {
    let details = start(App::Details("v1".into())).await;
    let reviews = Recorder::start(200, "{}", Duration::from_secs(5)).await;
    let page = start(App::ProductPage(ProductPage {
        timeout: Duration::from_millis(100),
        ..ProductPage::new(Services {
            details: at(details.address()),
            reviews: at(reviews.address),
            ratings: closed(),
        })
    }))
    .await;
    let reply = get(page.address(), "/productpage", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text().contains("Error fetching product reviews"));
    assert!(reply.text().contains("1234567890"), "details still shown");
}

#[tokio::test]
async fn json_apis_and_bad_input() {
    let apps = bookinfo(ReviewsVersion::V3).await;
    let (page, details, reviews, ratings) = (
        apps[0].address(),
        apps[1].address(),
        apps[2].address(),
        apps[3].address(),
    );
    let json = |f: &trellis_demo::upstream::Fetched| -> serde_json::Value {
        serde_json::from_slice(&f.body).unwrap()
    };

    let products = get(page, "/api/v1/products", &[]).await;
    assert_eq!(json(&products)[0]["title"], "The Comedy of Errors");
    let api_reviews = json(&get(page, "/api/v1/products/0/reviews", &[]).await);
    assert_eq!(api_reviews["version"], "v3");
    assert_eq!(api_reviews["podname"], "reviews-v3-pod");
    assert_eq!(api_reviews["clustername"], "null");
    assert_eq!(api_reviews["reviews"][0]["rating"]["color"], "red");
    let api_details = json(&get(page, "/api/v1/products/7", &[]).await);
    assert_eq!(api_details["id"], 7);

    let direct = get(reviews, "/reviews/1", &[]).await;
    assert_eq!(direct.headers["x-trellis-app"], "reviews-v3");
    assert_eq!(json(&direct)["id"], "1");
    assert_eq!(
        get(ratings, "/ratings/0", &[]).await.headers["x-trellis-app"],
        "ratings-v1"
    );
    assert_eq!(
        get(page, "/health", &[]).await.text(),
        "Product page is healthy"
    );

    let cases = [
        (
            page,
            "/api/v1/products/abc/reviews",
            StatusCode::BAD_REQUEST,
        ),
        (page, "/api/v1/products/0/nope", StatusCode::NOT_FOUND),
        (page, "/nope", StatusCode::NOT_FOUND),
        (details, "/details/abc", StatusCode::BAD_REQUEST),
        (
            details,
            "/details/99999999999999999999999",
            StatusCode::BAD_REQUEST,
        ),
        (details, "/details", StatusCode::NOT_FOUND),
        (ratings, "/ratings/x", StatusCode::BAD_REQUEST),
        (reviews, "/reviews/x", StatusCode::NOT_FOUND),
        (reviews, "/reviews/%00", StatusCode::NOT_FOUND),
    ];
    for (address, path, status) in cases {
        assert_eq!(get(address, path, &[]).await.status, status, "{path}");
    }
}

#[tokio::test]
async fn login_sets_the_user_for_later_pages() {
    let apps = bookinfo(ReviewsVersion::V1).await;
    let login = request(
        apps[0].address(),
        Method::POST,
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        "username=jason&passwd=pw",
    )
    .await;
    assert_eq!(login.status, StatusCode::FOUND);
    let cookie = login.headers["set-cookie"].to_str().unwrap();
    let pair = cookie.split(';').next().unwrap();
    assert_eq!(pair, "user=jason");
    let html = get(apps[0].address(), "/productpage", &[("cookie", pair)])
        .await
        .text();
    assert!(
        html.contains("Signed in as <span class=\"user\">jason</span>"),
        "{html}"
    );
    let logout = get(apps[0].address(), "/logout", &[]).await;
    assert!(
        logout.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}
