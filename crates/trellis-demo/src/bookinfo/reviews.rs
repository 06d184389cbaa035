//! Bookinfo's reviews service in its three versions: v1 shows no ratings, v2 asks ratings
//! and shows black stars (10 s ratings timeout), v3 red stars (2.5 s). A failed ratings
//! call still answers `200`, with "Ratings service is currently unavailable" in place of
//! each reviewer's stars. The JSON has Bookinfo's shape (`id` as a string, `podname`,
//! `clustername`, `reviews`) plus `version`, so a client can tell which version answered.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use super::data::REVIEWS;
use super::forward::{FORWARDED, select};
use crate::http::{Reply, json, not_found};
use crate::upstream::{self, Upstream};

/// Which reviews: v1 (no stars), v2 (black stars), v3 (red stars).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewsVersion {
    V1,
    V2,
    V3,
}

impl ReviewsVersion {
    /// The stars' colour, or `None` when this version does not call ratings.
    pub fn star_color(self) -> Option<&'static str> {
        match self {
            ReviewsVersion::V1 => None,
            ReviewsVersion::V2 => Some("black"),
            ReviewsVersion::V3 => Some("red"),
        }
    }

    /// How long this version waits for ratings (Bookinfo: 10 s for black, 2.5 s for red).
    pub fn ratings_timeout(self) -> Duration {
        match self {
            ReviewsVersion::V3 => Duration::from_millis(2500),
            _ => Duration::from_secs(10),
        }
    }
}

impl fmt::Display for ReviewsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReviewsVersion::V1 => "v1",
            ReviewsVersion::V2 => "v2",
            ReviewsVersion::V3 => "v3",
        })
    }
}

/// A reviews version name that is not v1, v2 or v3.
#[derive(Debug, thiserror::Error)]
#[error("unknown reviews version {0:?} (expected v1, v2 or v3)")]
pub struct UnknownVersion(String);

impl FromStr for ReviewsVersion {
    type Err = UnknownVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v1" => Ok(ReviewsVersion::V1),
            "v2" => Ok(ReviewsVersion::V2),
            "v3" => Ok(ReviewsVersion::V3),
            other => Err(UnknownVersion(other.to_string())),
        }
    }
}

/// The reviews service of one version.
#[derive(Debug, Clone)]
pub struct Reviews {
    pub version: ReviewsVersion,
    /// Where ratings is (v2 and v3 call it).
    pub ratings: Upstream,
    /// Shown as `podname` (Bookinfo: the pod's `HOSTNAME`).
    pub pod_name: String,
    /// Shown as `clustername` (Bookinfo: `CLUSTER_NAME`, the string "null" when unset).
    pub cluster_name: String,
}

impl Reviews {
    /// Answers one request to reviews.
    pub async fn handle(&self, request: Request<Bytes>) -> Reply {
        if request.method() != Method::GET {
            return not_found();
        }
        let path = request.uri().path();
        if path == "/health" {
            return json(StatusCode::OK, &json!({"status": "Reviews is healthy"}));
        }
        let Some(id) = path.strip_prefix("/reviews/").and_then(super::parse_id) else {
            return not_found();
        };
        let ratings = match self.version.star_color() {
            Some(_) => self.fetch_ratings(id, &request).await,
            None => None,
        };
        json(StatusCode::OK, &self.body(id, ratings.as_ref()))
    }

    async fn fetch_ratings(&self, id: i64, request: &Request<Bytes>) -> Option<Value> {
        let headers = select(request.headers(), FORWARDED);
        let path = format!("/ratings/{id}");
        let timeout = self.version.ratings_timeout();
        match upstream::get(&self.ratings, &path, &headers, timeout).await {
            Ok(fetched) if fetched.status == StatusCode::OK => {
                serde_json::from_slice(&fetched.body).ok()
            }
            Ok(fetched) => {
                tracing::info!(status = %fetched.status, "ratings answered with an error");
                None
            }
            Err(error) => {
                tracing::info!(%error, "ratings unreachable");
                None
            }
        }
    }

    /// The JSON answer for `id`, given what ratings said (`None`: no usable answer).
    pub fn body(&self, id: i64, ratings: Option<&Value>) -> Value {
        let reviews: Vec<Value> = REVIEWS
            .iter()
            .map(|(reviewer, text)| {
                let mut review = json!({"reviewer": reviewer, "text": text});
                if let Some(color) = self.version.star_color() {
                    let stars = ratings.and_then(|r| r["ratings"][*reviewer].as_i64());
                    review["rating"] = match stars {
                        Some(stars) => json!({"stars": stars, "color": color}),
                        None => json!({"error": "Ratings service is currently unavailable"}),
                    };
                }
                review
            })
            .collect();
        json!({
            "id": id.to_string(),
            "podname": self.pod_name,
            "clustername": self.cluster_name,
            "version": self.version.to_string(),
            "reviews": reviews,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reviews(version: ReviewsVersion) -> Reviews {
        Reviews {
            version,
            ratings: Upstream::new("ratings", 9080),
            pod_name: "reviews-x".into(),
            cluster_name: "null".into(),
        }
    }

    #[test]
    fn v1_has_no_rating() {
        let body = reviews(ReviewsVersion::V1).body(0, None);
        assert_eq!(body["version"], "v1");
        assert_eq!(body["id"], "0");
        assert!(body["reviews"][0].get("rating").is_none());
        assert_eq!(body["reviews"][1]["reviewer"], "Reviewer2");
    }

    #[test]
    fn v3_colours_ratings_red() {
        let ratings = crate::bookinfo::data::ratings(0);
        let body = reviews(ReviewsVersion::V3).body(0, Some(&ratings));
        assert_eq!(
            body["reviews"][0]["rating"],
            json!({"stars": 5, "color": "red"})
        );
        assert_eq!(
            body["reviews"][1]["rating"],
            json!({"stars": 4, "color": "red"})
        );
    }

    #[test]
    fn missing_ratings_say_unavailable() {
        let partial = json!({"ratings": {"Reviewer1": 3}});
        let body = reviews(ReviewsVersion::V2).body(0, Some(&partial));
        assert_eq!(body["reviews"][0]["rating"]["color"], "black");
        assert_eq!(
            body["reviews"][1]["rating"]["error"],
            "Ratings service is currently unavailable"
        );
    }

    #[test]
    fn versions_parse() {
        assert_eq!("v2".parse::<ReviewsVersion>().unwrap(), ReviewsVersion::V2);
        assert!("v4".parse::<ReviewsVersion>().is_err());
    }
}
