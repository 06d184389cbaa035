//! The CA's Prometheus metrics, under istiod's (Citadel's) names so that dashboards carry
//! over: CSRs received, certificates issued, and the refusals by cause.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters of `CreateCertificate` outcomes.
#[derive(Debug, Clone, Default)]
pub struct CaMetrics {
    pub csrs: Counter,
    pub issued: Counter,
    pub authentication_failures: Counter,
    pub csr_errors: Counter,
    pub permission_denied: Counter,
    /// When the signing root expires, Unix seconds.
    pub root_expiry: Gauge,
}

impl CaMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = CaMetrics::default();
        for (name, help, counter) in [
            ("citadel_server_csr_count", "CSRs received", &metrics.csrs),
            (
                "citadel_server_success_cert_issuance_count",
                "Certificates issued",
                &metrics.issued,
            ),
            (
                "citadel_server_authentication_failure_count",
                "Requests refused for want of a valid credential",
                &metrics.authentication_failures,
            ),
            (
                "citadel_server_csr_parsing_err_count",
                "CSRs refused as malformed or badly signed",
                &metrics.csr_errors,
            ),
            (
                "citadel_server_id_extraction_err_count",
                "CSRs refused for naming an identity other than the caller's",
                &metrics.permission_denied,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "citadel_server_root_cert_expiry_timestamp",
            "When the root certificate expires (Unix seconds)",
            metrics.root_expiry.clone(),
        );
        metrics
    }
}
