//! `loadBalancer`: the cluster's LB policy (Istio's default LEAST_REQUEST when unset),
//! consistent hashing (RING_HASH / MAGLEV on the cluster; the hash key itself is a route
//! `hash_policy`, see [`hash_policies`]) and slow-start warmup.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbConfig, LbPolicy, LeastRequestLbConfig, MaglevLbConfig,
    RingHashLbConfig, RoundRobinLbConfig, SlowStartConfig,
};
use envoy_types::pb::envoy::config::route::v3::route_action::HashPolicy;
use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::{
    ConnectionProperties, Cookie, Header, PolicySpecifier, QueryParameter,
};
use envoy_types::pb::google::protobuf::UInt64Value;
use trellis_api::istio::networking::{
    LoadBalancerSettings, LoadBalancerSettingsConsistentHashLb,
    LoadBalancerSettingsSimpleLb as Simple,
};

use crate::translate::pb_duration;

/// Istio's ring size when `consistentHash` names no algorithm.
const DEFAULT_MINIMUM_RING_SIZE: u64 = 1024;

/// Sets the cluster's LB policy from `loadBalancer` (None = Istio's default).
pub fn apply(cluster: &mut Cluster, lb: Option<&LoadBalancerSettings>) {
    if cluster.lb_policy == LbPolicy::ClusterProvided as i32 {
        // ORIGINAL_DST clusters choose their host from the connection.
        return;
    }
    let simple = lb.and_then(|l| l.simple).unwrap_or(Simple::Unspecified);
    match simple {
        Simple::RoundRobin => {
            cluster.lb_policy = LbPolicy::RoundRobin as i32;
            cluster.lb_config = slow_start(lb).map(|s| {
                LbConfig::RoundRobinLbConfig(RoundRobinLbConfig {
                    slow_start_config: Some(s),
                })
            });
        }
        Simple::Random => cluster.lb_policy = LbPolicy::Random as i32,
        Simple::Passthrough => {
            cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(
                DiscoveryType::OriginalDst as i32,
            ));
            cluster.lb_policy = LbPolicy::ClusterProvided as i32;
            cluster.load_assignment = None;
            cluster.eds_cluster_config = None;
            return;
        }
        // LEAST_CONN is Istio's deprecated alias of LEAST_REQUEST, and unset means it too.
        Simple::LeastConn | Simple::LeastRequest | Simple::Unspecified => {
            cluster.lb_policy = LbPolicy::LeastRequest as i32;
            cluster.lb_config = slow_start(lb).map(|s| {
                LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
                    slow_start_config: Some(s),
                    ..Default::default()
                })
            });
        }
    }
    if let Some(hash) = lb.and_then(|l| l.consistent_hash.as_ref()) {
        apply_consistent_hash(cluster, hash);
    }
}

fn apply_consistent_hash(cluster: &mut Cluster, hash: &LoadBalancerSettingsConsistentHashLb) {
    if let Some(maglev) = &hash.maglev {
        cluster.lb_policy = LbPolicy::Maglev as i32;
        cluster.lb_config =
            (maglev.table_size != 0).then_some(LbConfig::MaglevLbConfig(MaglevLbConfig {
                table_size: Some(UInt64Value {
                    value: maglev.table_size,
                }),
            }));
        return;
    }
    let size = match &hash.ring_hash {
        Some(ring) if ring.minimum_ring_size != 0 => Some(ring.minimum_ring_size),
        Some(_) => None,
        None if hash.minimum_ring_size != 0 => Some(hash.minimum_ring_size),
        None => Some(DEFAULT_MINIMUM_RING_SIZE),
    };
    cluster.lb_policy = LbPolicy::RingHash as i32;
    cluster.lb_config = size.map(|value| {
        LbConfig::RingHashLbConfig(RingHashLbConfig {
            minimum_ring_size: Some(UInt64Value { value }),
            ..Default::default()
        })
    });
}

fn slow_start(lb: Option<&LoadBalancerSettings>) -> Option<SlowStartConfig> {
    let lb = lb?;
    if let Some(warmup) = &lb.warmup {
        return Some(SlowStartConfig {
            slow_start_window: warmup.duration.map(|d| pb_duration(d.to_std())),
            min_weight_percent: Some(envoy_types::pb::envoy::r#type::v3::Percent {
                value: warmup.minimum_percent.unwrap_or(10.0),
            }),
            ..Default::default()
        });
    }
    lb.warmup_duration_secs.map(|d| SlowStartConfig {
        slow_start_window: Some(pb_duration(d.to_std())),
        ..Default::default()
    })
}

/// The route hash policies for a `consistentHash` load balancer (empty otherwise).
pub fn hash_policies(lb: Option<&LoadBalancerSettings>) -> Vec<HashPolicy> {
    let Some(hash) = lb.and_then(|l| l.consistent_hash.as_ref()) else {
        return Vec::new();
    };
    let specifier = if let Some(name) = &hash.http_header_name {
        PolicySpecifier::Header(Header {
            header_name: name.clone(),
            ..Default::default()
        })
    } else if let Some(cookie) = &hash.http_cookie {
        PolicySpecifier::Cookie(Cookie {
            name: cookie.name.clone(),
            path: cookie.path.clone(),
            ttl: cookie.ttl.map(|d| pb_duration(d.to_std())),
            ..Default::default()
        })
    } else if hash.use_source_ip == Some(true) {
        PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true })
    } else if let Some(name) = &hash.http_query_parameter_name {
        PolicySpecifier::QueryParameter(QueryParameter { name: name.clone() })
    } else {
        return Vec::new();
    };
    vec![HashPolicy {
        policy_specifier: Some(specifier),
        ..Default::default()
    }]
}

#[cfg(test)]
mod tests {
    use trellis_api::istio::networking::{
        LoadBalancerSettingsConsistentHashLbHttpCookie, LoadBalancerSettingsConsistentHashLbMagLev,
    };

    use super::*;

    fn cluster() -> Cluster {
        Cluster {
            name: "c".into(),
            ..Default::default()
        }
    }

    fn simple(s: Simple) -> LoadBalancerSettings {
        LoadBalancerSettings {
            simple: Some(s),
            ..Default::default()
        }
    }

    #[test]
    fn simple_policies_and_istio_default() {
        let cases = [
            (None, LbPolicy::LeastRequest),
            (Some(simple(Simple::RoundRobin)), LbPolicy::RoundRobin),
            (Some(simple(Simple::Random)), LbPolicy::Random),
            (Some(simple(Simple::LeastConn)), LbPolicy::LeastRequest),
            (Some(simple(Simple::Passthrough)), LbPolicy::ClusterProvided),
        ];
        for (lb, want) in cases {
            let mut c = cluster();
            apply(&mut c, lb.as_ref());
            assert_eq!(c.lb_policy, want as i32, "{lb:?}");
        }
        let mut c = cluster();
        apply(&mut c, Some(&simple(Simple::Passthrough)));
        assert_eq!(
            c.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(
                DiscoveryType::OriginalDst as i32
            ))
        );
    }

    #[test]
    fn consistent_hash_defaults_to_a_1024_ring() {
        let lb = LoadBalancerSettings {
            consistent_hash: Some(LoadBalancerSettingsConsistentHashLb {
                http_header_name: Some("x-user".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut c = cluster();
        apply(&mut c, Some(&lb));
        assert_eq!(c.lb_policy, LbPolicy::RingHash as i32);
        assert!(matches!(
            c.lb_config,
            Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
                minimum_ring_size: Some(UInt64Value { value: 1024 }),
                ..
            }))
        ));
        let policies = hash_policies(Some(&lb));
        assert!(matches!(
            &policies[0].policy_specifier,
            Some(PolicySpecifier::Header(h)) if h.header_name == "x-user"
        ));
    }

    #[test]
    fn maglev_and_cookie() {
        let lb = LoadBalancerSettings {
            consistent_hash: Some(LoadBalancerSettingsConsistentHashLb {
                http_cookie: Some(LoadBalancerSettingsConsistentHashLbHttpCookie {
                    name: "user".into(),
                    ttl: Some(trellis_api::Duration::from_secs(10)),
                    ..Default::default()
                }),
                maglev: Some(LoadBalancerSettingsConsistentHashLbMagLev { table_size: 65537 }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut c = cluster();
        apply(&mut c, Some(&lb));
        assert_eq!(c.lb_policy, LbPolicy::Maglev as i32);
        let policies = hash_policies(Some(&lb));
        assert!(matches!(
            &policies[0].policy_specifier,
            Some(PolicySpecifier::Cookie(c)) if c.name == "user" && c.ttl.as_ref().is_some_and(|t| t.seconds == 10)
        ));
        assert!(hash_policies(Some(&simple(Simple::Random))).is_empty());
    }
}
