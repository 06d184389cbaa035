//! Auto-registration: a connected sidecar is a [`Workload`] of the registry for as long as
//! it stays connected, plus a grace period (so a reconnect or a control-plane restart does
//! not make its endpoints flap). Every change is published on a `watch` channel, which
//! triggers a push.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::registry::Workload;

/// Istio keeps an auto-registered workload this long after its proxy disconnects.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

type Key = (String, String, IpAddr);

#[derive(Debug)]
struct Entry {
    workload: Workload,
    connections: usize,
    /// Bumped on every disconnect, so that only the last grace timer may remove it.
    epoch: u64,
}

#[derive(Debug)]
struct Inner {
    entries: BTreeMap<Key, Entry>,
    tx: watch::Sender<Arc<Vec<Workload>>>,
}

/// The registered workloads, shared by all connections.
#[derive(Debug, Clone)]
pub struct Registrations {
    inner: Arc<Mutex<Inner>>,
    grace: Duration,
}

impl Registrations {
    pub fn new(grace: Duration) -> Self {
        let (tx, _) = watch::channel(Arc::new(Vec::new()));
        Registrations {
            inner: Arc::new(Mutex::new(Inner {
                entries: BTreeMap::new(),
                tx,
            })),
            grace,
        }
    }

    /// The current workloads, updated on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Vec<Workload>>> {
        self.lock().tx.subscribe()
    }

    /// The workloads registered now.
    pub fn current(&self) -> Arc<Vec<Workload>> {
        self.lock().tx.borrow().clone()
    }

    /// Registers a workload for as long as the returned guard lives (plus the grace).
    pub fn register(&self, workload: Workload) -> Registration {
        let key = (
            workload.namespace.clone(),
            workload.name.clone(),
            workload.ip,
        );
        let mut inner = self.lock();
        let entry = inner.entries.entry(key.clone()).or_insert_with(|| Entry {
            workload: workload.clone(),
            connections: 0,
            epoch: 0,
        });
        entry.connections += 1;
        let changed = entry.workload != workload;
        entry.workload = workload;
        if changed || entry.connections == 1 {
            inner.publish();
        }
        Registration {
            owner: self.clone(),
            key: Some(key),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn release(&self, key: Key) {
        let epoch = {
            let mut inner = self.lock();
            let Some(entry) = inner.entries.get_mut(&key) else {
                return;
            };
            entry.connections = entry.connections.saturating_sub(1);
            if entry.connections > 0 {
                return;
            }
            entry.epoch += 1;
            entry.epoch
        };
        let owner = self.clone();
        let expire = move || {
            let mut inner = owner.lock();
            if inner
                .entries
                .get(&key)
                .is_some_and(|e| e.connections == 0 && e.epoch == epoch)
            {
                inner.entries.remove(&key);
                inner.publish();
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let grace = self.grace;
                handle.spawn(async move {
                    tokio::time::sleep(grace).await;
                    expire();
                });
            }
            Err(_) => expire(),
        }
    }
}

impl Inner {
    fn publish(&self) {
        let workloads: Vec<Workload> = self.entries.values().map(|e| e.workload.clone()).collect();
        self.tx.send_replace(Arc::new(workloads));
    }
}

/// Keeps a workload registered; dropping it starts the grace period.
#[derive(Debug)]
pub struct Registration {
    owner: Registrations,
    key: Option<Key>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.owner.release(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(ip: &str) -> Workload {
        Workload {
            name: "reviews-v1".into(),
            namespace: "default".into(),
            ip: ip.parse().unwrap(),
            labels: BTreeMap::from([("app".into(), "reviews".into())]),
            service_account: "default".into(),
            ports: BTreeMap::new(),
            istio_mtls: true,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn registered_while_connected_and_for_the_grace_period() {
        let reg = Registrations::new(Duration::from_secs(10));
        let mut rx = reg.subscribe();
        let first = reg.register(workload("10.0.0.1"));
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().len(), 1);
        // A second connection of the same workload (a reconnect) changes nothing.
        let second = reg.register(workload("10.0.0.1"));
        assert!(!rx.has_changed().unwrap());
        drop(first);
        drop(second);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_eq!(reg.current().len(), 1);
        // Reconnecting within the grace period keeps it; the old timer does nothing.
        let again = reg.register(workload("10.0.0.1"));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(reg.current().len(), 1);
        drop(again);
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(reg.current().is_empty());
        assert!(rx.has_changed().unwrap());
    }
}
