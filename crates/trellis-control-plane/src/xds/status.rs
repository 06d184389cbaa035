//! What every connected proxy has been sent and has accepted, per type: the data behind
//! `/debug/syncz` and `trellis proxy-status`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use super::resources::XdsType;
use super::state::TypeStatus;
use crate::proxy::ProxyNode;

/// One proxy connection.
#[derive(Debug, Clone, Serialize)]
pub struct ProxySync {
    pub proxy: String,
    /// Who it is, for translating on demand (`/debug/config_dump`).
    #[serde(skip)]
    pub node: Arc<ProxyNode>,
    /// `sotw` or `delta`.
    pub variant: &'static str,
    /// The mesh generation last translated for it.
    pub generation: u64,
    /// By Istio's short type names (`cds`, `eds`, `lds`, `rds`).
    pub types: BTreeMap<&'static str, TypeStatus>,
}

/// The sync status of all connections, keyed by connection number.
#[derive(Debug, Clone, Default)]
pub struct SyncStatus(Arc<Mutex<BTreeMap<u64, ProxySync>>>);

impl SyncStatus {
    /// Records the state of a connection.
    pub fn update(
        &self,
        connection: u64,
        proxy: &Arc<ProxyNode>,
        variant: &'static str,
        generation: u64,
        types: BTreeMap<XdsType, TypeStatus>,
    ) {
        let entry = ProxySync {
            proxy: proxy.id.clone(),
            node: proxy.clone(),
            variant,
            generation,
            types: types.into_iter().map(|(t, s)| (t.short(), s)).collect(),
        };
        self.lock().insert(connection, entry);
    }

    pub fn remove(&self, connection: u64) {
        self.lock().remove(&connection);
    }

    /// The node of a connected proxy, by its id, `name.namespace` or name (the first
    /// connection that matches).
    pub fn find(&self, wanted: &str) -> Option<Arc<ProxyNode>> {
        let all = self.lock();
        let named = |n: &ProxyNode| {
            n.id == wanted
                || format!("{}.{}", n.workload_name, n.namespace) == wanted
                || n.workload_name == wanted
        };
        all.values().map(|s| &s.node).find(|n| named(n)).cloned()
    }

    /// All connections, in connection order.
    pub fn snapshot(&self) -> Vec<ProxySync> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, ProxySync>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
