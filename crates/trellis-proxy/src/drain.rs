//! The proxy's lifecycle after start: serving, then draining, then gone. Draining begins on
//! SIGTERM / SIGINT, `/quitquitquit` or `/drain_listeners`: the drained listeners stop
//! accepting (new connections are refused), readiness turns 503, HTTP/1 connections they
//! accepted get `connection: close` on their next response and HTTP/2 connections a
//! GOAWAY, while requests and connections in flight carry on. `/drain_listeners?inboundonly`
//! drains only the inbound listeners (`traffic_direction: INBOUND`), as Istio's agent does
//! first so that a terminating application can still call out; everything else drains all.
//! The process exits once the last downstream connection has closed or the drain duration
//! (Istio's `terminationDrainDuration`, 5 s by default) is over, whichever comes first.

use std::time::Duration;

use hyper::Version;
use hyper::header::{CONNECTION, HeaderMap, HeaderValue};
use tokio::sync::watch;

/// Which listeners drain; it only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Serving,
    /// The inbound listeners drain; outbound ones still accept.
    Inbound,
    /// Every listener drains.
    All,
}

impl Phase {
    /// Whether a listener (inbound or not) drains in this phase.
    pub fn covers(self, inbound: bool) -> bool {
        match self {
            Phase::Serving => false,
            Phase::Inbound => inbound,
            Phase::All => true,
        }
    }
}

/// Which listeners drain, and how many downstream connections are open.
#[derive(Debug)]
pub struct Drain {
    phase: watch::Sender<Phase>,
    open: watch::Sender<usize>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            phase: watch::channel(Phase::Serving).0,
            open: watch::channel(0).0,
        }
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Every downstream connection closed.
    Drained,
    /// The drain duration ran out with this many connections still open.
    Deadline { open: usize },
}

impl Drain {
    /// Drains every listener; true when this call changed anything.
    pub fn start(&self) -> bool {
        self.advance(Phase::All)
    }

    /// Drains the inbound listeners (unless all drain already); true when this changed anything.
    pub fn start_inbound(&self) -> bool {
        self.advance(Phase::Inbound)
    }

    /// Admin `/drain_listeners` with its query: `inboundonly` drains the inbound listeners
    /// only; `graceful` is accepted, but the listeners stop accepting at once.
    pub fn drain_listeners(&self, query: Option<&str>) {
        let inbound_only = query.is_some_and(|q| q.split('&').any(|p| p == "inboundonly"));
        if inbound_only {
            self.start_inbound();
        } else {
            self.start();
        }
    }

    fn advance(&self, to: Phase) -> bool {
        self.phase.send_if_modified(|p| {
            let forward = to > *p;
            if forward {
                *p = to;
            }
            forward
        })
    }

    /// Whether any listener drains (readiness turns 503).
    pub fn is_draining(&self) -> bool {
        *self.phase.borrow() != Phase::Serving
    }

    /// Whether a listener (inbound or not) drains now.
    pub fn covers(&self, inbound: bool) -> bool {
        self.phase.borrow().covers(inbound)
    }

    /// Resolves once a listener (inbound or not) drains (at once if it already does).
    pub async fn started(&self, inbound: bool) {
        let mut rx = self.phase.subscribe();
        // The sender lives as long as `self`: the wait ends only by draining.
        let _ = rx.wait_for(|p| p.covers(inbound)).await;
    }

    /// Counts one downstream connection until the guard is dropped.
    pub fn track(&self) -> Tracked<'_> {
        self.open.send_modify(|n| *n += 1);
        Tracked(self)
    }

    /// Downstream connections open now.
    pub fn open(&self) -> usize {
        *self.open.borrow()
    }

    /// Waits, once draining, until no downstream connection is open or `within` has passed.
    pub async fn finish(&self, within: Duration) -> Finished {
        let mut rx = self.open.subscribe();
        match tokio::time::timeout(within, rx.wait_for(|n| *n == 0)).await {
            Ok(_) => Finished::Drained,
            Err(_) => Finished::Deadline { open: self.open() },
        }
    }
}

/// One open downstream connection (see [`Drain::track`]).
#[derive(Debug)]
pub struct Tracked<'a>(&'a Drain);

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.0.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// While draining, an HTTP/1 response says `connection: close` so that the client opens
/// no further request on the connection (HTTP/2 gets a GOAWAY instead, from the connection).
pub fn close_if_draining(draining: bool, version: Version, headers: &mut HeaderMap) {
    if draining && version < Version::HTTP_2 {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Resolves on SIGTERM or SIGINT (registered when called, so call it early: before it,
/// the default action would kill the process without draining).
pub fn stop_signals() -> std::io::Result<impl Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_only_moves_forward() {
        let d = Drain::default();
        assert!(!d.is_draining());
        assert!(!d.covers(true) && !d.covers(false));
        assert!(d.start_inbound());
        assert!(d.is_draining());
        assert!(d.covers(true) && !d.covers(false));
        assert!(!d.start_inbound());
        assert!(d.start());
        assert!(d.covers(true) && d.covers(false));
        assert!(!d.start());
        // Never back to inbound only.
        assert!(!d.start_inbound());
        assert!(d.covers(false));
    }

    #[test]
    fn drain_listeners_reads_inboundonly() {
        let d = Drain::default();
        d.drain_listeners(Some("graceful&inboundonly"));
        assert!(d.covers(true) && !d.covers(false));
        d.drain_listeners(Some("graceful"));
        assert!(d.covers(false));
        let d = Drain::default();
        d.drain_listeners(None);
        assert!(d.covers(false));
    }

    #[test]
    fn connections_are_counted_until_dropped() {
        let d = Drain::default();
        let a = d.track();
        let b = d.track();
        assert_eq!(d.open(), 2);
        drop(a);
        assert_eq!(d.open(), 1);
        drop(b);
        assert_eq!(d.open(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn finish_waits_for_the_last_connection() {
        let d = std::sync::Arc::new(Drain::default());
        assert_eq!(d.finish(Duration::from_secs(5)).await, Finished::Drained);
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (counted, is_counted) = tokio::sync::oneshot::channel::<()>();
        let held = d.clone();
        let connection = tokio::spawn(async move {
            let _t = held.track();
            let _ = counted.send(());
            let _ = released.await;
        });
        is_counted.await.unwrap();
        d.start();
        let finishing = {
            let d = d.clone();
            tokio::spawn(async move { d.finish(Duration::from_secs(3600)).await })
        };
        tokio::task::yield_now().await;
        assert!(!finishing.is_finished());
        release.send(()).unwrap();
        connection.await.unwrap();
        assert_eq!(finishing.await.unwrap(), Finished::Drained);
    }

    #[tokio::test(start_paused = true)]
    async fn finish_gives_up_at_the_deadline() {
        let d = Drain::default();
        let _held = d.track();
        d.start();
        assert_eq!(
            d.finish(Duration::from_secs(5)).await,
            Finished::Deadline { open: 1 }
        );
    }

    #[tokio::test]
    async fn started_resolves_on_drain() {
        let d = std::sync::Arc::new(Drain::default());
        let waiting = {
            let d = d.clone();
            tokio::spawn(async move { d.started(false).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        d.start_inbound();
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "an outbound listener waits for a full drain"
        );
        d.start();
        waiting.await.unwrap();
        // Already draining: at once.
        d.started(true).await;
    }

    #[test]
    fn http1_responses_close_only_while_draining() {
        let mut h = HeaderMap::new();
        close_if_draining(false, Version::HTTP_11, &mut h);
        assert!(h.get(CONNECTION).is_none());
        close_if_draining(true, Version::HTTP_2, &mut h);
        assert!(h.get(CONNECTION).is_none());
        close_if_draining(true, Version::HTTP_11, &mut h);
        assert_eq!(h.get(CONNECTION).unwrap(), "close");
        let mut h10 = HeaderMap::new();
        close_if_draining(true, Version::HTTP_10, &mut h10);
        assert_eq!(h10.get(CONNECTION).unwrap(), "close");
    }
}
