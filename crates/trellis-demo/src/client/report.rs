//! What a client run saw, as a pure aggregation of per-request outcomes: counts per
//! status, per value of a chosen response header, per kind of transport error, and latency
//! percentiles over the requests that got a response.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde_json::{Value, json};

/// Why a request got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// Nothing listens at the address (`ECONNREFUSED`).
    ConnectRefused,
    /// The connection could not be made for another reason (name, route, ...).
    ConnectError,
    /// No complete response within the timeout.
    Timeout,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// Anything else (protocol errors).
    Other,
}

impl ErrorKind {
    /// The name used in reports: `connect_refused`, `timeout`, `reset`...
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectError => "connect_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Other => "other",
        }
    }
}

/// What one request gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Response {
        status: u16,
        /// The value of the grouping header (`None`: absent, or no grouping asked).
        group: Option<String>,
        latency: Duration,
    },
    Error(ErrorKind),
}

/// The group of responses that lacked the grouping header.
pub const NO_GROUP: &str = "(none)";

/// Latency percentiles (nearest rank) over the responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// A client run's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub sent: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// The header responses were grouped by, if any.
    pub group_by: Option<String>,
    pub groups: BTreeMap<String, u64>,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub latency: Option<Latency>,
    pub elapsed: Duration,
}

impl Report {
    /// Aggregates `outcomes` (in any order).
    pub fn new(outcomes: &[Outcome], group_by: Option<&str>, elapsed: Duration) -> Report {
        let mut report = Report {
            sent: outcomes.len() as u64,
            statuses: BTreeMap::new(),
            group_by: group_by.map(str::to_string),
            groups: BTreeMap::new(),
            errors: BTreeMap::new(),
            latency: None,
            elapsed,
        };
        let mut latencies = Vec::new();
        for outcome in outcomes {
            match outcome {
                Outcome::Response {
                    status,
                    group,
                    latency,
                } => {
                    *report.statuses.entry(*status).or_default() += 1;
                    if group_by.is_some() {
                        let group = group.clone().unwrap_or_else(|| NO_GROUP.to_string());
                        *report.groups.entry(group).or_default() += 1;
                    }
                    latencies.push(*latency);
                }
                Outcome::Error(kind) => *report.errors.entry(*kind).or_default() += 1,
            }
        }
        latencies.sort_unstable();
        report.latency = latency(&latencies);
        report
    }

    /// Requests that got a response (of any status).
    pub fn responses(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Requests that got no response.
    pub fn transport_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The report as JSON (`--json`).
    pub fn to_json(&self) -> Value {
        let statuses: BTreeMap<String, u64> = self
            .statuses
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect();
        let errors: BTreeMap<&str, u64> = self.errors.iter().map(|(k, n)| (k.name(), *n)).collect();
        json!({
            "sent": self.sent,
            "responses": self.responses(),
            "transport_errors": self.transport_errors(),
            "elapsed_ms": millis(self.elapsed),
            "statuses": statuses,
            "group_by": self.group_by,
            "groups": self.groups,
            "errors": errors,
            "latency_ms": self.latency.map(|l| json!({
                "p50": millis(l.p50),
                "p90": millis(l.p90),
                "p99": millis(l.p99),
                "max": millis(l.max),
            })),
        })
    }

    /// The report as text for people.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{} requests: {} responses, {} transport errors, in {:.3} s\n",
            self.sent,
            self.responses(),
            self.transport_errors(),
            self.elapsed.as_secs_f64()
        );
        out.push_str("status:\n");
        for (status, n) in &self.statuses {
            let _ = writeln!(out, "  {status:<24} {n}");
        }
        if let Some(header) = &self.group_by {
            let _ = writeln!(out, "{header}:");
            for (group, n) in &self.groups {
                let _ = writeln!(out, "  {group:<24} {n}");
            }
        }
        if !self.errors.is_empty() {
            out.push_str("errors:\n");
            for (kind, n) in &self.errors {
                let _ = writeln!(out, "  {:<24} {n}", kind.name());
            }
        }
        if let Some(l) = self.latency {
            let _ = writeln!(
                out,
                "latency: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                millis(l.p50),
                millis(l.p90),
                millis(l.p99),
                millis(l.max)
            );
        }
        out
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn latency(sorted: &[Duration]) -> Option<Latency> {
    Some(Latency {
        p50: percentile(sorted, 50)?,
        p90: percentile(sorted, 90)?,
        p99: percentile(sorted, 99)?,
        max: *sorted.last()?,
    })
}

/// The nearest-rank `p`th percentile of `sorted` (ascending); `None` when empty.
pub fn percentile(sorted: &[Duration], p: u64) -> Option<Duration> {
    let n = sorted.len() as u64;
    let rank = (p.min(100) * n).div_ceil(100).max(1);
    let index = usize::try_from(rank - 1).ok()?;
    sorted.get(index).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 50), Some(ms(50)));
        assert_eq!(percentile(&sorted, 99), Some(ms(99)));
        assert_eq!(percentile(&[ms(7)], 90), Some(ms(7)));
        assert_eq!(percentile(&[], 50), None);
        let three = [ms(1), ms(2), ms(3)];
        assert_eq!(percentile(&three, 50), Some(ms(2)));
        assert_eq!(percentile(&three, 99), Some(ms(3)));
    }

    #[test]
    fn outcomes_are_counted_by_status_group_and_error() {
        let response = |status, group: Option<&str>| Outcome::Response {
            status,
            group: group.map(str::to_string),
            latency: ms(1),
        };
        let outcomes = [
            response(200, Some("reviews-v1")),
            response(200, Some("reviews-v2")),
            response(200, Some("reviews-v1")),
            response(503, None),
            Outcome::Error(ErrorKind::ConnectRefused),
            Outcome::Error(ErrorKind::Timeout),
            Outcome::Error(ErrorKind::Timeout),
        ];
        let report = Report::new(&outcomes, Some("x-trellis-app"), ms(10));
        assert_eq!(report.sent, 7);
        assert_eq!(report.responses(), 4);
        assert_eq!(report.transport_errors(), 3);
        assert_eq!(report.statuses, BTreeMap::from([(200, 3), (503, 1)]));
        assert_eq!(report.groups["reviews-v1"], 2);
        assert_eq!(report.groups[NO_GROUP], 1);
        assert_eq!(report.errors[&ErrorKind::Timeout], 2);
        let json = report.to_json();
        assert_eq!(json["statuses"]["200"], 3);
        assert_eq!(json["errors"]["connect_refused"], 1);
        assert_eq!(json["groups"]["reviews-v2"], 1);
        let text = report.render();
        assert!(text.contains("x-trellis-app:"), "{text}");
        assert!(text.contains("connect_refused"), "{text}");
    }

    #[test]
    fn no_grouping_means_no_groups() {
        let outcomes = [Outcome::Response {
            status: 200,
            group: None,
            latency: ms(1),
        }];
        let report = Report::new(&outcomes, None, ms(1));
        assert!(report.groups.is_empty());
        assert_eq!(report.to_json()["group_by"], Value::Null);
    }
}
