//! The resources the proxy holds, by type, and how a state-of-the-world response changes
//! them — without sockets. Each resource is converted on its own: a rejected one keeps its
//! last good version (or stays absent) and the rest apply, as Envoy does for LDS and CDS;
//! the rejections become the NACK's `error_detail`.
//!
//! Live state survives updates: a cluster whose pool settings did not change keeps its
//! runtime (pool, counters), and an endpoint that stays keeps its in-flight count.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener as PbListener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use crate::config::{Cluster, Discovery, Listener, Network, RouteConfig, RouteSource, Snapshot};
use crate::convert::{self, Rejection};
use crate::upstream::Host;

/// The four xDS types the proxy consumes, in the order Envoy subscribes to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum XdsType {
    Cluster,
    Endpoint,
    Listener,
    Route,
}

impl XdsType {
    pub const ALL: [XdsType; 4] = [Self::Cluster, Self::Endpoint, Self::Listener, Self::Route];

    pub fn type_url(self) -> String {
        match self {
            Self::Cluster => PbCluster::type_url(),
            Self::Endpoint => ClusterLoadAssignment::type_url(),
            Self::Listener => PbListener::type_url(),
            Self::Route => RouteConfiguration::type_url(),
        }
    }

    pub fn from_url(url: &str) -> Option<XdsType> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    pub fn short(self) -> &'static str {
        match self {
            Self::Cluster => "cds",
            Self::Endpoint => "eds",
            Self::Listener => "lds",
            Self::Route => "rds",
        }
    }

    /// Whether the proxy asks for every resource (a wildcard subscription).
    pub fn wildcard(self) -> bool {
        matches!(self, Self::Cluster | Self::Listener)
    }
}

#[derive(Debug, Default)]
pub struct XdsState {
    pub clusters: BTreeMap<String, Arc<Cluster>>,
    pub endpoints: BTreeMap<String, Arc<Vec<Arc<Host>>>>,
    pub listeners: BTreeMap<String, Arc<Listener>>,
    pub routes: BTreeMap<String, Arc<RouteConfig>>,
    /// The identity the clusters' pools originate TLS with.
    pub secrets: crate::tls::secrets::Secrets,
}

fn decode<T: Message + Default + Name>(any: &Any) -> Result<T, Rejection> {
    if any.type_url != T::type_url() {
        return Err(format!("unexpected resource type {}", any.type_url));
    }
    T::decode(any.value.as_slice()).map_err(|e| format!("{}: {e}", T::full_name()))
}

/// Applies a state-of-the-world set: what is absent goes, what fails keeps its old version.
fn apply_set<T>(
    map: &mut BTreeMap<String, Arc<T>>,
    converted: Vec<(Option<String>, Result<T, Rejection>)>,
    errors: &mut Vec<Rejection>,
    mut reuse: impl FnMut(Option<&Arc<T>>, T) -> T,
) {
    apply_into(map, BTreeMap::new(), converted, errors, &mut reuse);
}

/// For routes and endpoints (not wildcard types), a state-of-the-world response carries
/// the resources that changed; the others stay as they were.
fn merge_set<T>(
    map: &mut BTreeMap<String, Arc<T>>,
    converted: Vec<(Option<String>, Result<T, Rejection>)>,
    errors: &mut Vec<Rejection>,
    mut reuse: impl FnMut(Option<&Arc<T>>, T) -> T,
) {
    let kept = map.clone();
    apply_into(map, kept, converted, errors, &mut reuse);
}

fn apply_into<T>(
    map: &mut BTreeMap<String, Arc<T>>,
    mut next: BTreeMap<String, Arc<T>>,
    converted: Vec<(Option<String>, Result<T, Rejection>)>,
    errors: &mut Vec<Rejection>,
    reuse: &mut impl FnMut(Option<&Arc<T>>, T) -> T,
) {
    for (name, result) in converted {
        match (name, result) {
            (Some(name), Ok(value)) => {
                let value = reuse(map.get(&name), value);
                next.insert(name, Arc::new(value));
            }
            (name, Err(e)) => {
                if let Some(old) = name.as_ref().and_then(|n| map.get(n)) {
                    next.insert(name.clone().unwrap_or_default(), old.clone());
                }
                errors.push(e);
            }
            (None, Ok(_)) => {}
        }
    }
    *map = next;
}

impl XdsState {
    /// Applies one response; returns the rejections (empty: ACK).
    pub fn apply(&mut self, t: XdsType, resources: &[Any]) -> Vec<Rejection> {
        let mut errors = Vec::new();
        match t {
            XdsType::Cluster => {
                let converted = resources
                    .iter()
                    .map(|any| match decode::<PbCluster>(any) {
                        Ok(c) => (
                            Some(c.name.clone()),
                            convert::cluster::cluster(&c, &self.secrets),
                        ),
                        Err(e) => (None, Err(e)),
                    })
                    .collect();
                apply_set(
                    &mut self.clusters,
                    converted,
                    &mut errors,
                    |old, mut new| {
                        if let Some(old) = old
                            && old.runtime.settings == new.runtime.settings
                        {
                            new.runtime = old.runtime.clone();
                        }
                        new
                    },
                );
            }
            XdsType::Endpoint => {
                let converted = resources
                    .iter()
                    .map(|any| match decode::<ClusterLoadAssignment>(any) {
                        Ok(la) => {
                            let p = format!("endpoints {}", la.cluster_name);
                            (
                                Some(la.cluster_name.clone()),
                                convert::cluster::hosts(&la, &p),
                            )
                        }
                        Err(e) => (None, Err(e)),
                    })
                    .collect();
                merge_set(&mut self.endpoints, converted, &mut errors, |old, new| {
                    reuse_hosts(old.map(|o| o.as_slice()).unwrap_or_default(), new)
                });
            }
            XdsType::Listener => {
                let converted = resources
                    .iter()
                    .map(|any| match decode::<PbListener>(any) {
                        Ok(l) => (Some(l.name.clone()), convert::listener::listener(&l)),
                        Err(e) => (None, Err(e)),
                    })
                    .collect();
                apply_set(&mut self.listeners, converted, &mut errors, |_, new| new);
            }
            XdsType::Route => {
                let converted = resources
                    .iter()
                    .map(|any| match decode::<RouteConfiguration>(any) {
                        Ok(rc) => (
                            Some(rc.name.clone()),
                            convert::route::route_configuration(&rc),
                        ),
                        Err(e) => (None, Err(e)),
                    })
                    .collect();
                merge_set(&mut self.routes, converted, &mut errors, |_, new| new);
            }
        }
        self.forget_unwanted();
        errors
    }

    /// Drops the endpoints and routes no cluster or listener refers to any more.
    fn forget_unwanted(&mut self) {
        let endpoints = self.wanted(XdsType::Endpoint);
        self.endpoints.retain(|name, _| endpoints.contains(name));
        let routes = self.wanted(XdsType::Route);
        self.routes.retain(|name, _| routes.contains(name));
    }

    /// The names a non-wildcard type must ask for: EDS services of clusters, RDS names of
    /// listeners.
    pub fn wanted(&self, t: XdsType) -> BTreeSet<String> {
        match t {
            XdsType::Endpoint => self
                .clusters
                .values()
                .filter_map(|c| match &c.discovery {
                    Discovery::Eds(name) => Some(name.clone()),
                    _ => None,
                })
                .collect(),
            XdsType::Route => self
                .listeners
                .values()
                .flat_map(|l| l.all_chains())
                .filter_map(|c| match &c.network {
                    Network::Http(h) => match &h.route_config {
                        RouteSource::Rds(name) => Some(name.clone()),
                        RouteSource::Inline(_) => None,
                    },
                    Network::Tcp(_) => None,
                })
                .collect(),
            _ => BTreeSet::new(),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            listeners: self.listeners.clone(),
            routes: self.routes.clone(),
            clusters: self.clusters.clone(),
            endpoints: self.endpoints.clone(),
        }
    }
}

/// Keeps the `Host` (and its in-flight count) of endpoints that stay.
fn reuse_hosts(old: &[Arc<Host>], new: Vec<Arc<Host>>) -> Vec<Arc<Host>> {
    new.into_iter()
        .map(|h| {
            old.iter()
                .find(|o| o.address == h.address && o.weight == h.weight)
                .cloned()
                .unwrap_or(h)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType, EdsClusterConfig,
    };
    use envoy_types::pb::envoy::config::endpoint::v3::LocalityLbEndpoints;
    use envoy_types::util::pack_any;

    use super::*;

    fn eds_cluster(name: &str) -> Any {
        pack_any(PbCluster {
            name: name.to_string(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            eds_cluster_config: Some(EdsClusterConfig {
                service_name: name.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn assignment(name: &str) -> Any {
        pack_any(ClusterLoadAssignment {
            cluster_name: name.to_string(),
            endpoints: vec![LocalityLbEndpoints::default()],
            ..Default::default()
        })
    }

    #[test]
    fn endpoint_responses_update_only_what_they_carry() {
        let mut state = XdsState::default();
        assert!(
            state
                .apply(XdsType::Cluster, &[eds_cluster("a"), eds_cluster("b")])
                .is_empty()
        );
        assert!(
            state
                .apply(XdsType::Endpoint, &[assignment("a"), assignment("b")])
                .is_empty()
        );
        assert!(
            state
                .apply(XdsType::Endpoint, &[assignment("b")])
                .is_empty()
        );
        assert_eq!(state.endpoints.keys().collect::<Vec<_>>(), ["a", "b"]);
        // A cluster that goes away takes its endpoints with it.
        assert!(
            state
                .apply(XdsType::Cluster, &[eds_cluster("b")])
                .is_empty()
        );
        assert_eq!(state.endpoints.keys().collect::<Vec<_>>(), ["b"]);
    }
}
