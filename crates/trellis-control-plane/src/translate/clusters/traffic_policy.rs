//! Which parts of a DestinationRule's traffic policy apply to one cluster, Istio's way:
//! a matching `portLevelSettings` entry replaces the policy wholesale (fields it omits fall
//! back to defaults, they are not inherited); a subset's policy then overrides the
//! destination-level one field by field (wholesale again when the subset has port-level
//! settings for the port).

use trellis_api::istio::networking::{
    ClientTlsSettings, ConnectionPoolSettings, LoadBalancerSettings, OutlierDetection,
    TrafficPolicy,
};

/// The parts of a traffic policy that shape one cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub load_balancer: Option<LoadBalancerSettings>,
    pub connection_pool: Option<ConnectionPoolSettings>,
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTlsSettings>,
}

/// The policy for `port` of a destination, given the rule's top-level policy and the
/// subset's policy (if the cluster is a subset's).
pub fn effective(top: Option<&TrafficPolicy>, subset: Option<&TrafficPolicy>, port: u32) -> Policy {
    let (base, _) = at_port(top, port);
    let Some(subset) = subset else {
        return base;
    };
    let (over, port_level) = at_port(Some(subset), port);
    let pick = |o: bool| o || port_level;
    Policy {
        load_balancer: if pick(over.load_balancer.is_some()) {
            over.load_balancer
        } else {
            base.load_balancer
        },
        connection_pool: if pick(over.connection_pool.is_some()) {
            over.connection_pool
        } else {
            base.connection_pool
        },
        outlier_detection: if pick(over.outlier_detection.is_some()) {
            over.outlier_detection
        } else {
            base.outlier_detection
        },
        tls: if pick(over.tls.is_some()) {
            over.tls
        } else {
            base.tls
        },
    }
}

/// The policy as it applies to `port`, and whether a port-level entry decided it.
fn at_port(policy: Option<&TrafficPolicy>, port: u32) -> (Policy, bool) {
    let Some(policy) = policy else {
        return (Policy::default(), false);
    };
    let port_level = policy
        .port_level_settings
        .iter()
        .find(|p| p.port.as_ref().is_some_and(|s| s.number == port));
    match port_level {
        Some(p) => (
            Policy {
                load_balancer: p.load_balancer.clone(),
                connection_pool: p.connection_pool.clone(),
                outlier_detection: p.outlier_detection.clone(),
                tls: p.tls.clone(),
            },
            true,
        ),
        None => (
            Policy {
                load_balancer: policy.load_balancer.clone(),
                connection_pool: policy.connection_pool.clone(),
                outlier_detection: policy.outlier_detection.clone(),
                tls: policy.tls.clone(),
            },
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use trellis_api::istio::networking::{
        LoadBalancerSettingsSimpleLb as Simple, OutlierDetection, PortSelector,
        TrafficPolicyPortTrafficPolicy,
    };

    use super::*;

    fn lb(simple: Simple) -> Option<LoadBalancerSettings> {
        Some(LoadBalancerSettings {
            simple: Some(simple),
            ..Default::default()
        })
    }

    fn top() -> TrafficPolicy {
        TrafficPolicy {
            load_balancer: lb(Simple::Random),
            outlier_detection: Some(OutlierDetection {
                consecutive_5xx_errors: Some(7),
                ..Default::default()
            }),
            port_level_settings: vec![TrafficPolicyPortTrafficPolicy {
                port: Some(PortSelector { number: 80 }),
                load_balancer: lb(Simple::RoundRobin),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn port_level_settings_replace_the_whole_policy() {
        let p = effective(Some(&top()), None, 80);
        assert_eq!(p.load_balancer, lb(Simple::RoundRobin));
        assert_eq!(
            p.outlier_detection, None,
            "not inherited from the top level"
        );
        let p = effective(Some(&top()), None, 9080);
        assert_eq!(p.load_balancer, lb(Simple::Random));
        assert!(p.outlier_detection.is_some());
    }

    #[test]
    fn subset_policy_overrides_field_by_field() {
        let subset = TrafficPolicy {
            load_balancer: lb(Simple::LeastRequest),
            ..Default::default()
        };
        let p = effective(Some(&top()), Some(&subset), 9080);
        assert_eq!(p.load_balancer, lb(Simple::LeastRequest));
        assert!(p.outlier_detection.is_some(), "kept from the top level");
    }

    #[test]
    fn subset_port_level_settings_replace_everything() {
        let subset = TrafficPolicy {
            port_level_settings: vec![TrafficPolicyPortTrafficPolicy {
                port: Some(PortSelector { number: 9080 }),
                load_balancer: lb(Simple::Passthrough),
                ..Default::default()
            }],
            ..Default::default()
        };
        let p = effective(Some(&top()), Some(&subset), 9080);
        assert_eq!(p.load_balancer, lb(Simple::Passthrough));
        assert_eq!(p.outlier_detection, None);
    }
}
