//! The control plane's Prometheus metrics, under Istio's names so that dashboards carry
//! over: `pilot_xds` (connected proxies), `pilot_xds_pushes{type}`, `pilot_xds_push_time`,
//! `pilot_proxy_convergence_time`, `pilot_total_xds_rejects{type}`; and Trellis's own
//! push accounting: `trellis_mesh_update_scopes{scope}`, `trellis_proxy_pushes{kind}`,
//! `trellis_xds_resources_sent{type}`. Registered in a
//! registry passed in, never a global one.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

/// Metrics shared by every connection.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub connected: Gauge,
    pub pushes: Family<Labels, Counter>,
    pub rejects: Family<Labels, Counter>,
    pub push_time: Histogram,
    pub convergence_time: Histogram,
    pub mesh_updates: Counter,
    /// Mesh updates by what they changed (`full`, `namespace`, `eds`).
    pub update_scopes: Family<Labels, Counter>,
    /// Per proxy and update: `full` translation, `eds` only, or `skipped`.
    pub proxy_pushes: Family<Labels, Counter>,
    /// Resources in responses (removals included), by type.
    pub resources: Family<Labels, Counter>,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Metrics {
            connected: Gauge::default(),
            pushes: Family::default(),
            rejects: Family::default(),
            push_time: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            convergence_time: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            mesh_updates: Counter::default(),
            update_scopes: Family::default(),
            proxy_pushes: Family::default(),
            resources: Family::default(),
        };
        registry.register(
            "pilot_xds",
            "Number of proxies connected to this control plane",
            metrics.connected.clone(),
        );
        registry.register(
            "pilot_xds_pushes",
            "xDS responses sent, by type (cds, eds, lds, rds)",
            metrics.pushes.clone(),
        );
        registry.register(
            "pilot_total_xds_rejects",
            "xDS responses rejected by proxies (NACKs), by type",
            metrics.rejects.clone(),
        );
        registry.register(
            "pilot_xds_push_time",
            "Seconds to translate and send one push to one proxy",
            metrics.push_time.clone(),
        );
        registry.register(
            "pilot_proxy_convergence_time",
            "Seconds from the first change of a burst to a proxy being sent the result",
            metrics.convergence_time.clone(),
        );
        registry.register(
            "trellis_mesh_updates",
            "Mesh snapshots built (after debouncing)",
            metrics.mesh_updates.clone(),
        );
        registry.register(
            "trellis_mesh_update_scopes",
            "Mesh updates by what they changed (full, namespace, eds)",
            metrics.update_scopes.clone(),
        );
        registry.register(
            "trellis_proxy_pushes",
            "Per proxy and mesh update: full translation, eds only, or skipped",
            metrics.proxy_pushes.clone(),
        );
        registry.register(
            "trellis_xds_resources_sent",
            "Resources sent in xDS responses (removals included), by type",
            metrics.resources.clone(),
        );
        metrics
    }

    pub fn update_scope(&self, scope: &'static str) {
        self.update_scopes
            .get_or_create(&vec![("scope", scope)])
            .inc();
    }

    pub fn proxy_push(&self, kind: &'static str) {
        self.proxy_pushes.get_or_create(&vec![("kind", kind)]).inc();
    }

    pub fn resources_sent(&self, short_type: &'static str, count: usize) {
        self.resources
            .get_or_create(&vec![("type", short_type)])
            .inc_by(count as u64);
    }

    pub fn push(&self, short_type: &'static str) {
        self.pushes.get_or_create(&vec![("type", short_type)]).inc();
    }

    pub fn reject(&self, short_type: &'static str) {
        self.rejects
            .get_or_create(&vec![("type", short_type)])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_istio_names() {
        let mut registry = Registry::default();
        let m = Metrics::new(&mut registry);
        m.push("cds");
        m.reject("eds");
        m.connected.inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("pilot_xds_pushes_total{type=\"cds\"} 1"),
            "{text}"
        );
        assert!(text.contains("pilot_total_xds_rejects_total{type=\"eds\"} 1"));
        assert!(text.contains("pilot_xds 1"));
    }
}
