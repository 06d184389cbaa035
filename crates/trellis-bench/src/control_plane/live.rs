//! The real `trellis control-plane` process under a synthetic mesh and many ADS clients:
//! what an operator would see. The mesh is a directory of YAML the control plane watches;
//! a change is a file rewritten atomically, timed from the rename until each client has
//! received and ACKed the affected type (so file watching and the 100 ms debounce are in
//! the figure, as they are in production). CPU and memory are the control plane
//! process's own, from `/proc`; the clients run in this process.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use trellis_control_plane::xds::resources::XdsType;
use trellis_testkit::mesh::{self, MeshDir};

use super::collect::{self, Waited};
use super::{Args, spawn_clients};
use crate::data_plane::procstat;
use crate::stats::{Sample, bytes, ms};
use crate::synthetic::{self, Generation, Shape};

/// Milliseconds at p50 and p99, and the slowest.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(values: Vec<Duration>) -> Latency {
        let s = Sample::new(values);
        let m = |d: Duration| d.as_secs_f64() * 1000.0;
        Latency {
            p50_ms: m(s.percentile(50.0)),
            p99_ms: m(s.percentile(99.0)),
            max_ms: m(s.max()),
        }
    }
}

/// What the live run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Live {
    pub services: usize,
    pub endpoints_per_service: usize,
    pub proxies: usize,
    pub changes: usize,
    /// From the clients' start until each had CDS+EDS+LDS+RDS.
    pub first_push: Latency,
    pub first_push_bytes: usize,
    pub endpoint_change: Latency,
    pub endpoint_change_bytes_per_proxy: usize,
    pub route_change: Latency,
    pub route_change_bytes_per_proxy: usize,
    /// CPU of the control plane while nothing changes, in cores.
    pub idle_cores: f64,
    /// CPU seconds of the control plane per change (all proxies updated).
    pub cpu_s_per_change: f64,
    pub rss_mib_loaded: f64,
    pub rss_mib_serving: f64,
    pub peak_rss_mib: f64,
}

const CHANGE_DEADLINE: Duration = Duration::from_secs(300);

/// Runs the live scenario with the `trellis` binary at `trellis`.
pub fn run(args: &Args, trellis: &Path) -> anyhow::Result<Live> {
    let shape = Shape {
        services: args.services.max(1),
        endpoints: args.endpoints.max(1),
    };
    let dir = MeshDir::new();
    for i in 0..shape.services {
        write_service(&dir, shape, i, Generation::default());
    }
    let at = "127.0.0.1".parse()?;
    let (cp, xds, _) = mesh::control_plane(trellis, dir.path(), at, Duration::from_secs(300));
    let pid = cp
        .pid()
        .ok_or_else(|| anyhow::anyhow!("control plane exited"))?;
    let read = || procstat::read(pid).unwrap_or_default();
    let mut live = Live {
        services: shape.services,
        endpoints_per_service: shape.endpoints,
        proxies: args.proxies,
        changes: args.changes,
        rss_mib_loaded: mib(read().rss_kib),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let proxies: Vec<_> = (0..args.proxies)
            .map(|k| synthetic::proxy(shape, k, args.proxies))
            .collect();
        let n = proxies.len();
        let started = Instant::now();
        let address = format!("http://{xds}");
        let connections = args.connections.clamp(1, n.max(1));
        let mut events = spawn_clients(&address, proxies, connections).await?;
        let first = collect::first_full(&mut events, n, started, Duration::from_secs(900)).await?;
        live.first_push = Latency::of(first.latencies);
        live.first_push_bytes = first.bytes;
        collect::settle(
            &mut events,
            Duration::from_secs(1),
            XdsType::Endpoint,
            &mut Waited::default(),
        )
        .await;
        live.rss_mib_serving = mib(read().rss_kib);

        let before = read();
        tokio::time::sleep(Duration::from_secs(5)).await;
        live.idle_cores = read().cpu.saturating_sub(before.cpu).as_secs_f64() / 5.0;

        let cpu_before = read().cpu;
        let routed: Vec<usize> = (0..shape.services)
            .filter(|i| synthetic::has_routes(*i))
            .collect();
        let change = |kind: XdsType, round: usize| {
            let (service, generation) = match kind {
                XdsType::Route => (
                    routed[(round * 31) % routed.len().max(1)],
                    Generation {
                        endpoints: 0,
                        routes: round,
                    },
                ),
                _ => (
                    (round * 7919) % shape.services,
                    Generation {
                        endpoints: round,
                        routes: 0,
                    },
                ),
            };
            write_service(&dir, shape, service, generation);
            Instant::now()
        };
        let mut endpoint = (Vec::new(), 0);
        let mut route = (Vec::new(), 0);
        for round in 1..=args.changes {
            for (kind, into) in [
                (XdsType::Endpoint, &mut endpoint),
                (XdsType::Route, &mut route),
            ] {
                let published = change(kind, round);
                let mut waited =
                    collect::each_received(&mut events, n, kind, published, CHANGE_DEADLINE)
                        .await?;
                collect::settle(&mut events, Duration::from_millis(300), kind, &mut waited).await;
                into.0.extend(waited.latencies);
                into.1 += waited.bytes;
            }
        }
        let spent = read().cpu.saturating_sub(cpu_before);
        let changes = args.changes.max(1);
        live.cpu_s_per_change = spent.as_secs_f64() / (2 * changes) as f64;
        live.endpoint_change = Latency::of(endpoint.0);
        live.endpoint_change_bytes_per_proxy = endpoint.1 / (changes * n.max(1));
        live.route_change = Latency::of(route.0);
        live.route_change_bytes_per_proxy = route.1 / (changes * n.max(1));
        anyhow::Ok(())
    })?;
    let end = read();
    live.peak_rss_mib = mib(end.peak_rss_kib);
    print(&live);
    Ok(live)
}

fn write_service(dir: &MeshDir, shape: Shape, i: usize, generation: Generation) {
    dir.write(
        &format!("{}.yaml", synthetic::service_name(i)),
        &synthetic::service_yaml(shape, i, generation),
    );
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print(l: &Live) {
    println!(
        "## Live control plane: {} services × {} endpoints, {} ADS clients\n",
        l.services, l.endpoints_per_service, l.proxies
    );
    let show = |x: &Latency| {
        format!(
            "p50 {:.0} ms · p99 {:.0} ms · max {:.0} ms",
            x.p50_ms, x.p99_ms, x.max_ms
        )
    };
    println!(
        "- first full push: {} ({} pushed)",
        show(&l.first_push),
        bytes(l.first_push_bytes)
    );
    println!(
        "- endpoint change → each proxy ACKed: {} ({} per proxy)",
        show(&l.endpoint_change),
        bytes(l.endpoint_change_bytes_per_proxy)
    );
    println!(
        "- VirtualService change → each proxy ACKed: {} ({} per proxy)",
        show(&l.route_change),
        bytes(l.route_change_bytes_per_proxy)
    );
    println!(
        "- control plane CPU: {:.3} cores idle; {} CPU per change",
        l.idle_cores,
        ms(Duration::from_secs_f64(l.cpu_s_per_change))
    );
    println!(
        "- control plane RSS: {:.0} MiB loaded, {:.0} MiB serving, {:.0} MiB peak\n",
        l.rss_mib_loaded, l.rss_mib_serving, l.peak_rss_mib
    );
}
