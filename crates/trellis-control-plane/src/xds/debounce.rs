//! Debouncing: configuration and registry changes arrive in bursts (an editor saving
//! several files, proxies connecting together). A push starts once changes have been quiet
//! for a while, or once the first change has waited long enough — Istio's
//! `PILOT_DEBOUNCE_AFTER` (100 ms) and `PILOT_DEBOUNCE_MAX` (10 s).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debounce {
    pub quiet: Duration,
    pub max: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce {
            quiet: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

impl Debounce {
    /// Waits for a change, then for the burst to end. Returns when the first change of the
    /// burst arrived, or `None` once every sender is gone.
    pub async fn next_burst(&self, changes: &mut mpsc::Receiver<()>) -> Option<Instant> {
        changes.recv().await?;
        let first = Instant::now();
        let deadline = first + self.max;
        let mut last = first;
        loop {
            let until = (last + self.quiet).min(deadline);
            tokio::select! {
                more = changes.recv() => match more {
                    Some(()) => last = Instant::now(),
                    None => return Some(first),
                },
                () = tokio::time::sleep_until(until) => return Some(first),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_for_quiet_then_fires_once() {
        let (tx, mut rx) = mpsc::channel(16);
        let d = Debounce::default();
        let start = Instant::now();
        tokio::spawn(async move {
            for _ in 0..5 {
                tx.send(()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            std::future::pending::<()>().await;
        });
        let first = d.next_burst(&mut rx).await.unwrap();
        assert_eq!(first, start);
        // Last change at 200 ms, then 100 ms of quiet.
        assert_eq!(Instant::now() - start, Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_of_changes_still_fires_at_max_delay() {
        let (tx, mut rx) = mpsc::channel(16);
        let d = Debounce {
            quiet: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        tokio::spawn(async move {
            loop {
                if tx.send(()).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        });
        let start = Instant::now();
        d.next_burst(&mut rx).await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn ends_when_senders_are_gone() {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        drop(tx);
        assert_eq!(Debounce::default().next_burst(&mut rx).await, None);
    }
}
