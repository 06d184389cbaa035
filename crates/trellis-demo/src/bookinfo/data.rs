//! Bookinfo's fixed data: its one book, the details and ratings of any product id, and the
//! two reviews.

use serde_json::{Value, json};

/// The one book productpage shows (product 0).
pub fn products() -> Value {
    json!([{
        "id": 0,
        "title": "The Comedy of Errors",
        "descriptionHtml": "<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and one of his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, in addition to puns and word play."
    }])
}

/// What details answers for `id` (every id has the same book).
pub fn details(id: i64) -> Value {
    json!({
        "id": id,
        "author": "William Shakespeare",
        "year": 1595,
        "type": "paperback",
        "pages": 200,
        "publisher": "PublisherA",
        "language": "English",
        "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890"
    })
}

/// What ratings answers for `id`.
pub fn ratings(id: i64) -> Value {
    json!({"id": id, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})
}

/// The reviewers and their texts, in order.
pub const REVIEWS: [(&str, &str); 2] = [
    (
        "Reviewer1",
        "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
    ),
    (
        "Reviewer2",
        "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.",
    ),
];
