//! Istio mutual TLS between sidecars: who requires it ([`policy`], PeerAuthentication),
//! how a client originates it ([`upstream`]: auto mTLS and `ISTIO_MUTUAL`), and how a
//! workload's inbound side accepts it ([`downstream`]: the TLS variants of each inbound
//! filter chain).
//!
//! Certificates are never in the configuration: TLS contexts name Istio's SDS resources —
//! `default` (the workload's key pair) and `ROOTCA` (the mesh trust bundle) — served by the
//! node agent on the `sds-grpc` cluster of the proxy's bootstrap. A proxy that has no such
//! cluster says so by leaving out the `SDS` node metadata ([`ProxyNode::sds`]); it gets no
//! TLS it could not complete (see [`downstream`] for what STRICT means for it).
//!
//! [`ProxyNode::sds`]: crate::proxy::ProxyNode::sds

pub mod downstream;
pub mod policy;
pub mod upstream;

use envoy_types::pb::envoy::config::core::v3::api_config_source::ApiType;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::core::v3::{
    ApiConfigSource, ApiVersion, ConfigSource, GrpcService,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::{
    CombinedCertificateValidationContext, ValidationContextType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SdsSecretConfig, SubjectAltNameMatcher,
    TlsParameters,
};

pub use policy::{Mode, PeerAuthentications};

/// The bootstrap cluster that reaches the node agent's SDS server.
pub const SDS_CLUSTER: &str = "sds-grpc";
/// The SDS resource of the workload's own certificate and key.
pub const WORKLOAD_CERT: &str = "default";
/// The SDS resource of the mesh's trust bundle.
pub const ROOT_CA: &str = "ROOTCA";
/// The trust domain when the mesh config sets none.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// The endpoint metadata key Envoy's `transport_socket_matches` look at.
pub const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";
/// The key and value marking an endpoint whose sidecar accepts Istio mTLS.
pub const TLS_MODE_KEY: &str = "tlsMode";
pub const TLS_MODE_ISTIO: &str = "istio";

/// A reference to an SDS secret served by the node agent, as Istio writes it: no initial
/// fetch timeout, so listeners and clusters wait for their certificate instead of serving
/// without one.
pub fn agent_sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_string(),
        sds_config: Some(ConfigSource {
            config_source_specifier: Some(ConfigSourceSpecifier::ApiConfigSource(
                ApiConfigSource {
                    api_type: ApiType::Grpc as i32,
                    transport_api_version: ApiVersion::V3 as i32,
                    set_node_on_first_message_only: true,
                    grpc_services: vec![GrpcService {
                        target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                            cluster_name: SDS_CLUSTER.to_string(),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )),
            resource_api_version: ApiVersion::V3 as i32,
            initial_fetch_timeout: Some(crate::translate::pb_duration(std::time::Duration::ZERO)),
            ..Default::default()
        }),
    }
}

/// `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
pub fn spiffe_id(trust_domain: &str, namespace: &str, service_account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}

/// The mesh's trust domain.
pub fn trust_domain(mesh: &trellis_api::istio::mesh::MeshConfig) -> &str {
    if mesh.trust_domain.is_empty() {
        DEFAULT_TRUST_DOMAIN
    } else {
        &mesh.trust_domain
    }
}

/// TLS 1.2 to 1.3, Istio's bounds for mesh traffic.
fn tls_params(cipher_suites: Vec<String>) -> TlsParameters {
    TlsParameters {
        tls_minimum_protocol_version: TlsProtocol::TlSv12 as i32,
        tls_maximum_protocol_version: TlsProtocol::TlSv13 as i32,
        cipher_suites,
        ..Default::default()
    }
}

/// The workload certificate plus validation against the mesh root, with `sans` (peer
/// identities) to check when there are any.
fn mesh_tls_context(
    alpn: &[&str],
    sans: Vec<SubjectAltNameMatcher>,
    cipher_suites: Vec<String>,
) -> CommonTlsContext {
    CommonTlsContext {
        tls_params: Some(tls_params(cipher_suites)),
        alpn_protocols: alpn.iter().map(|s| s.to_string()).collect(),
        tls_certificate_sds_secret_configs: vec![agent_sds(WORKLOAD_CERT)],
        validation_context_type: Some(ValidationContextType::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context: Some(CertificateValidationContext {
                    match_typed_subject_alt_names: sans,
                    ..Default::default()
                }),
                validation_context_sds_secret_config: Some(agent_sds(ROOT_CA)),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sds_references_name_the_agent_cluster() {
        let sds = agent_sds(WORKLOAD_CERT);
        assert_eq!(sds.name, "default");
        let source = sds.sds_config.unwrap();
        assert_eq!(source.resource_api_version, ApiVersion::V3 as i32);
        let Some(ConfigSourceSpecifier::ApiConfigSource(api)) = source.config_source_specifier
        else {
            panic!("not an api config source");
        };
        assert_eq!(api.api_type, ApiType::Grpc as i32);
        assert_eq!(api.transport_api_version, ApiVersion::V3 as i32);
        assert!(matches!(
            &api.grpc_services[0].target_specifier,
            Some(TargetSpecifier::EnvoyGrpc(g)) if g.cluster_name == "sds-grpc"
        ));
    }

    #[test]
    fn identities() {
        assert_eq!(
            spiffe_id("cluster.local", "shop", "reviews"),
            "spiffe://cluster.local/ns/shop/sa/reviews"
        );
        assert_eq!(trust_domain(&Default::default()), "cluster.local");
    }
}
