//! One measured load run: the load's latencies and throughput, and what each proxy process
//! spent meanwhile.

use std::time::Duration;

use serde::Serialize;

use super::load::{self, LoadResult, LoadSpec};
use super::procstat;
use super::topology::Topology;
use crate::stats::Sample;

/// Latency percentiles in microseconds, from the intended send time.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
}

impl Percentiles {
    fn of(sample: &Sample) -> Percentiles {
        let us = |p| sample.percentile(p).as_secs_f64() * 1e6;
        Percentiles {
            p50: us(50.0),
            p90: us(90.0),
            p99: us(99.0),
            p999: us(99.9),
        }
    }

    /// What `self` adds over `floor`, percentile by percentile (never below zero).
    pub fn over(&self, floor: &Percentiles) -> Percentiles {
        let d = |a: f64, b: f64| (a - b).max(0.0);
        Percentiles {
            p50: d(self.p50, floor.p50),
            p90: d(self.p90, floor.p90),
            p99: d(self.p99, floor.p99),
            p999: d(self.p999, floor.p999),
        }
    }
}

/// One proxy process during a run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProxyCost {
    /// CPU seconds (user + system) per 1000 successful requests.
    pub cpu_s_per_1000: f64,
    /// CPU use over the run, in cores (1.0 = one core busy).
    pub cores: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

/// The figures of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Run {
    pub offered_rps: f64,
    pub achieved_rps: f64,
    pub requests: usize,
    pub errors: u64,
    pub latency_us: Percentiles,
    /// Client sidecar first, then server sidecar; empty for the floor.
    pub proxies: Vec<ProxyCost>,
}

impl Run {
    /// CPU seconds per 1000 requests summed over the proxies on the path.
    pub fn cpu_s_per_1000(&self) -> f64 {
        self.proxies.iter().map(|p| p.cpu_s_per_1000).sum()
    }

    /// The largest steady RSS among the proxies, KiB.
    pub fn max_rss_kib(&self) -> u64 {
        self.proxies.iter().map(|p| p.rss_kib).max().unwrap_or(0)
    }

    pub fn max_peak_rss_kib(&self) -> u64 {
        self.proxies
            .iter()
            .map(|p| p.peak_rss_kib)
            .max()
            .unwrap_or(0)
    }
}

/// Runs `spec` against `topology` and reads the proxies' counters around it.
pub async fn measure(topology: &Topology, spec: &LoadSpec) -> Run {
    let pids: Vec<Option<u32>> = topology.proxies.iter().map(|p| p.pid()).collect();
    let before: Vec<_> = pids
        .iter()
        .map(|p| p.and_then(procstat::read_tree))
        .collect();
    let result = load::run(spec).await;
    let after: Vec<_> = pids
        .iter()
        .map(|p| p.and_then(procstat::read_tree))
        .collect();
    summarize(spec, &result, &before, &after)
}

fn summarize(
    spec: &LoadSpec,
    result: &LoadResult,
    before: &[Option<procstat::Reading>],
    after: &[Option<procstat::Reading>],
) -> Run {
    let sample = Sample::new(result.latencies.clone());
    let requests = result.latencies.len();
    let proxies = before
        .iter()
        .zip(after)
        .map(|(b, a)| match (b, a) {
            (Some(b), Some(a)) => {
                let cpu = a.cpu.saturating_sub(b.cpu);
                ProxyCost {
                    cpu_s_per_1000: cpu.as_secs_f64() / (requests.max(1) as f64 / 1000.0),
                    cores: cpu.as_secs_f64()
                        / result.elapsed.max(Duration::from_millis(1)).as_secs_f64(),
                    rss_kib: a.rss_kib,
                    peak_rss_kib: a.peak_rss_kib,
                }
            }
            _ => ProxyCost::default(),
        })
        .collect();
    Run {
        offered_rps: spec.rate,
        achieved_rps: result.throughput(),
        requests,
        errors: result.errors,
        latency_us: Percentiles::of(&sample),
        proxies,
    }
}
