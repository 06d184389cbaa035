//! The report: `BENCHMARKS.md` (tables), `benchmarks.json` (every figure) and SVG plots.

use std::fmt::Write as _;
use std::path::Path;

use super::measure::{Percentiles, Run};
use super::topology::DataPlane;
use super::{Case, Figures, plot};

/// Writes the three outputs into `out`.
pub fn write(figures: &Figures, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("benchmarks.json"),
        serde_json::to_string_pretty(figures)?,
    )?;
    std::fs::write(out.join("bench-latency.svg"), plot::sweep_latency(figures))?;
    std::fs::write(out.join("bench-cpu.svg"), plot::cpu_per_1000(figures))?;
    std::fs::write(out.join("bench-memory.svg"), plot::memory(figures))?;
    let md = markdown(figures);
    std::fs::write(out.join("BENCHMARKS.md"), &md)?;
    println!("{md}");
    Ok(())
}

/// Median, min and max of some values.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(mut values: Vec<f64>) -> Spread {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        if n == 0 {
            return Spread::default();
        }
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Spread {
            median,
            min: values[0],
            max: values[n - 1],
        }
    }

    /// `median (min–max)`, or just the median for one value.
    fn show(&self, decimals: usize) -> String {
        if (self.max - self.min).abs() < f64::EPSILON {
            format!("{:.*}", decimals, self.median)
        } else {
            format!(
                "{:.*} ({:.*}–{:.*})",
                decimals, self.median, decimals, self.min, decimals, self.max
            )
        }
    }
}

/// A figure of every run of a case.
pub fn spread(case: &Case, f: impl Fn(&Run) -> f64) -> Spread {
    Spread::of(case.runs.iter().map(f).collect())
}

pub fn find<'a>(figures: &'a Figures, scenario: &str, plane: DataPlane) -> Option<&'a Case> {
    figures
        .cases
        .iter()
        .find(|c| c.scenario == scenario && c.plane == plane)
}

/// The median percentiles of a case.
fn median_latency(case: &Case) -> Percentiles {
    Percentiles {
        p50: spread(case, |r| r.latency_us.p50).median,
        p90: spread(case, |r| r.latency_us.p90).median,
        p99: spread(case, |r| r.latency_us.p99).median,
        p999: spread(case, |r| r.latency_us.p999).median,
    }
}

fn markdown(f: &Figures) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Produced by `cargo run --release -p trellis-bench -- all` (`--short` for a quick run). \
Figures, never pass/fail. Latency is measured from each request's intended send time \
(open loop, constant rate); \"added\" is the data plane's percentile minus the no-proxy \
floor's, from the same run. CPU is user+system time of each proxy process from `/proc`, per \
1000 successful requests; memory is the resident set (steady at the end of the run, and the \
peak).\n"
    );
    let _ = writeln!(s, "## Machine and parameters\n");
    for (k, v) in &f.machine {
        let _ = writeln!(s, "- {k}: {v}");
    }
    let p = &f.params;
    let _ = writeln!(
        s,
        "- runs: {} repeat(s) of {} s each after a {} s warm-up; payload {} B each way (POST echoed); \
load generator: this crate's open-loop generator (see `data_plane/load.rs`), one worker thread \
and a pacing thread\n\
- path: load → client sidecar (explicit egress listener) → server sidecar (explicit ingress \
listener) → echo server, all on loopback; both sidecars configured by `trellis control-plane`, \
{} worker thread(s) each (Envoy `--concurrency`, Trellis `--concurrency`), access logs off\n\
- CPU pinning: {}\n",
        p.repeats,
        p.seconds,
        p.warmup_seconds,
        p.payload_bytes,
        p.proxy_workers,
        p.pinning.as_deref().unwrap_or("none")
    );
    for (title, scenario) in [
        ("HTTP/1.1, 1000 req/s, 4 connections", "http1-4conn"),
        ("HTTP/1.1, 1000 req/s, 16 connections", "http1-16conn"),
        ("HTTP/2, 1000 req/s, 4 connections", "http2-4conn"),
        ("gRPC unary, 1000 req/s, 4 connections", "grpc-4conn"),
    ] {
        latency_table(&mut s, f, title, scenario);
    }
    sweep_table(&mut s, f);
    tcp_table(&mut s, f);
    idle_table(&mut s, f);
    profile_section(&mut s, f);
    if let Some(live) = &f.control_plane {
        control_plane_section(&mut s, live);
    }
    let _ = writeln!(
        s,
        "## Published figures (not measured here)\n\n\
- Istio 1.20 (Envoy sidecars, 1000 req/s, 1 KB, 16 connections, mTLS): two sidecars add p90 0.228 ms, p99 0.298 ms; \
an Envoy sidecar costs about 0.20 vCPU and 60 MB per 1000 req/s.\n\
- istiod: 1 vCPU and 1.5 GB for 1000 services and 2000 sidecars; Istio 1.0.3 updated 500 sidecars in under 1 s.\n"
    );
    s
}

fn latency_table(s: &mut String, f: &Figures, title: &str, scenario: &str) {
    let Some(floor) = find(f, scenario, DataPlane::None) else {
        return;
    };
    let floor_lat = median_latency(floor);
    let _ = writeln!(s, "## {title}\n");
    let _ = writeln!(
        s,
        "| data plane | req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | added p50 / p90 / p99 / p99.9 µs | CPU s per 1000 req (client + server sidecar) | RSS MiB (peak) | errors |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut added = Vec::new();
    for plane in [DataPlane::None, DataPlane::Envoy, DataPlane::Trellis] {
        let Some(case) = find(f, scenario, plane) else {
            continue;
        };
        let lat = median_latency(case);
        let over = lat.over(&floor_lat);
        let cpu = spread(case, Run::cpu_s_per_1000);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            plane.name(),
            spread(case, |r| r.achieved_rps).show(0),
            spread(case, |r| r.latency_us.p50).show(0),
            spread(case, |r| r.latency_us.p90).show(0),
            spread(case, |r| r.latency_us.p99).show(0),
            spread(case, |r| r.latency_us.p999).show(0),
            if plane == DataPlane::None {
                "—".to_string()
            } else {
                format!(
                    "{:.0} / {:.0} / {:.0} / {:.0}",
                    over.p50, over.p90, over.p99, over.p999
                )
            },
            if plane == DataPlane::None {
                "—".to_string()
            } else {
                cpu.show(3)
            },
            if plane == DataPlane::None {
                "—".to_string()
            } else {
                format!(
                    "{:.1} ({:.1})",
                    spread(case, |r| r.max_rss_kib() as f64).median / 1024.0,
                    spread(case, |r| r.max_peak_rss_kib() as f64).median / 1024.0
                )
            },
            case.runs.iter().map(|r| r.errors).sum::<u64>(),
        );
        added.push((
            plane,
            over,
            cpu.median,
            spread(case, |r| r.max_rss_kib() as f64).median,
        ));
    }
    if let (Some(e), Some(t)) = (
        added.iter().find(|a| a.0 == DataPlane::Envoy),
        added.iter().find(|a| a.0 == DataPlane::Trellis),
    ) {
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.2}", a / b)
            } else {
                "—".into()
            }
        };
        let _ = writeln!(
            s,
            "\nTrellis / Envoy: added p50 {}, added p99 {}, CPU per request {}, RSS {}.",
            ratio(t.1.p50, e.1.p50),
            ratio(t.1.p99, e.1.p99),
            ratio(t.2, e.2),
            ratio(t.3, e.3)
        );
    }
    let _ = writeln!(s);
}

fn sweep_table(s: &mut String, f: &Figures) {
    let _ = writeln!(
        s,
        "## Rate sweep (HTTP/1.1, 16 connections)\n\n| offered req/s | data plane | achieved req/s | p50 µs | p99 µs | proxy cores (sum) | req/s per proxy core |\n|---|---|---|---|---|---|---|"
    );
    for rate in &f.params.sweep_rps {
        for plane in [DataPlane::None, DataPlane::Envoy, DataPlane::Trellis] {
            let Some(case) = find(f, &format!("sweep-{rate}"), plane) else {
                continue;
            };
            let achieved = spread(case, |r| r.achieved_rps).median;
            let cores = spread(case, |r| r.proxies.iter().map(|p| p.cores).sum()).median;
            let _ = writeln!(
                s,
                "| {rate:.0} | {} | {achieved:.0} | {:.0} | {:.0} | {} | {} |",
                plane.name(),
                spread(case, |r| r.latency_us.p50).median,
                spread(case, |r| r.latency_us.p99).median,
                if plane == DataPlane::None {
                    "—".into()
                } else {
                    format!("{cores:.2}")
                },
                if plane == DataPlane::None || cores <= 0.0 {
                    "—".into()
                } else {
                    format!("{:.0}", achieved / cores)
                },
            );
        }
    }
    let _ = writeln!(
        s,
        "\nThe knee is where achieved falls below offered or p99 climbs by an order of magnitude; \
req/s per proxy core is achieved throughput over the CPU the two sidecars used together.\n"
    );
}

fn tcp_table(s: &mut String, f: &Figures) {
    let _ = writeln!(
        s,
        "## TCP bulk throughput (one connection, 64 KiB writes)\n\n| data plane | Gbit/s | CPU s per GiB (client, server sidecar) | note |\n|---|---|---|---|"
    );
    for b in &f.tcp {
        let cpu: Vec<String> = b.cpu_s_per_gib.iter().map(|c| format!("{c:.2}")).collect();
        let _ = writeln!(
            s,
            "| {} | {:.2} | {} | {} |",
            b.plane.name(),
            b.gbit_per_s,
            if cpu.is_empty() {
                "—".into()
            } else {
                cpu.join(", ")
            },
            b.error.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(s);
}

fn idle_table(s: &mut String, f: &Figures) {
    let _ = writeln!(
        s,
        "## Idle sidecar holding a {}-service mesh (10 endpoints each)\n\n| data plane | RSS MiB | peak RSS MiB |\n|---|---|---|",
        f.params.idle_services
    );
    for i in &f.idle {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} |",
            i.plane.name(),
            i.rss_kib as f64 / 1024.0,
            i.peak_rss_kib as f64 / 1024.0
        );
    }
    let _ = writeln!(s);
}

fn profile_section(s: &mut String, f: &Figures) {
    let Some(p) = &f.profile else {
        return;
    };
    let _ = writeln!(
        s,
        "## Where the Trellis proxy spends its CPU\n\n`perf record -g` on the client sidecar for 5 s of HTTP/1.1 at 1000 req/s, 16 connections; self time by symbol:\n"
    );
    if let Some(why) = &p.skipped {
        let _ = writeln!(s, "Not profiled: {why}\n");
        return;
    }
    let _ = writeln!(s, "| % samples | symbol |\n|---|---|");
    for (pct, symbol) in &p.symbols {
        let _ = writeln!(s, "| {pct:.2} | `{}` |", symbol.replace('|', "\\|"));
    }
    let _ = writeln!(s, "\n{}\n", include_str!("../../analysis.md").trim());
}

fn control_plane_section(s: &mut String, l: &crate::control_plane::live::Live) {
    let lat = |x: &crate::control_plane::live::Latency| {
        format!("{:.0} / {:.0} / {:.0}", x.p50_ms, x.p99_ms, x.max_ms)
    };
    let _ = writeln!(
        s,
        "## Control plane: {} services × {} endpoints, {} connected proxies\n\n\
The real `trellis control-plane` process watching a directory of YAML; lightweight ADS clients in the benchmark process ACK like Envoy (state of the world). Changes are files rewritten atomically, timed from the rename to each proxy's ACK (file watching and the 100 ms debounce included).\n\n\
| what | p50 / p99 / max ms | bytes per proxy |\n|---|---|---|\n\
| first full push (CDS+EDS+LDS+RDS) | {} | {} |\n\
| endpoint change → every proxy ACKed EDS | {} | {} |\n\
| VirtualService change → every proxy ACKed RDS | {} | {} |\n\n\
Control plane: {:.3} cores while idle, {:.3} CPU s per change; RSS {:.0} MiB with the mesh loaded, {:.0} MiB serving every proxy, {:.0} MiB peak.\n",
        l.services,
        l.endpoints_per_service,
        l.proxies,
        lat(&l.first_push),
        l.first_push_bytes / l.proxies.max(1),
        lat(&l.endpoint_change),
        l.endpoint_change_bytes_per_proxy,
        lat(&l.route_change),
        l.route_change_bytes_per_proxy,
        l.idle_cores,
        l.cpu_s_per_change,
        l.rss_mib_loaded,
        l.rss_mib_serving,
        l.peak_rss_mib
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_min_max() {
        let s = Spread::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of(vec![1.0, 2.0, 3.0, 10.0]).median, 2.5);
        assert_eq!(Spread::of(vec![4.0]).show(1), "4.0");
        assert_eq!(Spread::of(vec![1.0, 3.0]).show(0), "2 (1–3)");
    }
}
