//! Originating Istio mTLS from a client's outbound cluster.
//!
//! - `ISTIO_MUTUAL` in a DestinationRule: always the TLS socket — workload certificate,
//!   validation against the mesh root and the destination's identities (the rule's
//!   `subjectAltNames`, else the service accounts of the service's workloads and a
//!   ServiceEntry's `subjectAltNames`), SNI
//!   `outbound_.<port>_.<subset>_.<host>` unless the rule sets one, Istio's in-mesh ALPN.
//! - No `tls` in the rule and auto mTLS on (`enableAutoMtls`, default true): the same
//!   socket under `transport_socket_matches` for endpoints marked `tlsMode: istio` (their
//!   workload has a sidecar), plain text for the others. Not for services outside the mesh,
//!   nor for destinations whose namespace (or the mesh) disables mTLS by PeerAuthentication.
//!   A passthrough (headless) service gets the socket itself when every endpoint has a
//!   sidecar, plain text otherwise.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::util::pack_any;
use trellis_api::istio::networking::ClientTlsSettings;

use super::{Mode, TLS_MODE_ISTIO, TLS_MODE_KEY, mesh_tls_context, spiffe_id, trust_domain};
use crate::mesh::MeshSnapshot;
use crate::proxy::ProxyNode;
use crate::registry::{Resolution, Service};
use crate::translate::clusters::tls::{san_matchers, transport_socket};

/// Istio's ALPN for in-mesh clusters with metadata exchange: HTTP/1 or TCP ...
pub const ALPN_IN_MESH: [&str; 2] = ["istio-peer-exchange", "istio"];
/// ... and HTTP/2.
pub const ALPN_IN_MESH_H2: [&str; 3] = ["istio-peer-exchange", "istio", "h2"];
/// The name Envoy knows the plain-text transport socket by.
pub const RAW_BUFFER: &str = "envoy.transport_sockets.raw_buffer";

/// When a cluster without a TLS setting uses Istio mTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auto {
    /// Never: plain text.
    Off,
    /// For the endpoints marked `tlsMode: istio`.
    ByEndpoint,
    /// Always (a passthrough service whose endpoints all have sidecars).
    Always,
}

/// What a client needs to originate Istio mTLS to one cluster of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub sni: String,
    /// SPIFFE identities of the service's workloads and the ServiceEntry's
    /// `subjectAltNames`, sorted.
    pub identities: Vec<String>,
    pub auto: Auto,
}

impl Destination {
    /// The destination `outbound|port|subset|host` as seen from `proxy`; `None` when the
    /// proxy has no workload certificate to present (no SDS).
    pub fn of(
        mesh: &MeshSnapshot,
        proxy: &ProxyNode,
        service: &Service,
        port: u32,
        subset: &str,
    ) -> Option<Destination> {
        if !proxy.sds {
            return None;
        }
        let td = trust_domain(&mesh.mesh);
        let mut identities: Vec<String> = service
            .ports
            .iter()
            .flat_map(|p| mesh.registry.endpoints(&service.hostname, p.number))
            .filter(|e| !e.service_account.is_empty())
            .map(|e| spiffe_id(td, &e.namespace, &e.service_account))
            .chain(service.subject_alt_names.iter().cloned())
            .collect();
        identities.sort();
        identities.dedup();
        Some(Destination {
            sni: sni(port, subset, &service.hostname),
            identities,
            auto: auto_mode(mesh, service, port),
        })
    }

    /// The TLS context of `ISTIO_MUTUAL`, the rule's `sni` and `subjectAltNames` (when
    /// set) replacing the computed ones.
    pub fn context(&self, tls: Option<&ClientTlsSettings>, http2: bool) -> UpstreamTlsContext {
        let sans = match tls {
            Some(t) if !t.subject_alt_names.is_empty() => &t.subject_alt_names,
            _ => &self.identities,
        };
        let sni = match tls {
            Some(t) if !t.sni.is_empty() => t.sni.clone(),
            _ => self.sni.clone(),
        };
        let alpn: &[&str] = if http2 {
            &ALPN_IN_MESH_H2
        } else {
            &ALPN_IN_MESH
        };
        UpstreamTlsContext {
            common_tls_context: Some(mesh_tls_context(alpn, san_matchers(sans), Vec::new())),
            sni,
            ..Default::default()
        }
    }

    /// Auto mTLS for a cluster without a TLS setting.
    pub fn apply_auto(&self, cluster: &mut Cluster, http2: bool) {
        match self.auto {
            Auto::Off => {}
            Auto::Always => {
                cluster.transport_socket = Some(transport_socket(self.context(None, http2)))
            }
            Auto::ByEndpoint => {
                cluster.transport_socket_matches = vec![
                    TransportSocketMatch {
                        name: format!("tlsMode-{TLS_MODE_ISTIO}"),
                        r#match: Some(istio_tls_mode()),
                        transport_socket: Some(transport_socket(self.context(None, http2))),
                    },
                    TransportSocketMatch {
                        name: "tlsMode-disabled".to_string(),
                        r#match: Some(Struct::default()),
                        transport_socket: Some(raw_buffer()),
                    },
                ]
            }
        }
    }
}

/// Istio's SNI for mesh traffic to a cluster: `outbound_.9080_.v1_.reviews.ns.svc.cluster.local`.
pub fn sni(port: u32, subset: &str, host: &str) -> String {
    format!("outbound_.{port}_.{subset}_.{host}")
}

/// `{tlsMode: istio}`, the match (and endpoint metadata) of a sidecar'd endpoint.
pub fn istio_tls_mode() -> Struct {
    Struct {
        fields: [(
            TLS_MODE_KEY.to_string(),
            Value {
                kind: Some(Kind::StringValue(TLS_MODE_ISTIO.to_string())),
            },
        )]
        .into(),
    }
}

/// The plain-text transport socket.
pub fn raw_buffer() -> TransportSocket {
    TransportSocket {
        name: RAW_BUFFER.to_string(),
        config_type: Some(ConfigType::TypedConfig(pack_any(RawBuffer::default()))),
    }
}

/// Istio's inference of whether a destination accepts mTLS.
fn auto_mode(mesh: &MeshSnapshot, service: &Service, port: u32) -> Auto {
    if !mesh.mesh.enable_auto_mtls.unwrap_or(true) || service.mesh_external {
        return Auto::Off;
    }
    if mesh.peer_authentications.namespace_mode(&service.namespace) == Mode::Disable {
        return Auto::Off;
    }
    if service.resolution == Resolution::Passthrough {
        let endpoints = mesh.registry.endpoints(&service.hostname, port);
        return if !endpoints.is_empty() && endpoints.iter().all(|e| e.has_sidecar) {
            Auto::Always
        } else {
            Auto::Off
        };
    }
    Auto::ByEndpoint
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::testing::snapshot;
    use crate::translate::endpoints::load_assignment;
    use crate::translate::mtls::TRANSPORT_SOCKET_MATCH;

    const MESH: &str = "
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1, namespace: shop}
spec: {address: 10.0.0.1, serviceAccount: ratings, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-vm, namespace: shop}
spec: {address: 10.0.0.2, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.internal]
  subjectAltNames: [spiffe://cluster.local/ns/data/sa/postgres]
  location: MESH_INTERNAL
  resolution: NONE
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: shop}
spec: {address: 10.0.0.3, labels: {app: db, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: v1
kind: Service
metadata: {name: old, namespace: legacy}
spec:
  selector: {app: old}
  ports: [{name: http, port: 8080}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: legacy}
spec: {mtls: {mode: DISABLE}}
";

    fn mesh() -> MeshSnapshot {
        MeshSnapshot::new(snapshot(MESH), &[], Arc::new(Default::default()))
    }

    fn client(sds: bool) -> ProxyNode {
        let id = ProxyNode::node_id(crate::proxy::ProxyKind::Sidecar, "10.0.0.9", "c", "shop");
        let metadata: BTreeMap<String, String> = if sds {
            [("SDS".to_string(), "true".to_string())].into()
        } else {
            BTreeMap::new()
        };
        ProxyNode::from_parts(&id, &metadata, BTreeMap::new()).unwrap()
    }

    fn destination(mesh: &MeshSnapshot, host: &str, port: u32) -> Option<Destination> {
        let service = mesh.registry.service(host).unwrap().clone();
        Destination::of(mesh, &client(true), &service, port, "")
    }

    #[test]
    fn auto_mtls_follows_istio_inference() {
        let mesh = mesh();
        let ratings = destination(&mesh, "ratings.shop.svc.cluster.local", 9080).unwrap();
        assert_eq!(ratings.auto, Auto::ByEndpoint);
        assert_eq!(
            ratings.sni,
            "outbound_.9080_._.ratings.shop.svc.cluster.local"
        );
        // The VM entry without a service account has no identity.
        assert_eq!(
            ratings.identities,
            ["spiffe://cluster.local/ns/shop/sa/ratings"]
        );
        let old = destination(&mesh, "old.legacy.svc.cluster.local", 8080).unwrap();
        assert_eq!(old.auto, Auto::Off, "PeerAuthentication DISABLE");
        let api = destination(&mesh, "api.example.com", 443).unwrap();
        assert_eq!(api.auto, Auto::Off, "MESH_EXTERNAL");
        let db = destination(&mesh, "db.internal", 5432).unwrap();
        assert_eq!(
            db.auto,
            Auto::Always,
            "passthrough, every endpoint a sidecar"
        );
        assert_eq!(
            db.identities,
            ["spiffe://cluster.local/ns/data/sa/postgres"],
            "the entry's subjectAltNames"
        );
        let service = mesh.registry.service("db.internal").unwrap().clone();
        assert!(Destination::of(&mesh, &client(false), &service, 5432, "").is_none());
    }

    #[test]
    fn auto_mtls_off_in_mesh_config() {
        let config = trellis_api::istio::mesh::MeshConfig {
            enable_auto_mtls: Some(false),
            ..Default::default()
        };
        let mesh = MeshSnapshot::new(snapshot(MESH), &[], Arc::new(config));
        let ratings = destination(&mesh, "ratings.shop.svc.cluster.local", 9080).unwrap();
        assert_eq!(ratings.auto, Auto::Off);
    }

    #[test]
    fn sidecar_endpoints_carry_the_tls_mode() {
        let mesh = mesh();
        let cla = load_assignment(&mesh, "outbound|9080||ratings.shop.svc.cluster.local");
        let marks: Vec<bool> = cla.endpoints[0]
            .lb_endpoints
            .iter()
            .map(|e| {
                e.metadata.as_ref().is_some_and(|m| {
                    m.filter_metadata.get(TRANSPORT_SOCKET_MATCH) == Some(&istio_tls_mode())
                })
            })
            .collect();
        assert_eq!(marks, [true, false], "10.0.0.1 has a sidecar, 10.0.0.2 not");
    }
}
