//! CDS: one cluster per visible service port (`outbound|port||host`) and per DestinationRule
//! subset (`outbound|port|subset|host`), shaped by the rule's traffic policy; the inbound
//! clusters of the proxy's own workload (`inbound|port||`); and Istio's passthrough /
//! black-hole clusters.
//!
//! Each concept has its own module: [`traffic_policy`] (which policy applies to a cluster),
//! [`load_balancer`], [`connection_pool`], [`outlier`], [`tls`], [`inbound`]. Discovery
//! follows the service's resolution: registry endpoints over EDS (Kubernetes, STATIC),
//! STRICT_DNS (DNS) or LOGICAL_DNS (DNS_ROUND_ROBIN) with the endpoints inline, and
//! ORIGINAL_DST (NONE).

pub mod connection_pool;
pub mod inbound;
pub mod load_balancer;
pub mod outlier;
pub mod tls;
pub mod traffic_policy;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, DnsLookupFamily, EdsClusterConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, BindConfig, ConfigSource, Http1ProtocolOptions,
    Http2ProtocolOptions,
};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::route_action::HashPolicy;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::explicit_http_config::ProtocolConfig;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions,
};
use envoy_types::util::pack_any;
use trellis_api::istio::mesh::MeshConfigH2UpgradePolicy;
use trellis_api::istio::networking::{
    ConnectionPoolSettingsHttpSettingsH2UpgradePolicy as H2Upgrade, DestinationRule, Subset,
};

use super::endpoints;
use super::mtls::upstream::Destination;
use super::names;
use super::scope::Scope;
use crate::mesh::MeshSnapshot;
use crate::protocol::Protocol;
use crate::proxy::{ProxyKind, ProxyNode};
use crate::registry::{Resolution, Service, ServicePort};

/// Istio's default connect timeout when the mesh config sets none.
const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The key of upstream HTTP options in `typed_extension_protocol_options`.
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
/// The source address Istio's sidecar uses for inbound passthrough connections.
const INBOUND_PASSTHROUGH_BIND: &str = "127.0.0.6";

/// All clusters for a proxy, sorted by name.
pub fn clusters(mesh: &MeshSnapshot, proxy: &ProxyNode, scope: &Scope<'_>) -> Vec<Cluster> {
    let mut out = Vec::new();
    for service in &scope.services {
        let rule = mesh
            .destination_rule(&service.hostname, &proxy.namespace, &service.namespace)
            .map(|(_, rule)| rule);
        for port in &service.ports {
            out.push(outbound(mesh, proxy, service, port, rule, None));
            for subset in rule.iter().flat_map(|r| &r.subsets) {
                out.push(outbound(mesh, proxy, service, port, rule, Some(subset)));
            }
        }
    }
    if proxy.kind == ProxyKind::Sidecar {
        for port in inbound::inbound_ports(mesh, proxy, scope) {
            out.push(inbound::cluster(mesh, &port));
        }
        out.push(inbound_passthrough(mesh));
    }
    out.push(passthrough(mesh, names::PASSTHROUGH_CLUSTER));
    out.push(blackhole());
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// The hash policies a route to `host` (subset `subset`, `""` for none; port `port`) must
/// carry for the DestinationRule's `consistentHash` to take effect — in Envoy the hash key
/// is chosen by the route, the ring by the cluster. Empty when the rule hashes nothing.
pub fn hash_policy_for(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    host: &str,
    subset: &str,
    port: u32,
) -> Vec<HashPolicy> {
    let service_ns = mesh
        .registry
        .service(host)
        .map(|s| s.namespace.as_str())
        .unwrap_or(proxy.namespace.as_str());
    let Some((_, rule)) = mesh.destination_rule(host, &proxy.namespace, service_ns) else {
        return Vec::new();
    };
    let subset_policy = rule
        .subsets
        .iter()
        .find(|s| !subset.is_empty() && s.name == subset)
        .and_then(|s| s.traffic_policy.as_ref());
    let policy = traffic_policy::effective(rule.traffic_policy.as_ref(), subset_policy, port);
    load_balancer::hash_policies(policy.load_balancer.as_ref())
}

/// The config source meaning "over the same ADS stream".
pub fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

/// A cluster under construction, with the upstream HTTP options that end up packed in
/// `typed_extension_protocol_options` (several policies contribute to them).
#[derive(Debug, Clone, Default)]
pub struct Building {
    pub cluster: Cluster,
    pub http: Option<HttpProtocolOptions>,
}

impl Building {
    pub fn new(name: String) -> Self {
        Building {
            cluster: Cluster {
                name,
                ..Default::default()
            },
            http: None,
        }
    }

    /// The upstream HTTP options, created on first use.
    pub fn http_options(&mut self) -> &mut HttpProtocolOptions {
        self.http.get_or_insert_with(HttpProtocolOptions::default)
    }

    /// Speak HTTP/2 upstream.
    pub fn set_http2(&mut self) {
        self.http_options().upstream_protocol_options = Some(
            UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            }),
        );
    }

    pub fn finish(mut self) -> Cluster {
        if let Some(mut http) = self.http.take() {
            // Envoy requires a protocol choice; options without one are HTTP/1.1 options.
            http.upstream_protocol_options.get_or_insert_with(|| {
                UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::HttpProtocolOptions(
                        Http1ProtocolOptions::default(),
                    )),
                })
            });
            self.cluster
                .typed_extension_protocol_options
                .insert(HTTP_PROTOCOL_OPTIONS.to_string(), pack_any(http));
        }
        self.cluster
    }
}

fn connect_timeout(mesh: &MeshSnapshot) -> std::time::Duration {
    mesh.mesh
        .connect_timeout
        .map(|d| d.to_std())
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
}

/// The cluster of one service port, or of one subset of it, for `proxy`.
pub fn outbound(
    mesh: &MeshSnapshot,
    proxy: &ProxyNode,
    service: &Service,
    port: &ServicePort,
    rule: Option<&DestinationRule>,
    subset: Option<&Subset>,
) -> Cluster {
    let subset_name = subset.map_or("", |s| s.name.as_str());
    let name = names::outbound_cluster(port.number, subset_name, &service.hostname);
    let mut b = Building::new(name);
    b.cluster.connect_timeout = Some(super::pb_duration(connect_timeout(mesh)));
    discovery(mesh, &mut b.cluster, service, port, subset);

    let policy = traffic_policy::effective(
        rule.and_then(|r| r.traffic_policy.as_ref()),
        subset.and_then(|s| s.traffic_policy.as_ref()),
        port.number,
    );
    let pool = policy.connection_pool.as_ref();
    let http2 = upgrades_to_h2(mesh, port.protocol, pool.and_then(|p| p.http.as_ref()));
    if http2 {
        b.set_http2();
    }
    connection_pool::apply(&mut b, pool, mesh.mesh.tcp_keepalive.as_ref());
    outlier::apply(&mut b, policy.outlier_detection.as_ref());
    load_balancer::apply(&mut b.cluster, policy.load_balancer.as_ref());
    let destination = Destination::of(mesh, proxy, service, port.number, subset_name);
    tls::apply(&mut b, policy.tls.as_ref(), http2, destination.as_ref());
    b.finish()
}

/// HTTP/2 upstream: always for http2/grpc ports; for HTTP/1 ports when the rule or the
/// mesh asks for an upgrade (`h2UpgradePolicy`), never with `useClientProtocol`.
fn upgrades_to_h2(
    mesh: &MeshSnapshot,
    protocol: Protocol,
    http: Option<&trellis_api::istio::networking::ConnectionPoolSettingsHttpSettings>,
) -> bool {
    if protocol.is_http2() {
        return !http.is_some_and(|h| h.use_client_protocol);
    }
    if let Some(h) = http {
        if h.use_client_protocol {
            return false;
        }
        match h.h2_upgrade_policy {
            H2Upgrade::Upgrade => return true,
            H2Upgrade::DoNotUpgrade => return false,
            H2Upgrade::Default => {}
        }
    }
    protocol.is_http() && mesh.mesh.h2_upgrade_policy == MeshConfigH2UpgradePolicy::Upgrade
}

/// Sets how the cluster finds its hosts, from the service's resolution.
fn discovery(
    mesh: &MeshSnapshot,
    cluster: &mut Cluster,
    service: &Service,
    port: &ServicePort,
    subset: Option<&Subset>,
) {
    let kind = |t: DiscoveryType| Some(ClusterDiscoveryType::Type(t as i32));
    match service.resolution {
        Resolution::Static => {
            cluster.cluster_discovery_type = kind(DiscoveryType::Eds);
            cluster.eds_cluster_config = Some(EdsClusterConfig {
                eds_config: Some(ads_config_source()),
                service_name: cluster.name.clone(),
            });
        }
        Resolution::Passthrough => {
            cluster.cluster_discovery_type = kind(DiscoveryType::OriginalDst);
            cluster.lb_policy = LbPolicy::ClusterProvided as i32;
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            let logical = service.resolution == Resolution::DnsRoundRobin;
            cluster.cluster_discovery_type = kind(if logical {
                DiscoveryType::LogicalDns
            } else {
                DiscoveryType::StrictDns
            });
            cluster.dns_lookup_family = DnsLookupFamily::V4Only as i32;
            let mut assignment = inline_assignment(mesh, &cluster.name, service, port, subset);
            if logical {
                // LOGICAL_DNS takes exactly one host: Istio uses the first endpoint.
                assignment.endpoints.truncate(1);
                for locality in &mut assignment.endpoints {
                    locality.lb_endpoints.truncate(1);
                }
            }
            cluster.load_assignment = Some(assignment);
        }
    }
}

fn inline_assignment(
    mesh: &MeshSnapshot,
    name: &str,
    service: &Service,
    port: &ServicePort,
    subset: Option<&Subset>,
) -> ClusterLoadAssignment {
    let labels = subset.map(|s| &s.labels);
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: endpoints::locality_endpoints(mesh, &service.hostname, port.number, labels),
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
        circuit_breakers: Some(
            envoy_types::pb::envoy::config::cluster::v3::CircuitBreakers {
                thresholds: vec![connection_pool::thresholds(None)],
                ..Default::default()
            },
        ),
        ..Default::default()
    }
}

/// Inbound traffic to undeclared ports goes to its original destination, from Istio's
/// inbound passthrough source address.
fn inbound_passthrough(mesh: &MeshSnapshot) -> Cluster {
    let mut cluster = passthrough(mesh, names::INBOUND_PASSTHROUGH_CLUSTER);
    cluster.upstream_bind_config = Some(BindConfig {
        source_address: match endpoints::socket_address(INBOUND_PASSTHROUGH_BIND, 0).address {
            Some(envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s)) => {
                Some(s)
            }
            _ => None,
        },
        ..Default::default()
    });
    cluster
}

fn blackhole() -> Cluster {
    Cluster {
        name: names::BLACKHOLE_CLUSTER.to_string(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
