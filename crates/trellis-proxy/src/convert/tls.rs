//! Transport sockets: `envoy.transport_sockets.tls` (a `DownstreamTlsContext` on a filter
//! chain, an `UpstreamTlsContext` on a cluster) and `raw_buffer`. The proxy resolves the
//! node agent's SDS secrets itself — `default` (its key pair) and `ROOTCA` (the mesh roots)
//! on the `sds-grpc` cluster, as Istio's contexts name them; any other certificate source
//! (inline or file certificates, other SDS names or sources) is rejected naming the field.

use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::{
    CombinedCertificateValidationContext, ValidationContextType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    SubjectAltNameMatcher, TlsParameters, UpstreamTlsContext,
};
use prost::Name;

use super::listener::unpack;
use super::{Result, reject, string_matcher};
use crate::tls::config::{CommonTls, DownstreamTls, SanKind, SanMatcher, UpstreamTls, Version};
use crate::tls::secrets::{ROOT_CA, WORKLOAD_CERT};

/// The bootstrap cluster of the node agent's SDS server, which the proxy stands in for.
pub const SDS_CLUSTER: &str = "sds-grpc";

/// A transport socket's TLS context of type `T`; `None` for `raw_buffer` (plain text).
fn context<T: prost::Message + Name + Default>(ts: &TransportSocket, p: &str) -> Result<Option<T>> {
    let TransportSocket { name, config_type } = ts;
    let Some(ConfigType::TypedConfig(any)) = config_type else {
        return Err(format!("{p}: transport socket {name} without typed_config"));
    };
    if any.type_url == RawBuffer::type_url() {
        return Ok(None);
    }
    if any.type_url != T::type_url() {
        return Err(format!(
            "{p}: transport socket {name} ({}) is not implemented",
            any.type_url
        ));
    }
    unpack(any, p).map(Some)
}

/// A filter chain's `transport_socket`: `None` for plain text.
pub fn downstream(ts: &TransportSocket, p: &str) -> Result<Option<DownstreamTls>> {
    let Some(c) = context::<DownstreamTlsContext>(ts, p)? else {
        return Ok(None);
    };
    let p = format!("{p}.typed_config");
    let DownstreamTlsContext {
        common_tls_context,
        require_client_certificate,
        require_sni,
        disable_stateful_session_resumption: _,
        session_timeout: _,
        ocsp_staple_policy,
        full_scan_certs_on_sni_mismatch,
        prefer_client_ciphers,
        session_ticket_keys_type,
    } = &c;
    reject!(p; require_sni, ocsp_staple_policy, full_scan_certs_on_sni_mismatch,
        prefer_client_ciphers, session_ticket_keys_type);
    let Some(common) = common_tls_context else {
        return Err(format!("{p}: no common_tls_context"));
    };
    Ok(Some(DownstreamTls {
        common: common_tls(common, &format!("{p}.common_tls_context"))?,
        require_client_certificate: require_client_certificate.as_ref().is_some_and(|b| b.value),
    }))
}

/// A cluster's (or a socket match's) `transport_socket`: `None` for plain text.
pub fn upstream(ts: &TransportSocket, p: &str) -> Result<Option<UpstreamTls>> {
    let Some(c) = context::<UpstreamTlsContext>(ts, p)? else {
        return Ok(None);
    };
    let p = format!("{p}.typed_config");
    let UpstreamTlsContext {
        common_tls_context,
        sni,
        auto_host_sni,
        auto_sni_san_validation,
        allow_renegotiation,
        max_session_keys: _,
        enforce_rsa_key_usage: _,
    } = &c;
    reject!(p; auto_host_sni, auto_sni_san_validation, allow_renegotiation);
    let Some(common) = common_tls_context else {
        return Err(format!("{p}: no common_tls_context"));
    };
    Ok(Some(UpstreamTls {
        common: common_tls(common, &format!("{p}.common_tls_context"))?,
        sni: sni.clone(),
    }))
}

fn common_tls(c: &CommonTlsContext, p: &str) -> Result<CommonTls> {
    let CommonTlsContext {
        tls_params,
        tls_certificates,
        tls_certificate_sds_secret_configs,
        tls_certificate_provider_instance,
        custom_tls_certificate_selector,
        tls_certificate_certificate_provider,
        tls_certificate_certificate_provider_instance,
        alpn_protocols,
        custom_handshaker,
        key_log,
        validation_context_type,
    } = c;
    reject!(p; tls_certificates, tls_certificate_provider_instance,
        custom_tls_certificate_selector, tls_certificate_certificate_provider,
        tls_certificate_certificate_provider_instance, custom_handshaker, key_log);
    match tls_certificate_sds_secret_configs.as_slice() {
        [one] => agent_secret(
            one,
            WORKLOAD_CERT,
            &format!("{p}.tls_certificate_sds_secret_configs[0]"),
        )?,
        _ => {
            return Err(format!(
                "{p}.tls_certificate_sds_secret_configs: exactly one SDS certificate (`{WORKLOAD_CERT}`) is implemented"
            ));
        }
    }
    let (min, max, cipher_suites) = match tls_params {
        None => (Version::Tls12, Version::Tls13, Vec::new()),
        Some(t) => params(t, &format!("{p}.tls_params"))?,
    };
    let sans = match validation_context_type {
        Some(ValidationContextType::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context,
                validation_context_sds_secret_config,
                validation_context_certificate_provider,
                validation_context_certificate_provider_instance,
            },
        )) => {
            let p = format!("{p}.combined_validation_context");
            reject!(p; validation_context_certificate_provider,
                validation_context_certificate_provider_instance);
            let Some(sds) = validation_context_sds_secret_config else {
                return Err(format!("{p}: no validation_context_sds_secret_config"));
            };
            agent_secret(
                sds,
                ROOT_CA,
                &format!("{p}.validation_context_sds_secret_config"),
            )?;
            match default_validation_context {
                None => Vec::new(),
                Some(v) => validation(v, &format!("{p}.default_validation_context"))?,
            }
        }
        Some(ValidationContextType::ValidationContextSdsSecretConfig(sds)) => {
            agent_secret(
                sds,
                ROOT_CA,
                &format!("{p}.validation_context_sds_secret_config"),
            )?;
            Vec::new()
        }
        Some(ValidationContextType::ValidationContext(_)) => {
            return Err(format!(
                "{p}.validation_context: inline or file trusted CAs are not implemented"
            ));
        }
        Some(_) => {
            return Err(format!("{p}.validation_context_type is not implemented"));
        }
        None => {
            return Err(format!(
                "{p}: TLS without peer validation (no validation context) is not implemented"
            ));
        }
    };
    Ok(CommonTls {
        min,
        max,
        cipher_suites,
        alpn: alpn_protocols.clone(),
        sans,
    })
}

/// An SDS reference to the node agent's `expected` secret.
fn agent_secret(s: &SdsSecretConfig, expected: &str, p: &str) -> Result<()> {
    let SdsSecretConfig { name, sds_config } = s;
    let agent = sds_config.as_ref().is_some_and(|c| match &c.config_source_specifier {
        Some(ConfigSourceSpecifier::ApiConfigSource(api)) => api.grpc_services.iter().any(|g| {
            matches!(&g.target_specifier, Some(TargetSpecifier::EnvoyGrpc(e)) if e.cluster_name == SDS_CLUSTER)
        }),
        _ => false,
    });
    if name != expected || !agent {
        return Err(format!(
            "{p}: SDS secret {name:?} is not implemented (only the workload identity `{WORKLOAD_CERT}` and roots `{ROOT_CA}` of cluster {SDS_CLUSTER})"
        ));
    }
    Ok(())
}

fn params(t: &TlsParameters, p: &str) -> Result<(Version, Version, Vec<String>)> {
    let TlsParameters {
        tls_minimum_protocol_version,
        tls_maximum_protocol_version,
        cipher_suites,
        ecdh_curves,
        signature_algorithms,
        compliance_policies,
    } = t;
    reject!(p; ecdh_curves, signature_algorithms, compliance_policies);
    let version = |v: i32, auto: Version, field: &str| match TlsProtocol::try_from(v) {
        Ok(TlsProtocol::TlsAuto) => Ok(auto),
        // rustls has nothing older: TLS 1.2 is the lowest it can offer anyway.
        Ok(TlsProtocol::TlSv10 | TlsProtocol::TlSv11 | TlsProtocol::TlSv12) if field == "min" => {
            Ok(Version::Tls12)
        }
        Ok(TlsProtocol::TlSv12) => Ok(Version::Tls12),
        Ok(TlsProtocol::TlSv13) => Ok(Version::Tls13),
        _ => Err(format!(
            "{p}.tls_{field}imum_protocol_version {v}: below TLS 1.2 is not implemented"
        )),
    };
    let min = version(*tls_minimum_protocol_version, Version::Tls12, "min")?;
    let max = version(*tls_maximum_protocol_version, Version::Tls13, "max")?;
    if min > max {
        return Err(format!("{p}: minimum protocol version above the maximum"));
    }
    Ok((min, max, cipher_suites.clone()))
}

fn validation(v: &CertificateValidationContext, p: &str) -> Result<Vec<SanMatcher>> {
    let CertificateValidationContext {
        trusted_ca,
        ca_certificate_provider_instance,
        system_root_certs,
        watched_directory,
        verify_certificate_spki,
        verify_certificate_hash,
        match_typed_subject_alt_names,
        match_subject_alt_names,
        require_signed_certificate_timestamp,
        crl,
        allow_expired_certificate,
        trust_chain_verification,
        custom_validator_config,
        only_verify_leaf_cert_crl,
        max_verify_depth,
        suppress_client_ca_list: _,
    } = v;
    reject!(p; trusted_ca, ca_certificate_provider_instance, system_root_certs,
        watched_directory, verify_certificate_spki, verify_certificate_hash,
        require_signed_certificate_timestamp, crl, allow_expired_certificate,
        trust_chain_verification, custom_validator_config, only_verify_leaf_cert_crl,
        max_verify_depth);
    let mut out = Vec::new();
    for (i, m) in match_typed_subject_alt_names.iter().enumerate() {
        out.push(san_matcher(
            m,
            &format!("{p}.match_typed_subject_alt_names[{i}]"),
        )?);
    }
    // The deprecated form matches any SAN type (Istio still writes it).
    for (i, m) in match_subject_alt_names.iter().enumerate() {
        let matcher = string_matcher(m, &format!("{p}.match_subject_alt_names[{i}]"))?;
        for kind in [SanKind::Uri, SanKind::Dns] {
            out.push(SanMatcher {
                kind,
                matcher: matcher.clone(),
            });
        }
    }
    Ok(out)
}

fn san_matcher(m: &SubjectAltNameMatcher, p: &str) -> Result<SanMatcher> {
    let SubjectAltNameMatcher {
        san_type,
        matcher,
        oid,
    } = m;
    reject!(p; oid);
    let kind = match SanType::try_from(*san_type) {
        Ok(SanType::Uri) => SanKind::Uri,
        Ok(SanType::Dns) => SanKind::Dns,
        _ => {
            return Err(format!(
                "{p}.san_type {san_type} is not implemented (URI and DNS are)"
            ));
        }
    };
    let Some(matcher) = matcher else {
        return Err(format!("{p}: no matcher"));
    };
    Ok(SanMatcher {
        kind,
        matcher: string_matcher(matcher, &format!("{p}.matcher"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::grpc_service::EnvoyGrpc;
    use envoy_types::pb::envoy::config::core::v3::{
        ApiConfigSource, ConfigSource, DataSource, GrpcService, data_source,
    };
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::TlsCertificate;
    use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
    use envoy_types::pb::google::protobuf::BoolValue;
    use envoy_types::util::pack_any;

    use crate::config::StringMatch;

    /// An SDS reference to the node agent, as Istio writes it.
    fn agent(name: &str) -> SdsSecretConfig {
        SdsSecretConfig {
            name: name.into(),
            sds_config: Some(ConfigSource {
                config_source_specifier: Some(ConfigSourceSpecifier::ApiConfigSource(
                    ApiConfigSource {
                        grpc_services: vec![GrpcService {
                            target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                                cluster_name: SDS_CLUSTER.into(),
                                ..Default::default()
                            })),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }),
        }
    }

    /// Istio's mesh context: workload certificate, roots, TLS 1.2–1.3, these SANs.
    fn mesh_common(alpn: &[&str], sans: &[&str]) -> CommonTlsContext {
        CommonTlsContext {
            tls_params: Some(TlsParameters {
                tls_minimum_protocol_version: TlsProtocol::TlSv12 as i32,
                tls_maximum_protocol_version: TlsProtocol::TlSv13 as i32,
                cipher_suites: vec!["ECDHE-ECDSA-AES256-GCM-SHA384".into()],
                ..Default::default()
            }),
            alpn_protocols: alpn.iter().map(|s| s.to_string()).collect(),
            tls_certificate_sds_secret_configs: vec![agent("default")],
            validation_context_type: Some(ValidationContextType::CombinedValidationContext(
                CombinedCertificateValidationContext {
                    default_validation_context: Some(CertificateValidationContext {
                        match_typed_subject_alt_names: sans
                            .iter()
                            .map(|s| SubjectAltNameMatcher {
                                san_type: SanType::Uri as i32,
                                matcher: Some(StringMatcher {
                                    match_pattern: Some(MatchPattern::Exact(s.to_string())),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    }),
                    validation_context_sds_secret_config: Some(agent("ROOTCA")),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }
    }

    fn socket<M: prost::Name>(m: M) -> TransportSocket {
        TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(ConfigType::TypedConfig(pack_any(m))),
        }
    }

    #[test]
    fn istios_server_context_becomes_mutual_tls_termination() {
        let ts = socket(DownstreamTlsContext {
            common_tls_context: Some(mesh_common(&["h2", "http/1.1"], &[])),
            require_client_certificate: Some(BoolValue { value: true }),
            ..Default::default()
        });
        let tls = downstream(&ts, "chain").unwrap().unwrap();
        assert!(tls.require_client_certificate);
        assert_eq!(tls.common.alpn, ["h2", "http/1.1"]);
        assert_eq!(
            (tls.common.min, tls.common.max),
            (Version::Tls12, Version::Tls13)
        );
        assert!(tls.common.sans.is_empty(), "any identity of the mesh");
    }

    #[test]
    fn istios_client_context_keeps_sni_and_expected_identities() {
        let reviews = "spiffe://cluster.local/ns/default/sa/reviews";
        let ts = socket(UpstreamTlsContext {
            common_tls_context: Some(mesh_common(&["istio-peer-exchange", "istio"], &[reviews])),
            sni: "outbound_.9080_._.reviews.default.svc.cluster.local".into(),
            ..Default::default()
        });
        let tls = upstream(&ts, "cluster").unwrap().unwrap();
        assert_eq!(
            tls.sni,
            "outbound_.9080_._.reviews.default.svc.cluster.local"
        );
        assert_eq!(tls.common.alpn, ["istio-peer-exchange", "istio"]);
        assert_eq!(
            tls.common.sans,
            [SanMatcher {
                kind: SanKind::Uri,
                matcher: StringMatch::Exact(reviews.into(), false)
            }]
        );
    }

    /// A chain's `transport_socket_connect_timeout` bounds its handshakes: unset gives the
    /// default, zero none.
    #[test]
    fn the_chains_connect_timeout_bounds_its_handshakes() {
        use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
        use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
        use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
        use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
        use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
        use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;
        use envoy_types::pb::google::protobuf::Duration as PbDuration;
        use std::time::Duration;

        let timeout_of = |configured: Option<PbDuration>| {
            let tcp = TcpProxy {
                stat_prefix: "t".into(),
                cluster_specifier: Some(ClusterSpecifier::Cluster("c".into())),
                ..Default::default()
            };
            let l = Listener {
                name: "l".into(),
                address: Some(Address {
                    address: Some(AddressKind::SocketAddress(SocketAddress {
                        address: "127.0.0.1".into(),
                        port_specifier: Some(PortSpecifier::PortValue(9080)),
                        ..Default::default()
                    })),
                }),
                filter_chains: vec![FilterChain {
                    filters: vec![Filter {
                        name: "envoy.filters.network.tcp_proxy".into(),
                        config_type: Some(
                            envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(
                                pack_any(tcp),
                            ),
                        ),
                    }],
                    transport_socket: Some(socket(DownstreamTlsContext {
                        common_tls_context: Some(mesh_common(&["istio"], &[])),
                        require_client_certificate: Some(BoolValue { value: true }),
                        ..Default::default()
                    })),
                    transport_socket_connect_timeout: configured,
                    ..Default::default()
                }],
                ..Default::default()
            };
            let converted = crate::convert::listener::listener(&l).unwrap();
            converted.chains[0].tls.as_ref().unwrap().handshake_timeout
        };
        let secs = |seconds| PbDuration { seconds, nanos: 0 };
        assert_eq!(
            timeout_of(None),
            Some(crate::tls::server::DEFAULT_HANDSHAKE_TIMEOUT)
        );
        assert_eq!(timeout_of(Some(secs(2))), Some(Duration::from_secs(2)));
        assert_eq!(timeout_of(Some(secs(0))), None);
    }

    #[test]
    fn raw_buffer_is_plain_text() {
        let ts = TransportSocket {
            name: "envoy.transport_sockets.raw_buffer".into(),
            config_type: Some(ConfigType::TypedConfig(pack_any(RawBuffer::default()))),
        };
        assert_eq!(upstream(&ts, "c").unwrap(), None);
        assert_eq!(downstream(&ts, "c").unwrap(), None);
    }

    #[test]
    fn certificates_from_elsewhere_are_refused_by_name() {
        // A credentialName secret over ADS (`kubernetes://...`).
        let mut other = mesh_common(&[], &[]);
        other.tls_certificate_sds_secret_configs = vec![agent("kubernetes://cert")];
        let e = upstream(
            &socket(UpstreamTlsContext {
                common_tls_context: Some(other),
                ..Default::default()
            }),
            "cluster c",
        )
        .unwrap_err();
        assert!(
            e.contains("tls_certificate_sds_secret_configs[0]: SDS secret \"kubernetes://cert\""),
            "{e}"
        );
        // Inline or file certificates (DestinationRule MUTUAL with files).
        let mut files = mesh_common(&[], &[]);
        files.tls_certificates = vec![TlsCertificate {
            certificate_chain: Some(DataSource {
                specifier: Some(data_source::Specifier::Filename("/etc/cert.pem".into())),
                ..Default::default()
            }),
            ..Default::default()
        }];
        let e = upstream(
            &socket(UpstreamTlsContext {
                common_tls_context: Some(files),
                ..Default::default()
            }),
            "cluster c",
        )
        .unwrap_err();
        assert!(
            e.ends_with("common_tls_context.tls_certificates is not implemented"),
            "{e}"
        );
        // Trusted CAs inline or from files.
        let mut inline_ca = mesh_common(&[], &[]);
        inline_ca.validation_context_type =
            Some(ValidationContextType::ValidationContext(Default::default()));
        let e = downstream(
            &socket(DownstreamTlsContext {
                common_tls_context: Some(inline_ca),
                ..Default::default()
            }),
            "chain",
        )
        .unwrap_err();
        assert!(
            e.contains("validation_context: inline or file trusted CAs"),
            "{e}"
        );
        // The wrong kind of context for the side.
        let e = downstream(&socket(UpstreamTlsContext::default()), "chain").unwrap_err();
        assert!(e.contains("is not implemented"), "{e}");
    }

    #[test]
    fn protocol_bounds() {
        let t = |min: TlsProtocol, max: TlsProtocol| {
            params(
                &TlsParameters {
                    tls_minimum_protocol_version: min as i32,
                    tls_maximum_protocol_version: max as i32,
                    ..Default::default()
                },
                "p",
            )
            .map(|(a, b, _)| (a, b))
        };
        use TlsProtocol::*;
        assert_eq!(t(TlsAuto, TlsAuto), Ok((Version::Tls12, Version::Tls13)));
        assert_eq!(t(TlSv13, TlsAuto), Ok((Version::Tls13, Version::Tls13)));
        assert_eq!(t(TlSv10, TlSv12), Ok((Version::Tls12, Version::Tls12)));
        assert!(t(TlsAuto, TlSv11).is_err());
        assert!(t(TlSv13, TlSv12).is_err());
    }
}
