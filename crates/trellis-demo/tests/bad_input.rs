//! Arbitrary paths, methods and bodies never break an app: every request gets a response
//! stamped by the app (a panic would drop the connection instead).

mod common;

use common::*;
use hyper::Method;
use trellis_demo::App;
use trellis_demo::bookinfo::ReviewsVersion;
use trellis_demo::httpbin::Httpbin;

const PIECES: &[&str] = &[
    "/",
    "details",
    "reviews",
    "ratings",
    "productpage",
    "api",
    "v1",
    "products",
    "status",
    "delay",
    "bytes",
    "anything",
    "headers",
    "response-headers",
    "get",
    "post",
    "login",
    "0",
    "-1",
    "999999999999999999999",
    "1e3",
    "0.01",
    "%00",
    "%ff",
    "%",
    "..",
    "?",
    "&",
    "=",
    "a=%zz",
    "x-h=%0d%0a",
    "200,",
    ",",
    "+",
    "~",
    "NaN",
    "inf",
];

fn random_path(rng: &mut fastrand::Rng) -> String {
    let mut path = String::from("/");
    for _ in 0..rng.usize(1..6) {
        path.push_str(PIECES[rng.usize(..PIECES.len())]);
        if rng.bool() {
            path.push('/');
        }
    }
    path
}

#[tokio::test]
async fn random_requests_always_get_an_answer() {
    let apps = [
        start(App::Details("v1".into())).await,
        start(App::Ratings("v1".into())).await,
        reviews(ReviewsVersion::V2, closed()).await,
        productpage(closed(), closed()).await,
        start(App::Httpbin(Httpbin::default())).await,
    ];
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
    ];
    let mut rng = fastrand::Rng::with_seed(20261123);
    for app in &apps {
        for _ in 0..150 {
            let path = random_path(&mut rng);
            if path.contains("delay") {
                continue;
            }
            let method = methods[rng.usize(..methods.len())].clone();
            let body: String = (0..rng.usize(..64)).map(|_| rng.alphanumeric()).collect();
            let reply = request(app.address(), method.clone(), &path, &[], &body).await;
            assert!(
                reply.headers.contains_key("x-trellis-app"),
                "{method} {path} on {}: {}",
                app.address(),
                reply.status
            );
        }
    }
}
