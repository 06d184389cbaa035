//! The proxy's counters (Envoy's names where Envoy has one), passed around, never global.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::flags::{Flag, Flags};

#[derive(Debug, Default)]
pub struct Stats {
    pub downstream_rq_total: AtomicU64,
    pub downstream_rq_2xx: AtomicU64,
    pub downstream_rq_3xx: AtomicU64,
    pub downstream_rq_4xx: AtomicU64,
    pub downstream_rq_5xx: AtomicU64,
    pub upstream_rq_retry: AtomicU64,
    pub upstream_rq_pending_overflow: AtomicU64,
    pub no_route: AtomicU64,
    pub no_healthy_upstream: AtomicU64,
    pub upstream_cx_connect_fail: AtomicU64,
    pub upstream_rq_timeout: AtomicU64,
    pub update_success: AtomicU64,
    pub update_rejected: AtomicU64,
    pub xds_connected: AtomicU64,
    /// Counters named at run time (`http.<stat_prefix>.fault.delays_injected`,
    /// `tcp.<stat_prefix>.downstream_cx_total`, `listener.<address>.*`): off the hot path.
    named: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl Stats {
    pub fn count_response(&self, status: u16, flags: Flags) {
        let class = match status {
            200..=299 => &self.downstream_rq_2xx,
            300..=399 => &self.downstream_rq_3xx,
            400..=499 => &self.downstream_rq_4xx,
            _ => &self.downstream_rq_5xx,
        };
        class.fetch_add(1, Ordering::Relaxed);
        for f in flags.iter() {
            let counter = match f {
                Flag::NoRoute => &self.no_route,
                Flag::NoHealthyUpstream => &self.no_healthy_upstream,
                Flag::UpstreamConnectFailure => &self.upstream_cx_connect_fail,
                Flag::UpstreamTimeout => &self.upstream_rq_timeout,
                _ => continue,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn counter(&self, name: &str) -> Arc<AtomicU64> {
        let mut named = self.named.lock().unwrap_or_else(PoisonError::into_inner);
        named.entry(name.to_string()).or_default().clone()
    }

    pub fn inc(&self, name: &str) {
        self.counter(name).fetch_add(1, Ordering::Relaxed);
    }

    /// `name: value` lines, like Envoy's `/stats`.
    pub fn render(&self) -> String {
        let all = [
            ("http.downstream_rq_total", &self.downstream_rq_total),
            ("http.downstream_rq_2xx", &self.downstream_rq_2xx),
            ("http.downstream_rq_3xx", &self.downstream_rq_3xx),
            ("http.downstream_rq_4xx", &self.downstream_rq_4xx),
            ("http.downstream_rq_5xx", &self.downstream_rq_5xx),
            ("http.no_route", &self.no_route),
            ("cluster.upstream_rq_retry", &self.upstream_rq_retry),
            (
                "cluster.upstream_rq_pending_overflow",
                &self.upstream_rq_pending_overflow,
            ),
            (
                "cluster.upstream_cx_none_healthy",
                &self.no_healthy_upstream,
            ),
            (
                "cluster.upstream_cx_connect_fail",
                &self.upstream_cx_connect_fail,
            ),
            ("cluster.upstream_rq_timeout", &self.upstream_rq_timeout),
            ("control_plane.connected_state", &self.xds_connected),
            ("xds.update_success", &self.update_success),
            ("xds.update_rejected", &self.update_rejected),
        ];
        let mut out: String = all
            .iter()
            .map(|(n, v)| format!("{n}: {}\n", v.load(Ordering::Relaxed)))
            .collect();
        let named = self.named.lock().unwrap_or_else(PoisonError::into_inner);
        for (n, v) in named.iter() {
            out.push_str(&format!("{n}: {}\n", v.load(Ordering::Relaxed)));
        }
        out
    }
}
