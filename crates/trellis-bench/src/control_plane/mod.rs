//! `trellis-bench control-plane`: what the control plane costs for a synthetic mesh.
//!
//! 1. Build: YAML → store snapshot → `MeshSnapshot` (the push context).
//! 2. Translate: `translate(mesh, proxy)` for every proxy, timed one by one; resource
//!    counts and encoded bytes per proxy.
//! 3. Push: an in-process ADS server (the real `Ads` service over gRPC on loopback) and N
//!    lightweight clients that ACK like Envoy: time until every client has its first full
//!    config, then, for each of `--changes` endpoint changes (one WorkloadEntry of one
//!    service moves), the time from publishing the new mesh until each client has received
//!    and ACKed the new endpoints.
//!
//! Clients, server and translation share this process and its cores, as they share the
//! machine; the figures include the clients' own work (decoding, ACKing).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use prometheus_client::registry::Registry;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::TcpListenerStream;
use trellis_config::store::StoreState;
use trellis_control_plane::mesh::MeshSnapshot;
use trellis_control_plane::metrics::Metrics;
use trellis_control_plane::translate::view::{ViewInputs, ViewKey};
use trellis_control_plane::translate::{Resources, translate};
use trellis_control_plane::xds::push::{PushScope, classify};
use trellis_control_plane::xds::registration::Registrations;
use trellis_control_plane::xds::resources::XdsType;
use trellis_control_plane::xds::status::SyncStatus;
use trellis_control_plane::xds::views::Views;
use trellis_control_plane::xds::{Ads, AdsContext, AdsService, MeshUpdate};

mod collect;
pub mod live;

use collect::Waited;

use crate::ads_client::{self, Received};
use crate::stats::{Sample, bytes, ms};
use crate::synthetic::{self, Shape};

#[derive(Debug, Clone, ClapArgs)]
pub struct Args {
    /// Services in the mesh (namespaces of 100).
    #[arg(long, default_value_t = 1000)]
    pub services: usize,
    /// Endpoints (WorkloadEntries) per service.
    #[arg(long, default_value_t = 10)]
    pub endpoints: usize,
    /// Proxies: sidecars spread evenly over the services (2000: the design's target).
    #[arg(long, default_value_t = 2000)]
    pub proxies: usize,
    /// Endpoint changes to time on the push path.
    #[arg(long, default_value_t = 5)]
    pub changes: usize,
    /// gRPC connections the clients share (each client is one ADS stream).
    #[arg(long, default_value_t = 256)]
    pub connections: usize,
    /// Skip the push path (translation figures only).
    #[arg(long)]
    pub no_push: bool,
    /// Measure the real `trellis control-plane` process (this binary, or `--trellis`)
    /// instead of an in-process server: file changes, debounce, its own CPU and memory.
    #[arg(long)]
    pub live: bool,
    /// The `trellis` binary for `--live` (default: built in release mode beside this one).
    #[arg(long)]
    pub trellis: Option<std::path::PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.live {
        let bins = crate::data_plane::topology::locate(args.trellis.as_deref())?;
        live::run(args, &bins.trellis)?;
        return Ok(());
    }
    let shape = Shape {
        services: args.services.max(1),
        endpoints: args.endpoints.max(1),
    };
    println!("# trellis-bench control-plane\n");
    println!("## Machine and software\n");
    for (k, v) in crate::machine::describe() {
        println!("- {k}: {v}");
    }
    println!(
        "\n## Parameters\n\n- services: {} (namespaces of {}, one HTTP port each; every 10th with a DestinationRule of 3 subsets and a VirtualService 90/10)\n- endpoints per service: {} (WorkloadEntries)\n- proxies: {} (sidecars, no Sidecar resource: every proxy sees every service)\n- endpoint changes timed: {}\n",
        shape.services,
        synthetic::SERVICES_PER_NAMESPACE,
        shape.endpoints,
        args.proxies,
        args.changes
    );

    // 1. Build.
    let started = Instant::now();
    let mut sources = synthetic::sources(shape);
    let decoded = started.elapsed();
    let started = Instant::now();
    let config = synthetic::snapshot(&sources);
    let stored = started.elapsed();
    let started = Instant::now();
    let mesh = Arc::new(MeshSnapshot::new(config.clone(), &[], Default::default()));
    let built = started.elapsed();
    println!("## Building the mesh\n");
    println!("- objects: {}", config.objects.len());
    println!("- decode YAML: {}", ms(decoded));
    println!("- store (validate + merge): {}", ms(stored));
    println!("- MeshSnapshot::new (registry + indexes): {}\n", ms(built));

    // 2. Translate: once per distinct view, as the server does.
    let proxies: Vec<_> = (0..args.proxies)
        .map(|k| synthetic::proxy(shape, k, args.proxies))
        .collect();
    let inputs = ViewInputs::of(&mesh);
    let mut views: HashMap<ViewKey, usize> = HashMap::new();
    let mut representatives = Vec::new();
    for (k, proxy) in proxies.iter().enumerate() {
        views.entry(ViewKey::of(&inputs, proxy)).or_insert_with(|| {
            representatives.push(k);
            representatives.len() - 1
        });
    }
    let mut times = Vec::with_capacity(representatives.len());
    let mut counts: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut sizes: Vec<usize> = Vec::new();
    let total = Instant::now();
    for proxy in representatives.iter().filter_map(|k| proxies.get(*k)) {
        let t = Instant::now();
        let resources = translate(&mesh, proxy);
        times.push(t.elapsed());
        counts
            .entry("clusters")
            .or_default()
            .push(resources.clusters.len());
        counts
            .entry("endpoints")
            .or_default()
            .push(resources.endpoints.len());
        counts
            .entry("listeners")
            .or_default()
            .push(resources.listeners.len());
        counts
            .entry("routes")
            .or_default()
            .push(resources.routes.len());
        sizes.push(encoded_size(&resources));
    }
    let total = total.elapsed();
    let sample = Sample::new(times);
    println!("## Translation (one thread)\n");
    println!(
        "- {} proxies, {} distinct views (translated once each)",
        proxies.len(),
        representatives.len()
    );
    println!("- per view: {}", sample.summary());
    println!(
        "- all views: {} (sum of per-view {})",
        ms(total),
        ms(sample.sum())
    );
    for (kind, n) in &counts {
        let (min, max) = (n.iter().min().unwrap_or(&0), n.iter().max().unwrap_or(&0));
        println!("- {kind} per view: {min}–{max}");
    }
    sizes.sort_unstable();
    println!(
        "- encoded bytes per view: median {}, max {}\n",
        bytes(sizes.get(sizes.len() / 2).copied().unwrap_or(0)),
        bytes(sizes.last().copied().unwrap_or(0)),
    );

    if args.no_push {
        return Ok(());
    }

    // 3. Push.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(push(args, shape, &mut sources, mesh, proxies))
}

/// Bytes of a proxy's resources, encoded.
fn encoded_size(r: &Resources) -> usize {
    r.clusters.iter().map(Message::encoded_len).sum::<usize>()
        + r.endpoints.iter().map(Message::encoded_len).sum::<usize>()
        + r.listeners.iter().map(Message::encoded_len).sum::<usize>()
        + r.routes.iter().map(Message::encoded_len).sum::<usize>()
}

async fn push(
    args: &Args,
    shape: Shape,
    sources: &mut [trellis_config::store::SourceFile],
    mesh: Arc<MeshSnapshot>,
    proxies: Vec<trellis_control_plane::proxy::ProxyNode>,
) -> anyhow::Result<()> {
    let mut previous = mesh.clone();
    let mut store = StoreState::default().apply(sources, vec![]).state;
    let (mesh_tx, mesh_rx) = watch::channel(Arc::new(MeshUpdate {
        mesh,
        generation: 1,
        changed_at: tokio::time::Instant::now(),
        problems: Arc::new(vec![]),
        scope: PushScope::Full,
        views: Arc::new(Views::after(None)),
    }));
    let (_stop, stop_rx) = watch::channel(false);
    let ads = Ads::new(AdsContext {
        mesh: mesh_rx,
        registrations: Registrations::new(Duration::from_secs(1)),
        status: SyncStatus::default(),
        metrics: Metrics::new(&mut Registry::default()),
        shutdown: stop_rx,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = format!("http://{}", listener.local_addr()?);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AdsService::new(ads))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let n = proxies.len();
    let connections = args.connections.clamp(1, n.max(1));
    let started = Instant::now();
    let mut events = spawn_clients(&address, proxies, connections).await?;

    let first = collect::first_full(&mut events, n, started, Duration::from_secs(600)).await?;
    print_first_push(&first, n, connections);
    // Let the initial exchange settle before timing changes.
    collect::settle(
        &mut events,
        Duration::from_millis(300),
        XdsType::Endpoint,
        &mut Waited::default(),
    )
    .await;

    let mut latencies = Vec::new();
    let mut rebuilds = Vec::new();
    let mut round_all = Vec::new();
    let mut totals = Waited::default();
    for round in 1..=args.changes {
        let service = (round * 7919) % shape.services;
        let t = Instant::now();
        sources[service] = synthetic::source(shape, service, round);
        // The store's change list lets the server push only what the change touches.
        let applied = store.apply(sources, vec![]);
        store = applied.state;
        let mesh = Arc::new(MeshSnapshot::new(
            store.snapshot.clone(),
            &[],
            Default::default(),
        ));
        let scope = classify(&previous, &mesh, &applied.changes);
        previous = mesh.clone();
        rebuilds.push(t.elapsed());
        let published = Instant::now();
        let views = Views::after(Some(&mesh_tx.borrow().views));
        mesh_tx.send_replace(Arc::new(MeshUpdate {
            mesh,
            generation: 1 + round as u64,
            changed_at: tokio::time::Instant::now(),
            problems: Arc::new(vec![]),
            scope,
            views: Arc::new(views),
        }));
        let mut waited = collect::each_received(
            &mut events,
            n,
            XdsType::Endpoint,
            published,
            Duration::from_secs(120),
        )
        .await?;
        // Quiet period between changes.
        collect::settle(
            &mut events,
            Duration::from_millis(200),
            XdsType::Endpoint,
            &mut waited,
        )
        .await;
        round_all.push(waited.latencies.iter().max().copied().unwrap_or_default());
        latencies.extend(waited.latencies);
        totals.bytes += waited.bytes;
        totals.other_types += waited.other_types;
    }
    let (change_bytes, other_types) = (totals.bytes, totals.other_types);
    if args.changes > 0 {
        let latency = Sample::new(latencies);
        println!("## Push: endpoint change → every proxy has ACKed the new endpoints\n");
        println!(
            "- changes: {} (one WorkloadEntry address of one service each; every proxy sees that service)",
            args.changes
        );
        println!(
            "- mesh rebuild per change (store apply + MeshSnapshot::new, before publishing): {}",
            Sample::new(rebuilds).summary()
        );
        println!("- per proxy, from publish to ACK: {}", latency.summary());
        println!(
            "- slowest proxy per change: {}",
            Sample::new(round_all).summary()
        );
        println!(
            "- bytes pushed for the changes: {} ({} per change per proxy); responses of other types: {}",
            bytes(change_bytes),
            bytes(change_bytes / (args.changes * n).max(1)),
            other_types
        );
        println!(
            "\nNote: an endpoint-only change rebuilds only the affected load assignments of each proxy and sends only the changed ones; the mesh rebuild above (store apply + MeshSnapshot::new over all objects) is still whole."
        );
    }
    Ok(())
}

/// Starts one ADS client per proxy on `connections` gRPC connections to `address`; their
/// reports arrive on the returned channel.
pub(crate) async fn spawn_clients(
    address: &str,
    proxies: Vec<trellis_control_plane::proxy::ProxyNode>,
    connections: usize,
) -> anyhow::Result<mpsc::UnboundedReceiver<Received>> {
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        channels.push(
            tonic::transport::Endpoint::from_shared(address.to_string())?
                .connect()
                .await?,
        );
    }
    let (events_tx, events) = mpsc::unbounded_channel::<Received>();
    for (k, proxy) in proxies.into_iter().enumerate() {
        let channel = channels[k % channels.len()].clone();
        let events = events_tx.clone();
        tokio::spawn(async move {
            if let Err(status) = ads_client::run(k, channel, proxy, events).await {
                eprintln!("client {k}: {status}");
            }
        });
    }
    Ok(events)
}

fn print_first_push(first: &Waited, n: usize, connections: usize) {
    let sample = Sample::new(first.latencies.clone());
    println!("## Push: first full config (CDS+EDS+LDS+RDS received and ACKed)\n");
    println!("- clients: {n} ADS streams over {connections} gRPC connections (state of the world)");
    println!("- per client, from start: {}", sample.summary());
    println!("- all clients: {}", ms(sample.max()));
    println!("- bytes pushed: {}\n", bytes(first.bytes));
}
