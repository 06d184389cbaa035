//! `tls` origination: DISABLE / SIMPLE / MUTUAL → an `UpstreamTlsContext` transport socket.
//!
//! Certificates named by `credentialName` come over SDS on the ADS stream under Istio's
//! names (`kubernetes://<name>` for the key pair, `kubernetes://<name>-cacert` for the CA);
//! file paths (`caCertificates`, `clientCertificate`, `privateKey`, `caCrl`) are handed to
//! Envoy as file data sources, which a stock Envoy reads itself (Istio serves them through
//! its agent's SDS instead). `ISTIO_MUTUAL`, and auto mTLS when there is no `tls`, come
//! from [`mtls::upstream`](crate::translate::mtls::upstream).

use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as SocketConfig;
use envoy_types::pb::envoy::config::core::v3::{DataSource, TransportSocket, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::{
    CombinedCertificateValidationContext, ValidationContextType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SdsSecretConfig, SubjectAltNameMatcher,
    TlsCertificate, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::util::pack_any;
use trellis_api::istio::networking::{ClientTlsSettings, ClientTlsSettingsTlsMode as Mode};

use super::{Building, ads_config_source};
use crate::translate::mtls::upstream::Destination;

/// The name Envoy knows the TLS transport socket by.
pub const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

/// Istio's SDS resource name for a `credentialName` key pair.
pub fn credential_sds_name(credential: &str) -> String {
    if credential.contains("://") {
        credential.to_string()
    } else {
        format!("kubernetes://{credential}")
    }
}

/// Istio's SDS resource name for the CA bundle of a `credentialName`.
pub fn credential_ca_sds_name(credential: &str) -> String {
    format!("{}-cacert", credential_sds_name(credential))
}

/// An SDS reference served over the ADS stream.
pub fn sds(name: String) -> SdsSecretConfig {
    SdsSecretConfig {
        name,
        sds_config: Some(ads_config_source()),
    }
}

/// A file data source.
pub fn file(path: &str) -> Option<DataSource> {
    (!path.is_empty()).then(|| DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_string())),
        ..Default::default()
    })
}

/// SAN matchers: `spiffe://` names are URIs, everything else DNS names.
pub fn san_matchers(names: &[String]) -> Vec<SubjectAltNameMatcher> {
    names
        .iter()
        .map(|n| SubjectAltNameMatcher {
            san_type: if n.starts_with("spiffe://") {
                SanType::Uri
            } else {
                SanType::Dns
            } as i32,
            matcher: Some(StringMatcher {
                match_pattern: Some(MatchPattern::Exact(n.clone())),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

/// A TLS transport socket around a packed TLS context.
pub fn transport_socket<M: prost::Name>(context: M) -> TransportSocket {
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.to_string(),
        config_type: Some(SocketConfig::TypedConfig(pack_any(context))),
    }
}

/// Applies client TLS settings to the cluster being built. `mesh` is what Istio mTLS to
/// this destination needs, `None` when the proxy has no workload certificate (then
/// `ISTIO_MUTUAL` and auto mTLS leave the traffic in plain text).
pub fn apply(
    b: &mut Building,
    tls: Option<&ClientTlsSettings>,
    http2: bool,
    mesh: Option<&Destination>,
) {
    let Some(tls) = tls else {
        if let Some(mesh) = mesh {
            mesh.apply_auto(&mut b.cluster, http2);
        }
        return;
    };
    let mut context = match tls.mode {
        Mode::Disable => return,
        Mode::IstioMutual => {
            if let Some(mesh) = mesh {
                b.cluster.transport_socket = Some(transport_socket(mesh.context(Some(tls), http2)));
            }
            return;
        }
        Mode::Simple => upstream_context(b, tls, false),
        Mode::Mutual => upstream_context(b, tls, true),
    };
    if http2 && let Some(common) = context.common_tls_context.as_mut() {
        common.alpn_protocols = vec!["h2".to_string()];
    }
    b.cluster.transport_socket = Some(transport_socket(context));
}

fn upstream_context(b: &mut Building, tls: &ClientTlsSettings, mutual: bool) -> UpstreamTlsContext {
    let mut common = CommonTlsContext::default();
    let skip_verify = tls.insecure_skip_verify == Some(true);
    if !tls.credential_name.is_empty() {
        if mutual {
            common
                .tls_certificate_sds_secret_configs
                .push(sds(credential_sds_name(&tls.credential_name)));
        }
        if !skip_verify {
            common.validation_context_type =
                Some(ValidationContextType::CombinedValidationContext(
                    CombinedCertificateValidationContext {
                        default_validation_context: Some(CertificateValidationContext {
                            match_typed_subject_alt_names: san_matchers(&tls.subject_alt_names),
                            ..Default::default()
                        }),
                        validation_context_sds_secret_config: Some(sds(credential_ca_sds_name(
                            &tls.credential_name,
                        ))),
                        ..Default::default()
                    },
                ));
        }
    } else {
        if mutual {
            common.tls_certificates.push(TlsCertificate {
                certificate_chain: file(&tls.client_certificate),
                private_key: file(&tls.private_key),
                ..Default::default()
            });
        }
        if !skip_verify && !tls.ca_certificates.is_empty() {
            common.validation_context_type = Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: file(&tls.ca_certificates),
                    crl: file(&tls.ca_crl),
                    match_typed_subject_alt_names: san_matchers(&tls.subject_alt_names),
                    ..Default::default()
                },
            ));
        }
    }
    // Without an explicit SNI Istio lets Envoy take it from the request's host, and checks
    // the peer's certificate against it when no SAN is given.
    if tls.sni.is_empty() {
        let options = b.http_options();
        let upstream = options
            .upstream_http_protocol_options
            .get_or_insert_with(Default::default);
        upstream.auto_sni = true;
        upstream.auto_san_validation = tls.subject_alt_names.is_empty() && !skip_verify;
    }
    UpstreamTlsContext {
        common_tls_context: Some(common),
        sni: tls.sni.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(b: &Building) -> UpstreamTlsContext {
        let socket = b.cluster.transport_socket.as_ref().expect("tls socket");
        assert_eq!(socket.name, TLS_TRANSPORT_SOCKET);
        match &socket.config_type {
            Some(SocketConfig::TypedConfig(any)) => {
                prost::Message::decode(any.value.as_slice()).unwrap()
            }
            None => panic!("no config"),
        }
    }

    #[test]
    fn simple_with_ca_file_and_sni() {
        let tls = ClientTlsSettings {
            mode: Mode::Simple,
            ca_certificates: "/etc/certs/ca.pem".into(),
            sni: "api.example.com".into(),
            ..Default::default()
        };
        let mut b = Building::new("c".into());
        apply(&mut b, Some(&tls), false, None);
        let ctx = decode(&b);
        assert_eq!(ctx.sni, "api.example.com");
        let common = ctx.common_tls_context.unwrap();
        assert!(common.tls_certificates.is_empty());
        assert!(matches!(
            common.validation_context_type,
            Some(ValidationContextType::ValidationContext(v)) if v.trusted_ca == file("/etc/certs/ca.pem")
        ));
        assert!(b.http.is_none(), "explicit SNI needs no auto_sni");
    }

    #[test]
    fn mutual_with_credential_name_uses_sds() {
        let tls = ClientTlsSettings {
            mode: Mode::Mutual,
            credential_name: "client-cred".into(),
            ..Default::default()
        };
        let mut b = Building::new("c".into());
        apply(&mut b, Some(&tls), true, None);
        let common = decode(&b).common_tls_context.unwrap();
        assert_eq!(
            common.tls_certificate_sds_secret_configs[0].name,
            "kubernetes://client-cred"
        );
        assert_eq!(common.alpn_protocols, ["h2"]);
        let upstream = b.http.unwrap().upstream_http_protocol_options.unwrap();
        assert!(upstream.auto_sni && upstream.auto_san_validation);
    }

    fn destination() -> Destination {
        Destination {
            sni: "outbound_.9080_._.reviews.shop.svc.cluster.local".into(),
            identities: vec!["spiffe://cluster.local/ns/shop/sa/reviews".into()],
            auto: crate::translate::mtls::upstream::Auto::ByEndpoint,
        }
    }

    #[test]
    fn disable_is_plain_text_even_to_sidecars() {
        let tls = ClientTlsSettings {
            mode: Mode::Disable,
            ..Default::default()
        };
        let mut b = Building::new("c".into());
        apply(&mut b, Some(&tls), false, Some(&destination()));
        assert!(b.cluster.transport_socket.is_none());
        assert!(b.cluster.transport_socket_matches.is_empty());
    }

    #[test]
    fn istio_mutual_always_originates_mesh_tls() {
        let tls = ClientTlsSettings {
            mode: Mode::IstioMutual,
            ..Default::default()
        };
        let mut b = Building::new("c".into());
        apply(&mut b, Some(&tls), true, Some(&destination()));
        assert!(b.cluster.transport_socket_matches.is_empty());
        let ctx = decode(&b);
        assert_eq!(ctx.sni, "outbound_.9080_._.reviews.shop.svc.cluster.local");
        let common = ctx.common_tls_context.unwrap();
        assert_eq!(
            common.alpn_protocols,
            ["istio-peer-exchange", "istio", "h2"]
        );
        assert_eq!(common.tls_certificate_sds_secret_configs[0].name, "default");
        let Some(ValidationContextType::CombinedValidationContext(v)) =
            common.validation_context_type
        else {
            panic!("no combined validation context");
        };
        assert_eq!(
            v.validation_context_sds_secret_config.unwrap().name,
            "ROOTCA"
        );
        assert_eq!(
            v.default_validation_context
                .unwrap()
                .match_typed_subject_alt_names,
            san_matchers(&["spiffe://cluster.local/ns/shop/sa/reviews".to_string()])
        );
    }

    #[test]
    fn istio_mutual_keeps_the_rules_sni_and_sans() {
        let tls = ClientTlsSettings {
            mode: Mode::IstioMutual,
            sni: "custom.example".into(),
            subject_alt_names: vec!["spiffe://other/ns/a/sa/b".into()],
            ..Default::default()
        };
        let mut b = Building::new("c".into());
        apply(&mut b, Some(&tls), false, Some(&destination()));
        let ctx = decode(&b);
        assert_eq!(ctx.sni, "custom.example");
        assert_eq!(
            ctx.common_tls_context.unwrap().alpn_protocols,
            ["istio-peer-exchange", "istio"]
        );
    }

    #[test]
    fn without_sds_istio_mutual_and_auto_stay_plain() {
        let tls = ClientTlsSettings {
            mode: Mode::IstioMutual,
            ..Default::default()
        };
        for setting in [Some(&tls), None] {
            let mut b = Building::new("c".into());
            apply(&mut b, setting, false, None);
            assert!(b.cluster.transport_socket.is_none());
            assert!(b.cluster.transport_socket_matches.is_empty());
        }
    }

    #[test]
    fn auto_mtls_matches_sidecar_endpoints() {
        let mut b = Building::new("c".into());
        apply(&mut b, None, false, Some(&destination()));
        assert!(b.cluster.transport_socket.is_none());
        let matches = &b.cluster.transport_socket_matches;
        assert_eq!(matches.len(), 2);
        assert_eq!(matches[0].name, "tlsMode-istio");
        assert_eq!(
            matches[0].r#match,
            Some(crate::translate::mtls::upstream::istio_tls_mode())
        );
        assert_eq!(
            matches[0].transport_socket.as_ref().unwrap().name,
            TLS_TRANSPORT_SOCKET
        );
        assert_eq!(matches[1].name, "tlsMode-disabled");
        assert_eq!(
            matches[1].transport_socket.as_ref().unwrap().name,
            "envoy.transport_sockets.raw_buffer"
        );
    }
}
