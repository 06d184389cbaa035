//! Waiting on the ADS clients' reports: when every client has its first full config, and
//! when every client has received and ACKed a given type after a change.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use trellis_control_plane::xds::resources::XdsType;

use crate::ads_client::Received;

/// What a wait saw.
#[derive(Debug, Default)]
pub struct Waited {
    /// Per client, the time from the start of the wait until it was done.
    pub latencies: Vec<Duration>,
    /// Bytes of every response received meanwhile.
    pub bytes: usize,
    /// Responses of other types than the one waited for.
    pub other_types: usize,
}

/// Waits until each of `n` clients has received and ACKed CDS, EDS, LDS and RDS.
pub async fn first_full(
    events: &mut mpsc::UnboundedReceiver<Received>,
    n: usize,
    started: Instant,
    deadline: Duration,
) -> anyhow::Result<Waited> {
    let mut seen: Vec<[bool; 4]> = vec![[false; 4]; n];
    let mut out = Waited::default();
    while out.latencies.len() < n {
        let event = next(events, deadline, || {
            format!("first push: {}/{n} clients complete", out.latencies.len())
        })
        .await?;
        out.bytes += event.bytes;
        let i = XdsType::ORDER
            .iter()
            .position(|t| *t == event.xds_type)
            .unwrap_or(0);
        let Some(client) = seen.get_mut(event.client) else {
            continue;
        };
        let was_full = client.iter().all(|s| *s);
        client[i] = true;
        if !was_full && client.iter().all(|s| *s) {
            out.latencies.push(event.at.duration_since(started));
        }
    }
    Ok(out)
}

/// Waits until each of `n` clients has received (and ACKed) a response of `wanted` after
/// `published`.
pub async fn each_received(
    events: &mut mpsc::UnboundedReceiver<Received>,
    n: usize,
    wanted: XdsType,
    published: Instant,
    deadline: Duration,
) -> anyhow::Result<Waited> {
    let mut updated = vec![false; n];
    let mut out = Waited::default();
    while out.latencies.len() < n {
        let event = next(events, deadline, || {
            format!("{}/{n} clients updated", out.latencies.len())
        })
        .await?;
        out.bytes += event.bytes;
        if event.xds_type != wanted {
            out.other_types += 1;
            continue;
        }
        if let Some(done) = updated.get_mut(event.client)
            && !*done
        {
            *done = true;
            out.latencies.push(event.at.duration_since(published));
        }
    }
    Ok(out)
}

/// Drains what arrives until `quiet` passes without a report; bytes and other-type counts
/// go into `into`.
pub async fn settle(
    events: &mut mpsc::UnboundedReceiver<Received>,
    quiet: Duration,
    wanted: XdsType,
    into: &mut Waited,
) {
    while let Ok(Some(e)) = tokio::time::timeout(quiet, events.recv()).await {
        into.bytes += e.bytes;
        if e.xds_type != wanted {
            into.other_types += 1;
        }
    }
}

async fn next(
    events: &mut mpsc::UnboundedReceiver<Received>,
    deadline: Duration,
    progress: impl Fn() -> String,
) -> anyhow::Result<Received> {
    tokio::time::timeout(deadline, events.recv())
        .await
        .map_err(|_| anyhow::anyhow!("{} after {deadline:?}", progress()))?
        .ok_or_else(|| anyhow::anyhow!("clients ended"))
}
