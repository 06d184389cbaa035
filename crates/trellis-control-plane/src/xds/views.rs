//! One translation per view and update: connections whose proxies have equal
//! [`ViewKey`]s share one [`ProxyResources`] (and so one encoding of each resource), the
//! first connection to need a view translates it and the others wait for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::OnceCell;

use super::push::{self, Plan, PushScope};
use super::resources::{Pool, ProxyResources};
use crate::mesh::MeshSnapshot;
use crate::proxy::ProxyNode;
use crate::translate::view::{ViewInputs, ViewKey};

/// A view's resources for one update, and how they were made (`full`, `eds`, `skipped`).
#[derive(Debug, Clone)]
pub struct ViewResources {
    pub resources: Arc<ProxyResources>,
    pub plan: &'static str,
}

type Cell = Arc<OnceCell<ViewResources>>;

/// The views of one mesh update.
#[derive(Debug, Default)]
pub struct Views {
    inputs: OnceLock<ViewInputs>,
    cells: Mutex<HashMap<ViewKey, Cell>>,
    pool: Arc<Pool>,
}

impl Views {
    /// The views of the update after the one `previous` belongs to; resources equal to
    /// ones still held are shared with them.
    pub fn after(previous: Option<&Views>) -> Views {
        Views {
            pool: previous.map(|v| v.pool.clone()).unwrap_or_default(),
            ..Views::default()
        }
    }

    /// The view of `proxy` in `mesh`.
    pub fn key(&self, mesh: &MeshSnapshot, proxy: &ProxyNode) -> ViewKey {
        ViewKey::of(self.inputs.get_or_init(|| ViewInputs::of(mesh)), proxy)
    }

    /// The resources of `proxy`'s view in `mesh`: shared when another connection already
    /// made them, else brought up to date from `current` (this connection's resources for
    /// the update before, when `scope` describes the step from it) or translated.
    pub async fn resources(
        &self,
        mesh: &MeshSnapshot,
        proxy: &ProxyNode,
        current: Option<(&Arc<ProxyResources>, &PushScope)>,
    ) -> ViewResources {
        let cell = {
            let key = self.key(mesh, proxy);
            let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
            cells.entry(key).or_default().clone()
        };
        cell.get_or_init(|| async {
            let scope = current.map_or(&PushScope::Full, |(_, s)| s);
            let empty = Arc::default();
            let current = current.map_or(&empty, |(c, _)| c);
            let plan = push::plan(mesh, proxy, current, scope, &self.pool);
            let label = plan.label();
            let resources = match plan {
                Plan::Skip => current.clone(),
                Plan::Full(r) | Plan::Endpoints(r) => r,
            };
            ViewResources {
                resources,
                plan: label,
            }
        })
        .await
        .clone()
    }
}

#[cfg(test)]
mod tests;
