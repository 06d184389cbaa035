//! Accepting Istio mTLS on a workload's inbound side: the variants of each inbound filter
//! chain under the port's PeerAuthentication mode, as Istio builds them (its filter chain
//! match options). `virtualInbound`'s `tls_inspector` tells `tls` from `raw_buffer` and
//! reads the client's ALPN, on which the chains match:
//!
//! | port protocol | STRICT | PERMISSIVE | DISABLE |
//! |---|---|---|---|
//! | HTTP | TLS | TLS (ALPN `istio*`) + plain | plain |
//! | TCP | TLS | TLS (ALPN `istio*`) + TLS passed through + plain | plain |
//! | undeclared (sniffed) | TLS as HTTP (ALPN `istio-http*`) + TLS as TCP | both TLS, plain HTTP, plain TCP, TLS passed through | plain HTTP + plain TCP |
//!
//! The TLS chains terminate with the workload certificate and require a client
//! certificate from the mesh root; `meshMTLS` sets their minimum TLS version and cipher
//! suites. A proxy without SDS cannot terminate mesh TLS: it keeps
//! the plain-text chains it always had, except that a STRICT port refuses every connection
//! (it never falls back to plain text).
//!
//! Callers build each chain's filters themselves and call [`Variant::apply`] to add the
//! match and the transport socket: the hook other inbound filters (authorization) share.

use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, SubjectAltNameMatcher,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::BoolValue;
use trellis_api::istio::mesh::{MeshConfig, MeshConfigTlsConfigTlsProtocol as TlsVersion};

use super::{Mode, mesh_tls_context};
use crate::protocol::Protocol;
use crate::translate::clusters::tls::{san_matchers, transport_socket};
use crate::translate::listeners::http::HTTP_ALPNS;

/// `transport_protocol` of a TLS connection, as the TLS inspector reports it ...
pub const TLS: &str = "tls";
/// ... and of anything else.
pub const RAW_BUFFER: &str = "raw_buffer";

/// Every ALPN an Istio client offers for mesh mTLS.
pub const ALL_ISTIO_ALPNS: [&str; 5] = [
    "istio",
    "istio-peer-exchange",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
];
/// The ALPNs Istio's clients offer for mTLS carrying HTTP.
pub const MTLS_HTTP_ALPNS: [&str; 3] = ["istio-http/1.0", "istio-http/1.1", "istio-h2"];
/// The ALPNs Istio's clients offer for mTLS carrying TCP.
pub const MTLS_TCP_ALPNS: [&str; 2] = ["istio-peer-exchange", "istio"];
/// The ALPNs sniffed on plain-text HTTP (Istio leaves HTTP/1.0 to the TCP chain).
pub const PLAIN_HTTP_ALPNS: [&str; 2] = ["http/1.1", "h2c"];
/// ALPN the server negotiates for HTTP over mTLS ...
pub const SERVER_HTTP_ALPNS: [&str; 2] = ["h2", "http/1.1"];
/// ... and for TCP (with metadata exchange).
pub const SERVER_TCP_ALPNS: [&str; 3] = ["istio-peer-exchange", "h2", "http/1.1"];
/// Istio's cipher suites for mesh mTLS servers.
pub const CIPHER_SUITES: [&str; 6] = [
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
];

/// What a chain's filters do with the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carries {
    /// An HTTP connection manager.
    Http,
    /// A TCP proxy.
    Tcp,
    /// Nothing: the connection is refused (a TCP proxy to `BlackHoleCluster`).
    Refused,
}

/// One filter chain of an inbound port.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub carries: Carries,
    /// `tls`, `raw_buffer`, or empty for any.
    pub transport_protocol: &'static str,
    pub application_protocols: &'static [&'static str],
    /// Terminates mesh mTLS when set.
    pub tls: Option<DownstreamTlsContext>,
}

impl Variant {
    fn plain(carries: Carries, transport_protocol: &'static str, alpns: &'static [&str]) -> Self {
        Variant {
            carries,
            transport_protocol,
            application_protocols: alpns,
            tls: None,
        }
    }

    fn mtls(carries: Carries, alpns: &'static [&str], tls: &DownstreamTlsContext) -> Self {
        Variant {
            carries,
            transport_protocol: TLS,
            application_protocols: alpns,
            tls: Some(tls.clone()),
        }
    }

    /// Adds this variant's match to `chain` (on top of its destination port, if any) and
    /// its TLS transport socket.
    pub fn apply(&self, chain: &mut FilterChain) {
        if !self.transport_protocol.is_empty() || !self.application_protocols.is_empty() {
            let m = chain
                .filter_chain_match
                .get_or_insert_with(FilterChainMatch::default);
            m.transport_protocol = self.transport_protocol.to_string();
            m.application_protocols = self
                .application_protocols
                .iter()
                .map(|s| s.to_string())
                .collect();
        }
        chain.transport_socket = self.tls.clone().map(transport_socket);
    }

    /// True when the chain needs the TLS inspector in front of it.
    pub fn needs_tls_inspector(&self) -> bool {
        !self.transport_protocol.is_empty()
    }
}

/// How a workload's inbound side can take mTLS.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The proxy has a workload certificate (SDS).
    pub sds: bool,
    pub mesh: &'a MeshConfig,
}

impl Inbound<'_> {
    /// The chains of a port of `protocol` under `mode`.
    pub fn variants(&self, mode: Mode, protocol: Protocol) -> Vec<Variant> {
        use Carries::*;
        if !self.sds {
            return match mode {
                Mode::Strict => vec![Variant::plain(Refused, "", &[])],
                _ => legacy(protocol),
            };
        }
        let http = self.context(&SERVER_HTTP_ALPNS);
        let tcp = self.context(&SERVER_TCP_ALPNS);
        match (class(protocol), mode) {
            (Class::Http, Mode::Strict) => vec![Variant::mtls(Http, &[], &http)],
            (Class::Http, Mode::Permissive) => vec![
                Variant::mtls(Http, &ALL_ISTIO_ALPNS, &http),
                Variant::plain(Http, RAW_BUFFER, &[]),
            ],
            (Class::Http, Mode::Disable) => vec![Variant::plain(Http, RAW_BUFFER, &[])],
            (Class::Tcp, Mode::Strict) => vec![Variant::mtls(Tcp, &[], &tcp)],
            (Class::Tcp, Mode::Permissive) => vec![
                Variant::mtls(Tcp, &ALL_ISTIO_ALPNS, &tcp),
                Variant::plain(Tcp, TLS, &[]),
                Variant::plain(Tcp, RAW_BUFFER, &[]),
            ],
            (Class::Tcp, Mode::Disable) => vec![Variant::plain(Tcp, RAW_BUFFER, &[])],
            // Undeclared protocol: HTTP and TCP chains side by side.
            (Class::Auto, Mode::Strict) => vec![
                Variant::mtls(Http, &MTLS_HTTP_ALPNS, &http),
                Variant::mtls(Tcp, &[], &tcp),
            ],
            (Class::Auto, Mode::Permissive) => vec![
                Variant::mtls(Http, &MTLS_HTTP_ALPNS, &http),
                Variant::plain(Http, RAW_BUFFER, &PLAIN_HTTP_ALPNS),
                Variant::mtls(Tcp, &MTLS_TCP_ALPNS, &tcp),
                Variant::plain(Tcp, RAW_BUFFER, &[]),
                Variant::plain(Tcp, TLS, &[]),
            ],
            (Class::Auto, Mode::Disable) => vec![
                Variant::plain(Http, RAW_BUFFER, &PLAIN_HTTP_ALPNS),
                Variant::plain(Tcp, RAW_BUFFER, &[]),
            ],
        }
    }

    /// The chains for ports the workload does not declare (to `InboundPassthroughCluster`):
    /// TCP variants; `None` for the plain default chain a proxy without SDS keeps.
    pub fn passthrough(&self, mode: Mode) -> Option<Vec<Variant>> {
        (self.sds || mode == Mode::Strict).then(|| self.variants(mode, Protocol::Tcp))
    }

    /// Istio's server context for mesh mTLS with the given ALPN. A client must carry a
    /// SPIFFE id of one of the trust domains Istio validates peers against: the mesh's
    /// own and its aliases (a prefix matcher `spiffe://<domain>/` each).
    fn context(&self, alpn: &[&str]) -> DownstreamTlsContext {
        let aliases = trust_domains_for_validation(self.mesh)
            .into_iter()
            .map(|alias| SubjectAltNameMatcher {
                san_type: SanType::Uri as i32,
                matcher: Some(StringMatcher {
                    match_pattern: Some(MatchPattern::Prefix(format!("spiffe://{alias}/"))),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        let mesh_mtls = self.mesh.mesh_m_tls.as_ref();
        let ciphers = match mesh_mtls {
            Some(m) if !m.cipher_suites.is_empty() => m.cipher_suites.clone(),
            _ => CIPHER_SUITES.iter().map(|s| s.to_string()).collect(),
        };
        let mut common = mesh_tls_context(alpn, aliases, ciphers);
        if mesh_mtls.is_some_and(|m| m.min_protocol_version == TlsVersion::Tlsv13)
            && let Some(params) = common.tls_params.as_mut()
        {
            params.tls_minimum_protocol_version = TlsProtocol::TlSv13 as i32;
        }
        DownstreamTlsContext {
            common_tls_context: Some(common),
            require_client_certificate: Some(BoolValue { value: true }),
            ..Default::default()
        }
    }
}

/// Istio's server context of a Gateway server in `ISTIO_MUTUAL` mode: the gateway's own
/// workload certificate, a client certificate required and verified against the mesh
/// roots — its SAN checked only against the server's `subjectAltNames`, when it names any
/// (Istio adds no trust-domain matchers on gateways) — and HTTP's ALPN.
pub fn gateway_context(
    subject_alt_names: &[String],
    cipher_suites: &[String],
) -> DownstreamTlsContext {
    let ciphers = if cipher_suites.is_empty() {
        CIPHER_SUITES.iter().map(|s| s.to_string()).collect()
    } else {
        cipher_suites.to_vec()
    };
    DownstreamTlsContext {
        common_tls_context: Some(mesh_tls_context(
            &SERVER_HTTP_ALPNS,
            san_matchers(subject_alt_names),
            ciphers,
        )),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    }
}

/// The trust domains a server accepts clients of, as Istio's `TrustDomainsForValidation`:
/// the mesh's own, then its aliases and the trust domains of `caCertificates`, each once.
fn trust_domains_for_validation(mesh: &MeshConfig) -> Vec<&str> {
    let mut domains = vec![super::trust_domain(mesh)];
    let more = mesh.trust_domain_aliases.iter().chain(
        mesh.ca_certificates
            .iter()
            .flat_map(|c| c.trust_domains.iter()),
    );
    for domain in more {
        if !domain.is_empty() && !domains.contains(&domain.as_str()) {
            domains.push(domain);
        }
    }
    domains
}

/// How Istio classes a port for its chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Http,
    Tcp,
    /// Undeclared: sniffed.
    Auto,
}

fn class(protocol: Protocol) -> Class {
    match protocol {
        p if p.is_http() => Class::Http,
        Protocol::Unknown => Class::Auto,
        _ => Class::Tcp,
    }
}

/// The plain-text chains of a proxy that cannot terminate mesh TLS: no transport match,
/// HTTP sniffed by ALPN on undeclared ports.
fn legacy(protocol: Protocol) -> Vec<Variant> {
    match class(protocol) {
        Class::Http => vec![Variant::plain(Carries::Http, "", &[])],
        Class::Tcp => vec![Variant::plain(Carries::Tcp, "", &[])],
        Class::Auto => vec![
            Variant::plain(Carries::Http, "", &HTTP_ALPNS),
            Variant::plain(Carries::Tcp, "", &[]),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;

    fn shapes(
        sds: bool,
        mode: Mode,
        protocol: Protocol,
    ) -> Vec<(Carries, &'static str, usize, bool)> {
        let mesh = MeshConfig::default();
        Inbound { sds, mesh: &mesh }
            .variants(mode, protocol)
            .into_iter()
            .map(|v| {
                (
                    v.carries,
                    v.transport_protocol,
                    v.application_protocols.len(),
                    v.tls.is_some(),
                )
            })
            .collect()
    }

    #[test]
    fn chains_per_mode_and_protocol() {
        use Carries::*;
        use Mode::*;
        assert_eq!(shapes(true, Strict, Protocol::Http), [(Http, TLS, 0, true)]);
        assert_eq!(
            shapes(true, Permissive, Protocol::Http),
            [(Http, TLS, 5, true), (Http, RAW_BUFFER, 0, false)]
        );
        assert_eq!(
            shapes(true, Disable, Protocol::Grpc),
            [(Http, RAW_BUFFER, 0, false)]
        );
        assert_eq!(shapes(true, Strict, Protocol::Tcp), [(Tcp, TLS, 0, true)]);
        assert_eq!(
            shapes(true, Permissive, Protocol::Mysql),
            [
                (Tcp, TLS, 5, true),
                (Tcp, TLS, 0, false),
                (Tcp, RAW_BUFFER, 0, false)
            ]
        );
        assert_eq!(
            shapes(true, Strict, Protocol::Unknown),
            [(Http, TLS, 3, true), (Tcp, TLS, 0, true)]
        );
        assert_eq!(shapes(true, Permissive, Protocol::Unknown).len(), 5);
        // Without SDS: the plain chains, and STRICT refuses.
        assert_eq!(
            shapes(false, Permissive, Protocol::Http),
            [(Http, "", 0, false)]
        );
        assert_eq!(
            shapes(false, Disable, Protocol::Unknown),
            [(Http, "", 3, false), (Tcp, "", 0, false)]
        );
        assert_eq!(
            shapes(false, Strict, Protocol::Http),
            [(Refused, "", 0, false)]
        );
    }

    #[test]
    fn the_server_context_requires_a_mesh_client_certificate() {
        let mesh = MeshConfig {
            trust_domain_aliases: vec!["old.example".into()],
            ..Default::default()
        };
        let inbound = Inbound {
            sds: true,
            mesh: &mesh,
        };
        let v = &inbound.variants(Mode::Strict, Protocol::Http)[0];
        let ctx = v.tls.as_ref().unwrap();
        assert_eq!(
            ctx.require_client_certificate,
            Some(BoolValue { value: true })
        );
        let common = ctx.common_tls_context.as_ref().unwrap();
        assert_eq!(common.alpn_protocols, ["h2", "http/1.1"]);
        assert_eq!(common.tls_certificate_sds_secret_configs[0].name, "default");
        let Some(ValidationContextType::CombinedValidationContext(v)) =
            &common.validation_context_type
        else {
            panic!("no combined validation context");
        };
        assert_eq!(
            v.validation_context_sds_secret_config
                .as_ref()
                .unwrap()
                .name,
            "ROOTCA"
        );
        let sans = &v
            .default_validation_context
            .as_ref()
            .unwrap()
            .match_typed_subject_alt_names;
        let prefixes: Vec<_> = sans
            .iter()
            .map(|m| {
                (
                    m.san_type,
                    m.matcher.as_ref().unwrap().match_pattern.clone(),
                )
            })
            .collect();
        let uri = SanType::Uri as i32;
        assert_eq!(
            prefixes,
            [
                (
                    uri,
                    Some(MatchPattern::Prefix("spiffe://cluster.local/".into()))
                ),
                (
                    uri,
                    Some(MatchPattern::Prefix("spiffe://old.example/".into()))
                ),
            ],
            "the mesh's trust domain, then each alias"
        );
    }

    #[test]
    fn mesh_mtls_sets_version_and_ciphers() {
        let mesh: MeshConfig = trellis_api::decode_mesh_config(
            "mesh.yaml",
            b"meshMTLS: {minProtocolVersion: TLSV1_3, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256]}",
        )
        .unwrap();
        let inbound = Inbound {
            sds: true,
            mesh: &mesh,
        };
        let v = &inbound.variants(Mode::Strict, Protocol::Tcp)[0];
        let common = v.tls.as_ref().unwrap().common_tls_context.as_ref().unwrap();
        let params = common.tls_params.as_ref().unwrap();
        assert_eq!(
            params.tls_minimum_protocol_version,
            TlsProtocol::TlSv13 as i32
        );
        assert_eq!(params.cipher_suites, ["ECDHE-RSA-AES128-GCM-SHA256"]);
    }

    #[test]
    fn apply_sets_match_and_socket() {
        let mesh = MeshConfig::default();
        let inbound = Inbound {
            sds: true,
            mesh: &mesh,
        };
        let v = &inbound.variants(Mode::Permissive, Protocol::Http)[0];
        let mut chain = FilterChain {
            filter_chain_match: Some(FilterChainMatch {
                destination_port: Some(envoy_types::pb::google::protobuf::UInt32Value {
                    value: 9080,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        v.apply(&mut chain);
        let m = chain.filter_chain_match.unwrap();
        assert_eq!(m.destination_port.unwrap().value, 9080);
        assert_eq!(m.transport_protocol, "tls");
        assert_eq!(m.application_protocols[0], "istio");
        assert!(chain.transport_socket.is_some());
        assert!(v.needs_tls_inspector());
    }
}
