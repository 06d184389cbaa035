//! The demo's traffic: requests for Bookinfo's product page sent from inside the client pod
//! (so its sidecar captures them, as it would an app's), each read the way a person reads
//! the page: which reviews version answered (no stars: v1, black: v2, red: v3) or which of
//! Bookinfo's failure texts it shows.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::bookinfo;
use crate::netns;

/// How long one page may take (productpage itself gives up on reviews after 2 × 3 s).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Who asks for the page: anonymous, or signed in as a user (Bookinfo's `user` cookie,
/// from which productpage sets `end-user` on its calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visitor {
    Anonymous,
    User(String),
}

/// What one page showed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// The reviews of this version (`v1`, `v2`, `v3`).
    Reviews(&'static str),
    /// Reviews v2/v3 without ratings: "Ratings service is currently unavailable".
    RatingsUnavailable,
    /// "Error fetching product reviews".
    ReviewsError,
    /// "Error fetching product details" (the reviews part read as well is not counted).
    DetailsError,
    /// An HTTP status other than 200.
    Status(u16),
    /// No response (connection refused or reset, timed out).
    NoResponse,
}

impl Outcome {
    /// True for a page that showed reviews with their ratings.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Reviews(_))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Reviews(v) => write!(f, "reviews {v}"),
            Outcome::RatingsUnavailable => f.write_str("ratings unavailable"),
            Outcome::ReviewsError => f.write_str("reviews error"),
            Outcome::DetailsError => f.write_str("details error"),
            Outcome::Status(s) => write!(f, "HTTP {s}"),
            Outcome::NoResponse => f.write_str("no response"),
        }
    }
}

/// One request and what came of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub visitor: Visitor,
    pub outcome: Outcome,
    pub latency: Duration,
}

/// Reads a product page: the failure texts first, then the colour of the stars.
pub fn classify(status: u16, body: &str) -> Outcome {
    if status != 200 {
        return Outcome::Status(status);
    }
    if body.contains("Error fetching product reviews") {
        Outcome::ReviewsError
    } else if body.contains("Error fetching product details") {
        Outcome::DetailsError
    } else if body.contains("Ratings service is currently unavailable") {
        Outcome::RatingsUnavailable
    } else if body.contains("glyphicon-star\" style=\"color: red\"") {
        Outcome::Reviews("v3")
    } else if body.contains("glyphicon-star\" style=\"color: black\"") {
        Outcome::Reviews("v2")
    } else {
        Outcome::Reviews("v1")
    }
}

/// Where requests leave from and go to.
#[derive(Debug, Clone)]
pub struct Client {
    /// The client pod's network namespace.
    pub netns: String,
    /// productpage's service address.
    pub productpage: SocketAddr,
}

impl Client {
    /// The client of the Bookinfo demo, in the pod `netns`.
    pub fn new(netns: &str) -> Client {
        let vip = bookinfo::vip("productpage").unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
        Client {
            netns: netns.to_string(),
            productpage: SocketAddr::from((vip, bookinfo::PORT)),
        }
    }

    /// GET `/productpage` as `visitor`, on a new connection, by the service's name.
    pub fn page(&self, visitor: &Visitor) -> Observation {
        let cookie;
        let mut headers = vec![("host", "productpage:9080")];
        if let Visitor::User(user) = visitor {
            cookie = format!("user={user}");
            headers.push(("cookie", cookie.as_str()));
        }
        let start = Instant::now();
        let reply = netns::request_in(
            &self.netns,
            "GET",
            self.productpage,
            "/productpage",
            &headers,
            TIMEOUT,
        );
        let outcome = match reply {
            Ok(reply) => classify(reply.status, &reply.body),
            Err(error) => {
                tracing::debug!(%error, "no response from productpage");
                Outcome::NoResponse
            }
        };
        Observation {
            visitor: visitor.clone(),
            outcome,
            latency: start.elapsed(),
        }
    }

    /// `n` pages as `visitor`, one after the other.
    pub fn pages(&self, visitor: &Visitor, n: usize) -> Vec<Observation> {
        (0..n).map(|_| self.page(visitor)).collect()
    }

    /// Sends `rate` pages a second, alternating anonymous visitors and `user`, each on a
    /// thread of its own (so a slow page never holds back the next), until `stop` returns
    /// true; every observation goes to `out`.
    pub fn steady(
        &self,
        rate: u32,
        user: &str,
        stop: &dyn Fn() -> bool,
        out: &mpsc::Sender<Observation>,
    ) {
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let visitors = [Visitor::Anonymous, Visitor::User(user.to_string())];
        let mut next = Instant::now();
        for i in 0usize.. {
            if stop() {
                return;
            }
            let client = self.clone();
            let visitor = visitors[i % visitors.len()].clone();
            let out = out.clone();
            std::thread::spawn(move || {
                let _ = out.send(client.page(&visitor));
            });
            next += interval;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_by_their_stars_and_failure_texts() {
        let star =
            |c: &str| format!("<span class=\"glyphicon glyphicon-star\" style=\"color: {c}\">");
        assert_eq!(classify(200, "<p>no stars</p>"), Outcome::Reviews("v1"));
        assert_eq!(classify(200, &star("black")), Outcome::Reviews("v2"));
        assert_eq!(classify(200, &star("red")), Outcome::Reviews("v3"));
        assert_eq!(
            classify(200, "<p>Ratings service is currently unavailable</p>"),
            Outcome::RatingsUnavailable
        );
        assert_eq!(
            classify(200, "Error fetching product reviews"),
            Outcome::ReviewsError
        );
        assert_eq!(
            classify(503, "upstream connect error"),
            Outcome::Status(503)
        );
        assert!(!Outcome::ReviewsError.is_success());
        assert!(Outcome::Reviews("v1").is_success());
    }
}
