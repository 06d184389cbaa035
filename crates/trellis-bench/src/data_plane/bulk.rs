//! Bulk TCP throughput through the sidecar pair (iperf-style): one connection writes as
//! fast as it can for a fixed time into a sink behind the server sidecar.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::procstat;
use super::topology::{DataPlane, Port, Topology};

/// The figures of one bulk transfer.
#[derive(Debug, Clone, Serialize)]
pub struct Bulk {
    pub plane: DataPlane,
    pub gbit_per_s: f64,
    /// CPU seconds per GiB moved, per proxy (client sidecar first).
    pub cpu_s_per_gib: Vec<f64>,
    pub error: Option<String>,
}

/// Writes 64 KiB chunks for `duration` and reports the rate and the proxies' CPU.
pub async fn measure(topology: &Topology, plane: DataPlane, duration: Duration) -> Bulk {
    let pids: Vec<Option<u32>> = topology.proxies.iter().map(|p| p.pid()).collect();
    let before: Vec<_> = pids
        .iter()
        .map(|p| p.and_then(procstat::read_tree))
        .collect();
    let (bytes, elapsed, error) = match transfer(topology, duration).await {
        Ok((bytes, elapsed)) => (bytes, elapsed, None),
        Err(e) => (0, duration, Some(e.to_string())),
    };
    let after: Vec<_> = pids
        .iter()
        .map(|p| p.and_then(procstat::read_tree))
        .collect();
    let gib = bytes as f64 / f64::from(1u32 << 30);
    let cpu_s_per_gib = before
        .iter()
        .zip(&after)
        .map(|(b, a)| match (b, a) {
            (Some(b), Some(a)) => a.cpu.saturating_sub(b.cpu).as_secs_f64() / gib.max(1e-9),
            _ => 0.0,
        })
        .collect();
    Bulk {
        plane,
        gbit_per_s: bytes as f64 * 8.0 / elapsed.as_secs_f64().max(1e-9) / 1e9,
        cpu_s_per_gib,
        error,
    }
}

async fn transfer(topology: &Topology, duration: Duration) -> std::io::Result<(u64, Duration)> {
    let mut stream = TcpStream::connect(topology.entry(Port::Tcp)).await?;
    let chunk = vec![0u8; 64 * 1024];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < duration {
        stream.write_all(&chunk).await?;
        sent += chunk.len() as u64;
    }
    stream.shutdown().await?;
    Ok((sent, start.elapsed()))
}
