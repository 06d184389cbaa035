//! Istio's standard metrics and their Prometheus text exposition.
//!
//! A series is found by a cheap key — the cluster name (or the authority, inbound) as a
//! borrowed `&str`, then a small hashable [`Key`] of enums, integers and an `Arc<Peer>` —
//! so a request that repeats a known combination allocates nothing and renders no label;
//! the label set is rendered once, when the series is created, and stored with it.
//!
//! Hand-written rather than `prometheus-client`: the 25 labels are fixed and rendered once
//! per series, the lookup is by borrowed parts (a `Family<LabelSet, _>` would hash and
//! clone a 25-string label set per request), and the output must match Envoy's exposition
//! (bucket bounds like `le="3.6e+06"`), which is a few lines of formatting.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::labels::{Protocol, Reporter, Security};
use super::peer::Peer;
use crate::flags::Flags;

/// Envoy's default histogram bucket bounds (Istio uses them), with Envoy's rendering.
const BUCKETS: [(f64, &str); 19] = [
    (0.5, "0.5"),
    (1.0, "1"),
    (5.0, "5"),
    (10.0, "10"),
    (25.0, "25"),
    (50.0, "50"),
    (100.0, "100"),
    (250.0, "250"),
    (500.0, "500"),
    (1000.0, "1000"),
    (2500.0, "2500"),
    (5000.0, "5000"),
    (10000.0, "10000"),
    (30000.0, "30000"),
    (60000.0, "60000"),
    (300000.0, "300000"),
    (600000.0, "600000"),
    (1800000.0, "1.8e+06"),
    (3600000.0, "3.6e+06"),
];

/// A histogram over [`BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative), the last one for values above every bound.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, value: u64) {
        let i = BUCKETS
            .iter()
            .position(|(bound, _)| value as f64 <= *bound)
            .unwrap_or(BUCKETS.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    fn render(&self, name: &str, labels: &str, out: &mut String) {
        // `{a="b"}` → `a="b",` to put `le` last.
        let inner = labels.trim_start_matches('{').trim_end_matches('}');
        let mut cumulative = 0;
        for ((_, bound), count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{inner},le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{inner},le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(
            out,
            "{name}_sum{labels} {}",
            self.sum.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "{name}_count{labels} {cumulative}");
    }
}

/// What tells series apart besides the cluster (or authority) they are filed under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub reporter: Reporter,
    /// The other side: the destination for `source`, the source for `destination`.
    pub peer: Option<Arc<Peer>>,
    pub principal: Option<Arc<str>>,
    pub protocol: Protocol,
    /// 0 for TCP.
    pub response_code: u16,
    pub grpc_status: Option<u32>,
    pub flags: Flags,
    pub security: Security,
}

/// One HTTP series.
#[derive(Debug, Default)]
pub struct HttpSeries {
    pub labels: String,
    pub requests: AtomicU64,
    pub duration: Histogram,
    pub request_bytes: Histogram,
    pub response_bytes: Histogram,
}

/// One TCP series.
#[derive(Debug, Default)]
pub struct TcpSeries {
    pub labels: String,
    pub opened: AtomicU64,
    pub closed: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

/// Series by scope (cluster or authority), then by key.
type ByScope<S> = HashMap<Box<str>, HashMap<Key, Arc<S>>>;

/// Series filed by (cluster or authority, key).
#[derive(Debug)]
pub struct Family<S> {
    series: RwLock<ByScope<S>>,
}

impl<S> Default for Family<S> {
    fn default() -> Self {
        Family {
            series: RwLock::default(),
        }
    }
}

impl<S> Family<S> {
    /// The series for `(scope, key)`, created by `make` (which renders its labels) the
    /// first time.
    pub fn get(&self, scope: &str, key: &Key, make: impl FnOnce() -> S) -> Arc<S> {
        {
            let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(s) = series.get(scope).and_then(|m| m.get(key)) {
                return s.clone();
            }
        }
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        series
            .entry(scope.into())
            .or_default()
            .entry(key.clone())
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }

    fn all(&self) -> Vec<Arc<S>> {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        series.values().flat_map(|m| m.values().cloned()).collect()
    }
}

/// Istio's standard metrics of one proxy.
#[derive(Debug, Default)]
pub struct Metrics {
    pub http: Family<HttpSeries>,
    pub tcp: Family<TcpSeries>,
}

impl Metrics {
    /// The Prometheus text exposition, series sorted by their labels.
    pub fn render(&self, out: &mut String) {
        let mut http = self.http.all();
        http.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut tcp = self.tcp.all();
        tcp.sort_by(|a, b| a.labels.cmp(&b.labels));
        if !http.is_empty() {
            counter(out, "istio_requests_total", &http, |s| &s.requests);
            type Field = fn(&HttpSeries) -> &Histogram;
            let histograms: [(&str, Field); 3] = [
                ("istio_request_bytes", |s| &s.request_bytes),
                ("istio_request_duration_milliseconds", |s| &s.duration),
                ("istio_response_bytes", |s| &s.response_bytes),
            ];
            for (name, field) in histograms {
                let _ = writeln!(out, "# TYPE {name} histogram");
                for s in &http {
                    field(s).render(name, &s.labels, out);
                }
            }
        }
        if !tcp.is_empty() {
            counter(out, "istio_tcp_connections_closed_total", &tcp, |s| {
                &s.closed
            });
            counter(out, "istio_tcp_connections_opened_total", &tcp, |s| {
                &s.opened
            });
            counter(out, "istio_tcp_received_bytes_total", &tcp, |s| &s.received);
            counter(out, "istio_tcp_sent_bytes_total", &tcp, |s| &s.sent);
        }
    }
}

trait Labelled {
    fn labels(&self) -> &str;
}

impl Labelled for HttpSeries {
    fn labels(&self) -> &str {
        &self.labels
    }
}

impl Labelled for TcpSeries {
    fn labels(&self) -> &str {
        &self.labels
    }
}

fn counter<S: Labelled>(
    out: &mut String,
    name: &str,
    series: &[Arc<S>],
    value: fn(&S) -> &AtomicU64,
) {
    let _ = writeln!(out, "# TYPE {name} counter");
    for s in series {
        let _ = writeln!(
            out,
            "{name}{} {}",
            s.labels(),
            value(s).load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: u16) -> Key {
        Key {
            reporter: Reporter::Source,
            peer: None,
            principal: None,
            protocol: Protocol::Http,
            response_code: code,
            grpc_status: None,
            flags: Flags::default(),
            security: Security::Unknown,
        }
    }

    #[test]
    fn series_are_found_again_and_rendered_like_envoy() {
        let m = Metrics::default();
        let make = |code: u16| {
            move || HttpSeries {
                labels: format!("{{response_code=\"{code}\"}}"),
                ..Default::default()
            }
        };
        let a = m.http.get("outbound|80||a", &key(200), make(200));
        a.requests.fetch_add(1, Ordering::Relaxed);
        a.duration.observe(3);
        a.duration.observe(7_000_000);
        let again = m
            .http
            .get("outbound|80||a", &key(200), || panic!("created twice"));
        assert!(Arc::ptr_eq(&a, &again));
        again.requests.fetch_add(1, Ordering::Relaxed);
        m.http.get("outbound|80||a", &key(503), make(503));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("# TYPE istio_requests_total counter\nistio_requests_total{response_code=\"200\"} 2\nistio_requests_total{response_code=\"503\"} 0\n"), "{out}");
        assert!(out.contains(
            "istio_request_duration_milliseconds_bucket{response_code=\"200\",le=\"1\"} 0\n"
        ));
        assert!(out.contains(
            "istio_request_duration_milliseconds_bucket{response_code=\"200\",le=\"5\"} 1\n"
        ));
        assert!(out.contains(
            "istio_request_duration_milliseconds_bucket{response_code=\"200\",le=\"3.6e+06\"} 1\n"
        ));
        assert!(out.contains(
            "istio_request_duration_milliseconds_bucket{response_code=\"200\",le=\"+Inf\"} 2\n"
        ));
        assert!(
            out.contains(
                "istio_request_duration_milliseconds_sum{response_code=\"200\"} 7000003\n"
            )
        );
        assert!(
            out.contains("istio_request_duration_milliseconds_count{response_code=\"200\"} 2\n")
        );
        assert!(!out.contains("istio_tcp"), "no TCP series, no TCP metrics");
    }
}
