//! Keeps a workload's identity fresh: the first certificate is fetched before
//! [`start`] returns (retrying for up to [`FIRST_WAIT`] while the CA is unreachable, so a
//! workload may start beside a control plane that is still starting); a background task then renews at half-life (less a random jitter
//! of up to a tenth of the lifetime) and publishes each new identity on a
//! `tokio::sync::watch`, so TLS acceptors and connectors swap it for new handshakes while
//! established connections carry on. A failed renewal is retried with backoff until the
//! certificate expires; the old identity stays published meanwhile.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::client::{CaClientConfig, ClientError, WorkloadIdentity, request_identity};
use crate::spiffe::SpiffeId;

/// At most this much of the lifetime is taken off the half-life, at random.
const MAX_JITTER: f64 = 0.1;
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How long [`start`] waits for an unreachable CA.
pub const FIRST_WAIT: Duration = Duration::from_secs(60);

/// Fetches the first identity for `id`, then keeps it fresh in the background for as long
/// as any receiver lives.
pub async fn start(
    config: CaClientConfig,
    id: SpiffeId,
) -> Result<watch::Receiver<Arc<WorkloadIdentity>>, ClientError> {
    let deadline = tokio::time::Instant::now() + FIRST_WAIT;
    let mut backoff = RETRY_FIRST;
    let first = loop {
        match request_identity(&config, &id, None).await {
            Ok(identity) => break identity,
            Err(error) if error.is_transient() && tokio::time::Instant::now() < deadline => {
                tracing::warn!(id = %id, %error, retry_in = ?backoff, "CA not reachable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
            Err(error) => return Err(error),
        }
    };
    tracing::info!(id = %id, not_after = ?first.not_after, "workload certificate issued");
    let (tx, rx) = watch::channel(Arc::new(first));
    tokio::spawn(renew_forever(config, id, tx));
    Ok(rx)
}

async fn renew_forever(
    config: CaClientConfig,
    id: SpiffeId,
    tx: watch::Sender<Arc<WorkloadIdentity>>,
) {
    loop {
        let current = tx.borrow().clone();
        let due = current.renew_at(fastrand::f64() * MAX_JITTER);
        tokio::select! {
            () = tokio::time::sleep(until(due)) => {}
            () = tx.closed() => return,
        }
        let mut backoff = RETRY_FIRST;
        let renewed = loop {
            match request_identity(&config, &id, Some(&current)).await {
                Ok(identity) => break identity,
                Err(error) => {
                    tracing::warn!(id = %id, %error, retry_in = ?backoff, "certificate renewal failed");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = tx.closed() => return,
                    }
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        };
        tracing::info!(id = %id, not_after = ?renewed.not_after, "workload certificate renewed");
        if tx.send(Arc::new(renewed)).is_err() {
            return;
        }
    }
}

fn until(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now()).unwrap_or_default()
}
