//! What the demo shows: observations counted by outcome and by visitor, the success rate
//! and latency percentiles, over a sliding window so a routing change shows within seconds;
//! and which servers' inbound traffic is mutual TLS, as their sidecars count it.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::time::{Duration, Instant};

use super::mtls::Inbound;
use super::traffic::{Observation, Outcome, Visitor};

/// Observations counted by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<Outcome, usize>);

impl Counts {
    pub fn of<'a>(observations: impl IntoIterator<Item = &'a Observation>) -> Counts {
        let mut counts = BTreeMap::new();
        for o in observations {
            *counts.entry(o.outcome.clone()).or_insert(0) += 1;
        }
        Counts(counts)
    }

    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    pub fn get(&self, outcome: &Outcome) -> usize {
        self.0.get(outcome).copied().unwrap_or(0)
    }

    /// The share of `outcome`, 0.0 to 1.0 (0.0 when nothing was counted).
    pub fn share(&self, outcome: &Outcome) -> f64 {
        match self.total() {
            0 => 0.0,
            total => self.get(outcome) as f64 / total as f64,
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(o, n)| format!("{o}: {n}")).collect();
        write!(f, "{}", parts.join(", "))
    }
}

/// The `q` quantile (0.0 to 1.0) of `latencies`, nearest rank; `None` when empty.
pub fn percentile(latencies: &[Duration], q: f64) -> Option<Duration> {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len().saturating_sub(1)))
        .copied()
}

/// The observations of the last `window`.
#[derive(Debug)]
pub struct Window {
    window: Duration,
    seen: VecDeque<(Instant, Observation)>,
}

impl Window {
    pub fn new(window: Duration) -> Window {
        Window {
            window,
            seen: VecDeque::new(),
        }
    }

    /// Adds an observation made at `at` and forgets those older than the window.
    pub fn add(&mut self, at: Instant, observation: Observation) {
        self.seen.push_back((at, observation));
        while self
            .seen
            .front()
            .is_some_and(|(t, _)| at.saturating_duration_since(*t) > self.window)
        {
            self.seen.pop_front();
        }
    }

    /// The screen: pages per visitor and outcome, success rate, p50/p99, each server's
    /// inbound mTLS (pod name and what its sidecar counted, since it started), and `hints`.
    pub fn render(
        &self,
        title: &str,
        mtls: &[(String, Result<Inbound, String>)],
        hints: &[String],
    ) -> String {
        let mut out = String::new();
        let all: Vec<&Observation> = self.seen.iter().map(|(_, o)| o).collect();
        let _ = writeln!(
            out,
            "{title} — last {} s: {} pages\n",
            self.window.as_secs(),
            all.len()
        );
        let mut visitors: Vec<&Visitor> = all.iter().map(|o| &o.visitor).collect();
        visitors.sort_by_key(|v| label(v));
        visitors.dedup();
        for visitor in visitors {
            let counts = Counts::of(all.iter().copied().filter(|o| &o.visitor == visitor));
            let _ = writeln!(out, "  {:<12} {counts}", label(visitor));
        }
        let ok = all.iter().filter(|o| o.outcome.is_success()).count();
        let latencies: Vec<Duration> = all.iter().map(|o| o.latency).collect();
        let ms = |q| {
            percentile(&latencies, q).map_or("-".to_string(), |d| format!("{} ms", d.as_millis()))
        };
        let rate = if all.is_empty() {
            0.0
        } else {
            100.0 * ok as f64 / all.len() as f64
        };
        let _ = writeln!(
            out,
            "\n  success {rate:.1}%   p50 {}   p99 {}\n",
            ms(0.5),
            ms(0.99)
        );
        if !mtls.is_empty() {
            let _ = writeln!(out, "  mutual TLS, as each server's sidecar counts it:");
            for (pod, inbound) in mtls {
                match inbound {
                    Ok(i) => {
                        let _ = writeln!(out, "    {pod:<16} {i}");
                    }
                    Err(e) => {
                        let _ = writeln!(out, "    {pod:<16} unknown ({e})");
                    }
                }
            }
            let _ = writeln!(out);
        }
        for hint in hints {
            let _ = writeln!(out, "{hint}");
        }
        out
    }
}

fn label(visitor: &Visitor) -> String {
    match visitor {
        Visitor::Anonymous => "anonymous".to_string(),
        Visitor::User(user) => user.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(visitor: Visitor, outcome: Outcome, ms: u64) -> Observation {
        Observation {
            visitor,
            outcome,
            latency: Duration::from_millis(ms),
        }
    }

    #[test]
    fn counts_and_shares() {
        let obs = [
            seen(Visitor::Anonymous, Outcome::Reviews("v1"), 1),
            seen(Visitor::Anonymous, Outcome::Reviews("v1"), 1),
            seen(Visitor::Anonymous, Outcome::Reviews("v3"), 1),
            seen(Visitor::Anonymous, Outcome::ReviewsError, 1),
        ];
        let counts = Counts::of(&obs);
        assert_eq!(counts.total(), 4);
        assert_eq!(counts.share(&Outcome::Reviews("v1")), 0.5);
        assert_eq!(counts.get(&Outcome::Reviews("v2")), 0);
        assert_eq!(
            counts.to_string(),
            "reviews v1: 2, reviews v3: 1, reviews error: 1"
        );
        assert_eq!(Counts::default().share(&Outcome::NoResponse), 0.0);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let l: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&l, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&l, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&l[..1], 0.99), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn the_window_forgets_old_pages_and_shows_each_visitor() {
        let mut w = Window::new(Duration::from_secs(10));
        let t0 = Instant::now();
        w.add(t0, seen(Visitor::Anonymous, Outcome::Reviews("v1"), 5));
        w.add(
            t0 + Duration::from_secs(11),
            seen(Visitor::Anonymous, Outcome::Reviews("v2"), 5),
        );
        w.add(
            t0 + Duration::from_secs(12),
            seen(Visitor::User("jason".into()), Outcome::NoResponse, 7),
        );
        let mtls = [
            (
                "reviews-v1".to_string(),
                Ok(Inbound {
                    mutual_tls: 4,
                    total: 4,
                    unit: "connections",
                }),
            ),
            ("ratings-v1".to_string(), Err("refused".to_string())),
        ];
        let screen = w.render("Bookinfo", &mtls, &["hint".to_string()]);
        assert!(screen.contains("2 pages"), "{screen}");
        assert!(screen.contains("anonymous    reviews v2: 1\n"), "{screen}");
        assert!(screen.contains("jason        no response: 1\n"), "{screen}");
        assert!(screen.contains("success 50.0%"), "{screen}");
        assert!(
            screen.contains("    reviews-v1       4 of 4 inbound connections mTLS\n"),
            "{screen}"
        );
        assert!(
            screen.contains("ratings-v1       unknown (refused)"),
            "{screen}"
        );
        assert!(screen.ends_with("hint\n"), "{screen}");
    }
}
