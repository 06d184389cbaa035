//! `trellis-bench data-plane`: the proxies measured side by side on one machine, in one run.
//!
//! For each data plane — none (the floor), Envoy, Trellis — the same path
//! ([`topology`]) carries the same open-loop load ([`load`]); each run reads the latency
//! from the intended send time and the CPU and memory of every proxy process
//! ([`measure`]). Scenarios: Istio's headline setup (HTTP/1.1, 1 KiB, 1000 req/s, 4 and 16
//! connections), a rate sweep, HTTP/2 and gRPC unary, TCP bulk throughput ([`bulk`]), and
//! an idle sidecar holding a 1000-service mesh ([`idle`]). The data planes are measured one
//! after another, each scenario after a warm-up, repeated; [`report`] writes the Markdown,
//! JSON and SVG.

mod bulk;
pub mod echo;
mod idle;
pub mod load;
mod measure;
mod plot;
pub mod procstat;
mod profile;
pub mod report;
pub mod topology;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;
use serde::Serialize;

use load::{LoadSpec, Protocol};
use measure::Run;
use topology::{Apps, DataPlane, Port, Topology};

#[derive(Debug, Clone, ClapArgs)]
pub struct Args {
    /// A minute or two: one repeat, short runs, a short sweep.
    #[arg(long)]
    pub short: bool,
    /// Repeats of every run (medians with min–max are reported).
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Seconds per measured run.
    #[arg(long)]
    pub seconds: Option<u64>,
    /// The `trellis` binary (default: build it in release mode beside this benchmark).
    #[arg(long)]
    pub trellis: Option<PathBuf>,
    /// Where BENCHMARKS.md, benchmarks.json and the plots go.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Services in the idle sidecar's mesh.
    #[arg(long, default_value_t = 1000)]
    pub idle_services: usize,
    /// Worker threads of each sidecar, Envoy and Trellis alike (Istio's sidecars run 2; with
    /// pinning on a 2-core machine both sidecars share one core, where 1 fits).
    #[arg(long, default_value_t = 1)]
    pub proxy_workers: usize,
    /// Do not pin the load generator and the processes under test to separate CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// Plain text between the sidecars instead of Istio's mutual TLS.
    #[arg(long)]
    pub no_mtls: bool,
    /// Proxies connected to the control plane in `all` (default: 2000, 200 with `--short`).
    #[arg(long)]
    pub cp_proxies: Option<usize>,
}

/// The parameters a report states.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub repeats: usize,
    pub seconds: u64,
    pub warmup_seconds: u64,
    pub payload_bytes: usize,
    pub headline_rps: f64,
    pub sweep_rps: Vec<f64>,
    pub idle_services: usize,
    pub proxy_workers: usize,
    /// Mutual TLS between the sidecars (STRICT).
    pub mtls: bool,
    /// How CPUs were split, `None` when not pinned.
    pub pinning: Option<String>,
}

/// Every run of one scenario for one data plane.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub scenario: String,
    pub plane: DataPlane,
    pub runs: Vec<Run>,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub machine: Vec<(String, String)>,
    pub params: Params,
    pub cases: Vec<Case>,
    pub tcp: Vec<bulk::Bulk>,
    pub idle: Vec<idle::Idle>,
    /// The Trellis client sidecar's hottest symbols under the headline load.
    pub profile: Option<profile::Profile>,
    /// The live control-plane scenario, when run (`all`).
    pub control_plane: Option<crate::control_plane::live::Live>,
}

const PAYLOAD: usize = 1024;
const HEADLINE_RPS: f64 = 1000.0;

/// The load scenarios: name, protocol, port, connections, rate.
fn scenarios(params: &Params) -> Vec<(String, Protocol, Port, usize, f64)> {
    let mut out = vec![
        (
            "http1-4conn".to_string(),
            Protocol::Http1,
            Port::Http,
            4,
            HEADLINE_RPS,
        ),
        (
            "http1-16conn".to_string(),
            Protocol::Http1,
            Port::Http,
            16,
            HEADLINE_RPS,
        ),
        (
            "http2-4conn".to_string(),
            Protocol::Http2,
            Port::Grpc,
            4,
            HEADLINE_RPS,
        ),
        (
            "grpc-4conn".to_string(),
            Protocol::Grpc,
            Port::Grpc,
            4,
            HEADLINE_RPS,
        ),
    ];
    for rate in &params.sweep_rps {
        out.push((
            format!("sweep-{rate}"),
            Protocol::Http1,
            Port::Http,
            16,
            *rate,
        ));
    }
    out
}

/// Runs every data-plane scenario and returns the figures (the caller writes the report).
pub fn run(args: &Args) -> anyhow::Result<Figures> {
    // Before pinning narrows what this process sees.
    let machine = crate::machine::describe();
    let params = Params {
        repeats: args.repeats.unwrap_or(if args.short { 1 } else { 3 }),
        seconds: args.seconds.unwrap_or(if args.short { 5 } else { 30 }),
        warmup_seconds: if args.short { 1 } else { 5 },
        payload_bytes: PAYLOAD,
        headline_rps: HEADLINE_RPS,
        sweep_rps: if args.short {
            vec![500.0, 2000.0, 8000.0]
        } else {
            vec![
                500.0, 1000.0, 2000.0, 4000.0, 6000.0, 8000.0, 12000.0, 16000.0,
            ]
        },
        idle_services: args.idle_services,
        proxy_workers: args.proxy_workers.max(1),
        mtls: !args.no_mtls,
        pinning: crate::pinning::apply(!args.no_pin),
    };
    let mut bins = topology::locate(args.trellis.as_deref())?;
    bins.workers = params.proxy_workers;
    bins.mtls = params.mtls;
    let planes: Vec<DataPlane> = [DataPlane::None, DataPlane::Envoy, DataPlane::Trellis]
        .into_iter()
        .filter(|p| *p != DataPlane::Envoy || bins.envoy.is_some())
        .collect();
    let echo = echo::start("127.0.0.1:0".parse()?, echo::Kind::Echo)?;
    let sink = echo::start("127.0.0.1:0".parse()?, echo::Kind::Sink)?;
    let apps = Apps {
        echo: echo.address,
        sink: sink.address,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(crate::pinning::pin_load_thread)
        .enable_all()
        .build()?;
    let mut cases: Vec<Case> = Vec::new();
    let mut tcp = Vec::new();
    let mut profiled = None;
    for plane in &planes {
        eprintln!("== {}", plane.name());
        let topology = Topology::start(*plane, &bins, apps)?;
        for (name, protocol, port, connections, rate) in scenarios(&params) {
            let spec = LoadSpec {
                target: topology.entry(port),
                authority: port.authority(),
                protocol,
                rate,
                connections,
                duration: Duration::from_secs(params.seconds),
                payload: PAYLOAD,
            };
            let warmup = LoadSpec {
                duration: Duration::from_secs(params.warmup_seconds),
                ..spec.clone()
            };
            runtime.block_on(load::run(&warmup));
            let mut runs = Vec::new();
            for _ in 0..params.repeats {
                let run = runtime.block_on(measure::measure(&topology, &spec));
                eprintln!(
                    "   {name}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, {} errors",
                    run.achieved_rps, run.latency_us.p50, run.latency_us.p99, run.errors
                );
                runs.push(run);
            }
            cases.push(Case {
                scenario: name,
                plane: *plane,
                runs,
            });
        }
        if *plane == DataPlane::Trellis {
            profiled = Some(profile_client(&runtime, &topology, &args.out));
        }
        tcp.push(runtime.block_on(bulk::measure(
            &topology,
            *plane,
            Duration::from_secs(params.seconds.min(10)),
        )));
    }
    let idle = idle::measure_all(&bins, &planes, params.idle_services)?;
    Ok(Figures {
        machine,
        params,
        cases,
        tcp,
        idle,
        profile: profiled,
        control_plane: None,
    })
}

/// Profiles the client sidecar (the first proxy) for 5 s of the headline load.
fn profile_client(
    runtime: &tokio::runtime::Runtime,
    topology: &Topology,
    out: &std::path::Path,
) -> profile::Profile {
    let Some(pid) = topology.proxies.first().and_then(|p| p.pid()) else {
        return profile::Profile::default();
    };
    let seconds = Duration::from_secs(5);
    let data = out.join("perf-trellis.data");
    let record = match profile::start(pid, seconds, &data) {
        Ok(r) => r,
        Err(why) => {
            return profile::Profile {
                symbols: Vec::new(),
                skipped: Some(why),
            };
        }
    };
    runtime.block_on(load::run(&LoadSpec {
        target: topology.entry(Port::Http),
        authority: Port::Http.authority(),
        protocol: Protocol::Http1,
        rate: HEADLINE_RPS,
        connections: 16,
        duration: seconds,
        payload: PAYLOAD,
    }));
    let profile = profile::finish(record, &data, 15);
    let _ = std::fs::remove_file(&data);
    profile
}
