//! Outlier detection (Envoy's passive health checking), the consecutive kinds: a host whose
//! answers are `consecutive_5xx` 5xx in a row (or `consecutive_gateway_failure` 502/503/504
//! in a row) is ejected at once, if enforcing says so, for `base_ejection_time` × its
//! ejection count (capped by `max_ejection_time`), unless `max_ejection_percent` of the hosts
//! are out already (the first ejection is always allowed). Local-origin failures (connect
//! failure, reset, timeout) count as 503/504, as Envoy does without
//! `split_external_local_origin_errors`. Every `interval` a sweep brings back the hosts whose
//! time is up and lowers the count of hosts that stayed in.
//!
//! Time is passed in, never read here, so the tests drive a clock of their own. The sweep is
//! lazy: it runs on the first event or choice at or after its due time. Ejected hosts leave
//! the balancing set unless the cluster is in panic (healthy share below
//! `healthy_panic_threshold`, Envoy's default 50%), when every host is used.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::upstream::Host;

/// `outlier_detection` as the proxy honours it; percentages 0–100.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierConfig {
    pub consecutive_5xx: u32,
    pub enforcing_consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    pub enforcing_consecutive_gateway_failure: u32,
    pub interval: Duration,
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    pub max_ejection_percent: u32,
}

impl Default for OutlierConfig {
    /// Envoy's defaults.
    fn default() -> Self {
        OutlierConfig {
            consecutive_5xx: 5,
            enforcing_consecutive_5xx: 100,
            consecutive_gateway_failure: 5,
            enforcing_consecutive_gateway_failure: 0,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
        }
    }
}

/// What an attempt to a host came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Result {
    /// An answer from the host with this status.
    Status(u16),
    /// Connect failure or reset (Envoy maps these to 503).
    LocalFailure,
    /// No answer in time (Envoy maps this to 504).
    Timeout,
}

#[derive(Debug, Default, Clone)]
struct HostState {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    /// Times ejected, lowered by one per sweep while the host stays in.
    ejections: u32,
    ejected_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    hosts: HashMap<SocketAddr, HostState>,
    next_sweep: Option<Instant>,
}

/// A cluster's outlier state: lives in its runtime, across updates.
#[derive(Debug, Default)]
pub struct Detector {
    state: Mutex<State>,
    /// `outlier_detection.ejections_enforced_total`.
    pub ejections_enforced: std::sync::atomic::AtomicU64,
}

impl Detector {
    /// Records an attempt's outcome; may eject the host. `total_hosts` is the cluster's size,
    /// for `max_ejection_percent`; `roll` (0–99) decides enforcement below 100%.
    pub fn record(
        &self,
        cfg: &OutlierConfig,
        host: SocketAddr,
        result: Result,
        total_hosts: usize,
        now: Instant,
        roll: u32,
    ) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        sweep(&mut state, cfg, now);
        let status = match result {
            Result::Status(s) => s,
            Result::LocalFailure => 503,
            Result::Timeout => 504,
        };
        let h = state.hosts.entry(host).or_default();
        if h.ejected_until.is_some() {
            // Already out (a request that started before the ejection).
            return;
        }
        if status < 500 {
            h.consecutive_5xx = 0;
            h.consecutive_gateway = 0;
            return;
        }
        h.consecutive_5xx += 1;
        if matches!(status, 502..=504) {
            h.consecutive_gateway += 1;
        } else {
            h.consecutive_gateway = 0;
        }
        let by_5xx = cfg.consecutive_5xx > 0
            && h.consecutive_5xx >= cfg.consecutive_5xx
            && roll < cfg.enforcing_consecutive_5xx;
        let by_gateway = cfg.consecutive_gateway_failure > 0
            && h.consecutive_gateway >= cfg.consecutive_gateway_failure
            && roll < cfg.enforcing_consecutive_gateway_failure;
        if !(by_5xx || by_gateway) {
            return;
        }
        // The counters start again whether or not the ejection is allowed.
        h.consecutive_5xx = 0;
        h.consecutive_gateway = 0;
        let ejected = state
            .hosts
            .values()
            .filter(|h| h.ejected_until.is_some())
            .count();
        let total = total_hosts.max(1);
        if ejected > 0
            && (ejected * 100) as f64 / total as f64 >= f64::from(cfg.max_ejection_percent)
        {
            return;
        }
        let h = state.hosts.entry(host).or_default();
        h.ejections += 1;
        let time = cfg
            .base_ejection_time
            .saturating_mul(h.ejections)
            .min(cfg.max_ejection_time.max(cfg.base_ejection_time));
        h.ejected_until = Some(now + time);
        self.ejections_enforced
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The hosts to balance over: the ones not ejected, or all of them in panic (healthy
    /// share below `panic_threshold` percent; 0 disables panic, and then an all-ejected
    /// cluster has no host).
    pub fn healthy(
        &self,
        cfg: &OutlierConfig,
        hosts: &[Arc<Host>],
        panic_threshold: f64,
        now: Instant,
    ) -> Vec<Arc<Host>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        sweep(&mut state, cfg, now);
        let healthy: Vec<Arc<Host>> = hosts
            .iter()
            .filter(|h| {
                state
                    .hosts
                    .get(&h.address)
                    .is_none_or(|s| s.ejected_until.is_none())
            })
            .cloned()
            .collect();
        if healthy.len() == hosts.len() {
            return healthy;
        }
        let share = 100.0 * healthy.len() as f64 / hosts.len().max(1) as f64;
        if share < panic_threshold {
            hosts.to_vec()
        } else {
            healthy
        }
    }

    /// Whether a host is ejected now (for tests and stats).
    pub fn is_ejected(&self, cfg: &OutlierConfig, host: SocketAddr, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        sweep(&mut state, cfg, now);
        state
            .hosts
            .get(&host)
            .is_some_and(|h| h.ejected_until.is_some())
    }
}

/// The interval's sweep, if due: hosts whose ejection is over come back; hosts that stayed
/// in have their ejection count lowered.
fn sweep(state: &mut State, cfg: &OutlierConfig, now: Instant) {
    let due = *state.next_sweep.get_or_insert(now + cfg.interval);
    if now < due {
        return;
    }
    state.next_sweep = Some(now + cfg.interval);
    for h in state.hosts.values_mut() {
        match h.ejected_until {
            Some(until) if now >= until => h.ejected_until = None,
            Some(_) => {}
            None => h.ejections = h.ejections.saturating_sub(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: u8) -> Vec<Arc<Host>> {
        (1..=n)
            .map(|i| Arc::new(Host::new(format!("127.0.0.{i}:80").parse().unwrap(), 1)))
            .collect()
    }

    fn cfg() -> OutlierConfig {
        OutlierConfig {
            consecutive_5xx: 3,
            interval: Duration::from_secs(1),
            base_ejection_time: Duration::from_secs(10),
            max_ejection_percent: 100,
            ..Default::default()
        }
    }

    #[test]
    fn consecutive_5xx_ejects_and_a_success_resets_the_count() {
        let (d, c, hs, t0) = (Detector::default(), cfg(), hosts(3), Instant::now());
        let a = hs[0].address;
        d.record(&c, a, Result::Status(500), 3, t0, 0);
        d.record(&c, a, Result::Status(500), 3, t0, 0);
        d.record(&c, a, Result::Status(200), 3, t0, 0);
        d.record(&c, a, Result::Status(500), 3, t0, 0);
        d.record(&c, a, Result::LocalFailure, 3, t0, 0);
        assert!(!d.is_ejected(&c, a, t0));
        d.record(&c, a, Result::Timeout, 3, t0, 0);
        assert!(d.is_ejected(&c, a, t0));
        let in_use = d.healthy(&c, &hs, 0.0, t0);
        assert_eq!(in_use.len(), 2);
        assert!(in_use.iter().all(|h| h.address != a));
    }

    #[test]
    fn ejection_time_grows_with_the_count_and_returns_at_a_sweep() {
        let (d, c, t0) = (Detector::default(), cfg(), Instant::now());
        let a: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let eject = |t| {
            for _ in 0..3 {
                d.record(&c, a, Result::Status(503), 3, t, 0);
            }
        };
        eject(t0);
        assert!(d.is_ejected(&c, a, t0 + Duration::from_secs(9)));
        assert!(!d.is_ejected(&c, a, t0 + Duration::from_secs(10)));
        // Second ejection right away: 2 × base.
        let t1 = t0 + Duration::from_secs(10);
        eject(t1);
        assert!(d.is_ejected(&c, a, t1 + Duration::from_secs(19)));
        assert!(!d.is_ejected(&c, a, t1 + Duration::from_secs(21)));
        // Healthy for many intervals: the count decays back to zero, so base time again.
        let mut t = t1 + Duration::from_secs(21);
        for _ in 0..3 {
            t += Duration::from_secs(1);
            d.healthy(&c, &[], 0.0, t);
        }
        eject(t);
        assert!(!d.is_ejected(&c, a, t + Duration::from_secs(11)));
    }

    #[test]
    fn gateway_failures_need_enforcement() {
        let (d, t0) = (Detector::default(), Instant::now());
        let a: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let mut c = OutlierConfig {
            consecutive_5xx: 0,
            consecutive_gateway_failure: 2,
            ..cfg()
        };
        for _ in 0..4 {
            d.record(&c, a, Result::Status(502), 3, t0, 0);
        }
        assert!(!d.is_ejected(&c, a, t0), "enforcing defaults to 0");
        c.enforcing_consecutive_gateway_failure = 100;
        d.record(&c, a, Result::Status(500), 3, t0, 0);
        d.record(&c, a, Result::Status(502), 3, t0, 0);
        assert!(!d.is_ejected(&c, a, t0), "a 500 breaks the gateway run");
        d.record(&c, a, Result::Status(504), 3, t0, 0);
        assert!(d.is_ejected(&c, a, t0));
    }

    #[test]
    fn max_ejection_percent_allows_the_first_and_caps_the_rest() {
        let (d, hs, t0) = (Detector::default(), hosts(3), Instant::now());
        let c = OutlierConfig {
            consecutive_5xx: 1,
            max_ejection_percent: 10,
            ..cfg()
        };
        for h in &hs {
            d.record(&c, h.address, Result::Status(500), 3, t0, 0);
        }
        let out = hs
            .iter()
            .filter(|h| d.is_ejected(&c, h.address, t0))
            .count();
        assert_eq!(out, 1);
    }

    #[test]
    fn panic_threshold_uses_every_host_below_the_healthy_share() {
        let (d, hs, t0) = (Detector::default(), hosts(2), Instant::now());
        let c = OutlierConfig {
            consecutive_5xx: 1,
            ..cfg()
        };
        d.record(&c, hs[0].address, Result::Status(500), 2, t0, 0);
        // 50% healthy: not below Envoy's default 50% threshold.
        assert_eq!(d.healthy(&c, &hs, 50.0, t0).len(), 1);
        d.record(&c, hs[1].address, Result::Status(500), 2, t0, 0);
        assert_eq!(d.healthy(&c, &hs, 50.0, t0).len(), 2, "panic: all hosts");
        assert!(d.healthy(&c, &hs, 0.0, t0).is_empty(), "panic disabled");
    }
}
