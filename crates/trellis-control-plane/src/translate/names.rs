//! Istio's names for Envoy resources, so that operators' habits and tools carry over.

/// Cluster for traffic to destinations outside the registry when ALLOW_ANY.
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
/// Cluster that drops traffic (REGISTRY_ONLY, unknown destinations).
pub const BLACKHOLE_CLUSTER: &str = "BlackHoleCluster";
/// Cluster for inbound traffic to ports the workload did not declare.
pub const INBOUND_PASSTHROUGH_CLUSTER: &str = "InboundPassthroughCluster";
/// The outbound capture listener (port 15001).
pub const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
/// The inbound capture listener (port 15006).
pub const VIRTUAL_INBOUND: &str = "virtualInbound";
pub const OUTBOUND_CAPTURE_PORT: u32 = 15001;
pub const INBOUND_CAPTURE_PORT: u32 = 15006;

/// `outbound|9080|v1|reviews.default.svc.cluster.local` (subset may be empty).
pub fn outbound_cluster(port: u32, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// `inbound|9080||`.
pub fn inbound_cluster(port: u32) -> String {
    format!("inbound|{port}||")
}

/// `0.0.0.0_9080`, `240.240.1.2_3306`.
pub fn listener(address: &str, port: u32) -> String {
    format!("{address}_{port}")
}

/// The route configuration serving HTTP on an outbound port: `9080`.
pub fn outbound_route(port: u32) -> String {
    port.to_string()
}

/// Parses `outbound|port|subset|host` back into its parts.
pub fn parse_outbound_cluster(name: &str) -> Option<(u32, &str, &str)> {
    let mut parts = name.splitn(4, '|');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("outbound"), Some(port), Some(subset), Some(host)) => {
            Some((port.parse().ok()?, subset, host))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_round_trip() {
        let name = outbound_cluster(9080, "v1", "reviews.default.svc.cluster.local");
        assert_eq!(name, "outbound|9080|v1|reviews.default.svc.cluster.local");
        assert_eq!(
            parse_outbound_cluster(&name),
            Some((9080, "v1", "reviews.default.svc.cluster.local"))
        );
        assert_eq!(inbound_cluster(9080), "inbound|9080||");
        assert_eq!(parse_outbound_cluster("inbound|9080||"), None);
    }
}
