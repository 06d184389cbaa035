//! xDS resource types as the ADS server handles them: the type URLs in the order Envoy
//! needs them (CDS before EDS, LDS before RDS; Istio's NDS name table last, for DNS
//! proxies that ask for it), and one proxy's translated resources indexed by type and name.
//!
//! Resources are kept typed, not as encoded bytes: protobuf maps encode in arbitrary order,
//! so two encodings of the same resource may differ, while typed equality does not.

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use prost::Message;
use trellis_dns::nds::{self, NameTable};

use crate::translate::Resources;

/// The xDS types the server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum XdsType {
    Cluster,
    Endpoint,
    Listener,
    Route,
    NameTable,
}

impl XdsType {
    /// Push order: a cluster exists before its endpoints, a listener before its routes.
    pub const ORDER: [XdsType; 5] = [
        XdsType::Cluster,
        XdsType::Endpoint,
        XdsType::Listener,
        XdsType::Route,
        XdsType::NameTable,
    ];

    pub fn url(self) -> &'static str {
        match self {
            XdsType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            XdsType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            XdsType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            XdsType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            XdsType::NameTable => nds::TYPE_URL,
        }
    }

    pub fn from_url(url: &str) -> Option<XdsType> {
        XdsType::ORDER.into_iter().find(|t| t.url() == url)
    }

    /// Istio's short names, used in metrics and `/debug/syncz`.
    pub fn short(self) -> &'static str {
        match self {
            XdsType::Cluster => "cds",
            XdsType::Endpoint => "eds",
            XdsType::Listener => "lds",
            XdsType::Route => "rds",
            XdsType::NameTable => "nds",
        }
    }

    /// Clusters, listeners and the name table are requested by wildcard; endpoints and
    /// routes by name.
    pub fn is_wildcard(self) -> bool {
        matches!(
            self,
            XdsType::Cluster | XdsType::Listener | XdsType::NameTable
        )
    }
}

/// One typed resource. Always held in an `Arc`, so the size of its variants does not
/// matter.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum XdsResource {
    Cluster(Cluster),
    Endpoint(ClusterLoadAssignment),
    Listener(Listener),
    Route(RouteConfiguration),
    /// Unnamed, as istiod sends it.
    NameTable(NameTable),
}

impl XdsResource {
    pub fn name(&self) -> &str {
        match self {
            XdsResource::Cluster(c) => &c.name,
            XdsResource::Endpoint(e) => &e.cluster_name,
            XdsResource::Listener(l) => &l.name,
            XdsResource::Route(r) => &r.name,
            XdsResource::NameTable(_) => "",
        }
    }

    pub fn to_any(&self) -> Any {
        match self {
            XdsResource::Cluster(c) => pack_any(c.clone()),
            XdsResource::Endpoint(e) => pack_any(e.clone()),
            XdsResource::Listener(l) => pack_any(l.clone()),
            XdsResource::Route(r) => pack_any(r.clone()),
            XdsResource::NameTable(t) => Any {
                type_url: nds::TYPE_URL.to_string(),
                value: t.encode_to_vec(),
            },
        }
    }

    /// A version string for delta xDS. It is a digest of the encoding, which is stable for
    /// resources without protobuf maps; a spurious difference costs only a resend.
    pub fn version(&self) -> String {
        let bytes = match self {
            XdsResource::Cluster(c) => c.encode_to_vec(),
            XdsResource::Endpoint(e) => e.encode_to_vec(),
            XdsResource::Listener(l) => l.encode_to_vec(),
            XdsResource::Route(r) => r.encode_to_vec(),
            XdsResource::NameTable(t) => t.encode_to_vec(),
        };
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }
}

/// One type's resources by name.
pub type TypeSet = BTreeMap<String, Arc<XdsResource>>;

/// A proxy's resources, by type and name. Each type is shared, so an update that
/// changes only endpoints shares the proxy's clusters, listeners and routes with the
/// resources before it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyResources {
    clusters: Arc<TypeSet>,
    endpoints: Arc<TypeSet>,
    listeners: Arc<TypeSet>,
    routes: Arc<TypeSet>,
    name_tables: Arc<TypeSet>,
}

impl ProxyResources {
    pub fn of_type(&self, t: XdsType) -> &TypeSet {
        match t {
            XdsType::Cluster => &self.clusters,
            XdsType::Endpoint => &self.endpoints,
            XdsType::Listener => &self.listeners,
            XdsType::Route => &self.routes,
            XdsType::NameTable => &self.name_tables,
        }
    }

    /// The same resources with other endpoints.
    pub fn with_endpoints(&self, endpoints: TypeSet) -> ProxyResources {
        ProxyResources {
            endpoints: Arc::new(endpoints),
            ..self.clone()
        }
    }

    /// True when the two share the resources of type `t` (no comparison needed).
    pub fn shares(&self, other: &ProxyResources, t: XdsType) -> bool {
        let field = |r: &ProxyResources| match t {
            XdsType::Cluster => Arc::as_ptr(&r.clusters),
            XdsType::Endpoint => Arc::as_ptr(&r.endpoints),
            XdsType::Listener => Arc::as_ptr(&r.listeners),
            XdsType::Route => Arc::as_ptr(&r.routes),
            XdsType::NameTable => Arc::as_ptr(&r.name_tables),
        };
        field(self) == field(other)
    }
}

impl From<Resources> for ProxyResources {
    fn from(r: Resources) -> Self {
        fn index(items: impl Iterator<Item = XdsResource>) -> Arc<TypeSet> {
            Arc::new(items.map(|r| (r.name().to_string(), Arc::new(r))).collect())
        }
        ProxyResources {
            clusters: index(r.clusters.into_iter().map(XdsResource::Cluster)),
            endpoints: index(r.endpoints.into_iter().map(XdsResource::Endpoint)),
            listeners: index(r.listeners.into_iter().map(XdsResource::Listener)),
            routes: index(r.routes.into_iter().map(XdsResource::Route)),
            name_tables: index(r.name_table.into_iter().map(XdsResource::NameTable)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_urls_round_trip_in_push_order() {
        for t in XdsType::ORDER {
            assert_eq!(XdsType::from_url(t.url()), Some(t));
        }
        assert_eq!(XdsType::from_url("type.googleapis.com/nothing"), None);
        assert!(XdsType::Cluster < XdsType::Endpoint && XdsType::Listener < XdsType::Route);
    }
}
