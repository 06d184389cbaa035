//! Istio's Bookinfo: productpage → details, productpage → reviews → ratings, every service
//! on port 9080 under the host names `details`, `reviews`, `ratings`, so that Istio's
//! Bookinfo VirtualServices and DestinationRules (subsets by `version` label) apply as
//! they are. Behaviour follows Bookinfo's sources: the JSON shapes, the headers each app
//! forwards, productpage's 3 s timeouts and its two tries at reviews, reviews' 10 s
//! (black stars) and 2.5 s (red stars) ratings timeouts, and the error texts.

pub mod data;
pub mod details;
pub mod forward;
pub mod page;
pub mod productpage;
pub mod ratings;
pub mod reviews;

pub use productpage::{ProductPage, Services};
pub use reviews::{Reviews, ReviewsVersion};

/// Bookinfo's port for every service.
pub const PORT: u16 = 9080;

/// A product id from a path segment: a decimal integer, as Bookinfo's services accept.
pub fn parse_id(segment: &str) -> Option<i64> {
    segment.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_decimal_integers() {
        assert_eq!(super::parse_id("0"), Some(0));
        assert_eq!(super::parse_id("-3"), Some(-3));
        for bad in ["", "x", "1.5", "99999999999999999999", "0 "] {
            assert_eq!(super::parse_id(bad), None, "{bad:?}");
        }
    }
}
