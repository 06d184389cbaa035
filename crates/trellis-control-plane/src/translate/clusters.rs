//! CDS: one cluster per visible service port (`outbound|port||host`), one per
//! DestinationRule subset (`outbound|port|subset|host`), the inbound clusters of the
//! proxy's own workload, and Istio's passthrough / black-hole clusters.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::{AggregatedConfigSource, ApiVersion, ConfigSource};

use super::names;
use super::scope::Scope;
use crate::mesh::MeshSnapshot;
use crate::proxy::ProxyNode;

/// Istio's default connect timeout when the mesh config sets none.
const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// All clusters for a proxy, sorted by name.
pub fn clusters(mesh: &MeshSnapshot, proxy: &ProxyNode, scope: &Scope<'_>) -> Vec<Cluster> {
    let mut out = Vec::new();
    for service in &scope.services {
        for port in &service.ports {
            let base = names::outbound_cluster(port.number, "", &service.hostname);
            out.push(eds_cluster(mesh, &base));
            if let Some((_, rule)) =
                mesh.destination_rule(&service.hostname, &proxy.namespace, &service.namespace)
            {
                for subset in &rule.subsets {
                    let name =
                        names::outbound_cluster(port.number, &subset.name, &service.hostname);
                    out.push(eds_cluster(mesh, &name));
                }
            }
        }
    }
    out.push(passthrough(mesh, names::PASSTHROUGH_CLUSTER));
    out.push(blackhole());
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// The config source meaning "over the same ADS stream".
pub fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

fn connect_timeout(mesh: &MeshSnapshot) -> std::time::Duration {
    mesh.mesh
        .connect_timeout
        .map(|d| d.to_std())
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
}

fn eds_cluster(mesh: &MeshSnapshot, name: &str) -> Cluster {
    Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: name.to_string(),
        }),
        connect_timeout: Some(super::pb_duration(connect_timeout(mesh))),
        lb_policy: LbPolicy::LeastRequest as i32,
        ..Default::default()
    }
}

fn passthrough(mesh: &MeshSnapshot, name: &str) -> Cluster {
    Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: LbPolicy::ClusterProvided as i32,
        connect_timeout: Some(super::pb_duration(connect_timeout(mesh))),
        ..Default::default()
    }
}

fn blackhole() -> Cluster {
    Cluster {
        name: names::BLACKHOLE_CLUSTER.to_string(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        ..Default::default()
    }
}
