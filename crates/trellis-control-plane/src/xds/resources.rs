//! xDS resource types as the ADS server handles them: the type URLs in the order Envoy
//! needs them (CDS before EDS, LDS before RDS; Istio's NDS name table last, for DNS
//! proxies that ask for it), and one proxy's translated resources indexed by type and name.
//!
//! Resources are compared typed, not as encoded bytes: protobuf maps encode in arbitrary
//! order, so two encodings of the same resource may differ, while typed equality does not.
//! Each is encoded once, on first use, and the encoding is shared by every connection that
//! sends it ([`Cached`]); a [`Pool`] makes equal resources of different views and of
//! consecutive updates one shared value, so unchanged resources compare by pointer.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
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

    /// The resource as an encoded `google.protobuf.Any`.
    fn encode(&self) -> Bytes {
        fn any<M: Message + Name>(m: &M) -> Any {
            Any {
                type_url: M::type_url(),
                value: m.encode_to_vec(),
            }
        }
        let any = match self {
            XdsResource::Cluster(c) => any(c),
            XdsResource::Endpoint(e) => any(e),
            XdsResource::Listener(l) => any(l),
            XdsResource::Route(r) => any(r),
            XdsResource::NameTable(t) => Any {
                type_url: nds::TYPE_URL.to_string(),
                value: t.encode_to_vec(),
            },
        };
        Bytes::from(any.encode_to_vec())
    }
}

/// A resource with its encoding, made on first use and then shared: every response that
/// carries it refers to these bytes (see [`super::wire`]) instead of copying them.
#[derive(Debug)]
pub struct Cached {
    resource: XdsResource,
    encoded: OnceLock<Bytes>,
    version: OnceLock<String>,
}

impl Cached {
    pub fn new(resource: XdsResource) -> Cached {
        Cached {
            resource,
            encoded: OnceLock::new(),
            version: OnceLock::new(),
        }
    }

    /// The resource encoded as a `google.protobuf.Any`, as it goes on the wire.
    pub fn encoded(&self) -> &Bytes {
        self.encoded.get_or_init(|| self.resource.encode())
    }

    /// A version string for delta xDS: a digest of the encoding. Equal resources built
    /// apart may encode differently (protobuf maps); a spurious difference costs a resend.
    pub fn version(&self) -> &str {
        self.version.get_or_init(|| {
            let mut hasher = DefaultHasher::new();
            self.encoded().hash(&mut hasher);
            format!("{:016x}", hasher.finish())
        })
    }
}

impl Deref for Cached {
    type Target = XdsResource;
    fn deref(&self) -> &XdsResource {
        &self.resource
    }
}

impl PartialEq for Cached {
    fn eq(&self, other: &Cached) -> bool {
        std::ptr::eq(self, other) || self.resource == other.resource
    }
}

/// Makes equal resources one shared value, among the views of one update and across
/// updates: a resource equal to one some connection still holds is that one (unchanged
/// resources keep their identity and their encoding, and compare by pointer). It holds
/// resources weakly: what no connection holds any more is forgotten.
#[derive(Debug, Default)]
pub struct Pool(Mutex<Interned>);

#[derive(Debug, Default)]
struct Interned {
    by_name: HashMap<(XdsType, String), Vec<Weak<Cached>>>,
    /// Insertions since forgotten names were last swept out.
    inserted: usize,
}

impl Pool {
    /// The shared value equal to `resource`.
    pub fn intern(&self, t: XdsType, resource: XdsResource) -> Arc<Cached> {
        let key = (t, resource.name().to_string());
        let mut interned = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let known = interned.by_name.entry(key).or_default();
        known.retain(|w| w.strong_count() > 0);
        if let Some(found) = known
            .iter()
            .filter_map(Weak::upgrade)
            .find(|c| c.resource == resource)
        {
            return found;
        }
        let shared = Arc::new(Cached::new(resource));
        known.push(Arc::downgrade(&shared));
        interned.inserted += 1;
        if interned.inserted > interned.by_name.len() {
            interned.inserted = 0;
            interned.by_name.retain(|_, known| {
                known.retain(|w| w.strong_count() > 0);
                !known.is_empty()
            });
        }
        shared
    }
}

/// One type's resources by name.
pub type TypeSet = BTreeMap<String, Arc<Cached>>;

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
        self.type_set(t)
    }

    /// The shared set of the resources of type `t`.
    pub fn type_set(&self, t: XdsType) -> &Arc<TypeSet> {
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

    /// These resources with every type that equals `previous`'s taken from it, compared
    /// once per view so that each connection skips that type by pointer (an update that
    /// changes routes then leaves clusters, listeners and endpoints uncompared).
    pub fn sharing(mut self, previous: &ProxyResources) -> ProxyResources {
        for (mine, theirs) in [
            (&mut self.clusters, &previous.clusters),
            (&mut self.endpoints, &previous.endpoints),
            (&mut self.listeners, &previous.listeners),
            (&mut self.routes, &previous.routes),
            (&mut self.name_tables, &previous.name_tables),
        ] {
            if mine == theirs {
                *mine = theirs.clone();
            }
        }
        self
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

impl ProxyResources {
    /// Indexes translated resources, sharing equal ones through `pool`.
    pub fn interned(r: Resources, pool: &Pool) -> ProxyResources {
        let index = |t: XdsType, items: Vec<XdsResource>| {
            Arc::new(
                items
                    .into_iter()
                    .map(|r| (r.name().to_string(), pool.intern(t, r)))
                    .collect(),
            )
        };
        ProxyResources {
            clusters: index(
                XdsType::Cluster,
                r.clusters.into_iter().map(XdsResource::Cluster).collect(),
            ),
            endpoints: index(
                XdsType::Endpoint,
                r.endpoints.into_iter().map(XdsResource::Endpoint).collect(),
            ),
            listeners: index(
                XdsType::Listener,
                r.listeners.into_iter().map(XdsResource::Listener).collect(),
            ),
            routes: index(
                XdsType::Route,
                r.routes.into_iter().map(XdsResource::Route).collect(),
            ),
            name_tables: index(
                XdsType::NameTable,
                r.name_table
                    .into_iter()
                    .map(XdsResource::NameTable)
                    .collect(),
            ),
        }
    }
}

impl From<Resources> for ProxyResources {
    fn from(r: Resources) -> Self {
        ProxyResources::interned(r, &Pool::default())
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
