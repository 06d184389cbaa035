//! What a TLS transport socket asks for, in the proxy's own terms: the parts of Envoy's
//! `DownstreamTlsContext` / `UpstreamTlsContext` that the translation emits (protocol
//! versions, cipher suites, ALPN, SAN matchers, SNI, whether a client certificate is
//! required). Certificates are never here: contexts name the workload identity (SDS
//! `default`) and the mesh roots (`ROOTCA`), which [`super::secrets`] holds. Also the pure
//! decisions over these: which ALPN a server answers, whether a peer's SANs pass, which
//! transport socket an endpoint gets, which ALPN an HTTP request's connection offers.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::StringMatch;
use crate::routing::string_matches;

/// TLS protocol versions (Envoy's `TlsParameters` bounds, as far as rustls goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    Tls12,
    Tls13,
}

/// What both sides of a mesh TLS context share.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonTls {
    /// Lowest and highest version, Envoy's defaults being TLS 1.2 and TLS 1.3.
    pub min: Version,
    pub max: Version,
    /// OpenSSL names of the TLS 1.2 suites allowed (empty: rustls' defaults). TLS 1.3
    /// suites are not configurable, in Envoy either.
    pub cipher_suites: Vec<String>,
    /// Offered (client) or accepted (server), in preference order.
    pub alpn: Vec<String>,
    /// The peer certificate, verified against the mesh roots (`ROOTCA`), must carry a SAN
    /// matching one of these (empty: any). The workload certificate (`default`) is always
    /// presented.
    pub sans: Vec<SanMatcher>,
}

/// `match_typed_subject_alt_names`: a matcher over the SANs of one type.
#[derive(Debug, Clone, PartialEq)]
pub struct SanMatcher {
    pub kind: SanKind,
    pub matcher: StringMatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanKind {
    Uri,
    Dns,
}

/// A filter chain's TLS termination.
#[derive(Debug, Clone, PartialEq)]
pub struct DownstreamTls {
    pub common: CommonTls,
    /// `require_client_certificate`: refuse clients without a (valid) certificate.
    pub require_client_certificate: bool,
}

/// A cluster's TLS origination.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTls {
    pub common: CommonTls,
    /// Sent as SNI; empty: none.
    pub sni: String,
}

/// The ALPN of Istio's mesh mTLS clusters (`h2` follows for HTTP/2 clusters).
const ISTIO_MESH_ALPN: [&str; 2] = ["istio-peer-exchange", "istio"];

impl UpstreamTls {
    /// The context for the HTTP requests of the cluster, whose pool speaks HTTP/2 when
    /// `http2`. Istio's sidecars replace the ALPN of their mesh mTLS clusters on HTTP
    /// connections (its `istio.alpn` HTTP filter, on every outbound connection manager) with
    /// `istio-h2, istio` or `istio-http/1.1, istio` after the upstream protocol, so that the
    /// server picks its HTTP chain where the port's protocol is undeclared (it matches
    /// `istio-http/1.0`, `istio-http/1.1`, `istio-h2`). Stock Envoy lacks that filter; the
    /// Trellis proxy applies it to every context with Istio's mesh ALPN. Other contexts
    /// (and the TCP proxy) keep theirs.
    pub fn for_http(self: &Arc<Self>, http2: bool) -> Arc<UpstreamTls> {
        let alpn = &self.common.alpn;
        let mesh = alpn.len() >= ISTIO_MESH_ALPN.len()
            && alpn.iter().zip(ISTIO_MESH_ALPN).all(|(a, b)| a == b)
            && alpn[ISTIO_MESH_ALPN.len()..].iter().all(|a| a == "h2");
        if !mesh {
            return self.clone();
        }
        let first = if http2 { "istio-h2" } else { "istio-http/1.1" };
        let mut spec = (**self).clone();
        spec.common.alpn = vec![first.to_string(), "istio".to_string()];
        Arc::new(spec)
    }
}

/// A certificate's subject alternative names, as far as matching goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sans {
    pub uris: Vec<String>,
    pub dns: Vec<String>,
}

impl Sans {
    /// The connection's principal, as Envoy takes it: the first URI SAN, else the first
    /// DNS SAN.
    pub fn principal(&self) -> Option<&str> {
        self.uris.first().or(self.dns.first()).map(String::as_str)
    }
}

/// Whether a peer with `sans` passes `matchers` (Envoy: any matcher against any SAN of its
/// type; no matcher accepts every peer).
pub fn sans_match(matchers: &[SanMatcher], sans: &Sans) -> bool {
    matchers.is_empty()
        || matchers.iter().any(|m| {
            let values = match m.kind {
                SanKind::Uri => &sans.uris,
                SanKind::Dns => &sans.dns,
            };
            values.iter().any(|v| string_matches(&m.matcher, v))
        })
}

/// Whether the server answers ALPN at all for a client offering `offered`: a TLS server
/// (Envoy's) that shares no protocol with the client carries on without ALPN rather than
/// failing the handshake, which rustls would do with its protocol list set.
pub fn alpn_overlaps(ours: &[String], offered: &[Vec<u8>]) -> bool {
    ours.iter()
        .any(|p| offered.iter().any(|o| o.as_slice() == p.as_bytes()))
}

/// One of a cluster's `transport_socket_matches`: endpoints whose
/// `envoy.transport_socket_match` metadata holds every pair of `criteria` get `tls`
/// (or plain text when `false`).
#[derive(Debug, Clone, PartialEq)]
pub struct SocketMatch {
    pub criteria: BTreeMap<String, String>,
    pub tls: bool,
}

/// A cluster's transport: matches first, then its own `transport_socket`. At most one TLS
/// context per cluster (what the translation emits); connections either use it or not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transport {
    pub matches: Vec<SocketMatch>,
    /// The cluster's `transport_socket` is TLS.
    pub default_tls: bool,
    pub tls: Option<Arc<UpstreamTls>>,
}

impl Transport {
    /// Whether connections to an endpoint with this `envoy.transport_socket_match` metadata
    /// use TLS: the first match whose criteria it holds wins, else the cluster's default.
    pub fn tls_for(&self, metadata: &BTreeMap<String, String>) -> bool {
        self.tls.is_some()
            && self
                .matches
                .iter()
                .find(|m| {
                    m.criteria
                        .iter()
                        .all(|(k, v)| metadata.get(k).is_some_and(|x| x == v))
                })
                .map_or(self.default_tls, |m| m.tls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(m: StringMatch) -> SanMatcher {
        SanMatcher {
            kind: SanKind::Uri,
            matcher: m,
        }
    }

    fn sans(uris: &[&str]) -> Sans {
        Sans {
            uris: uris.iter().map(|s| s.to_string()).collect(),
            dns: vec!["reviews.default.svc".into()],
        }
    }

    #[test]
    fn san_matchers_look_at_their_own_type() {
        let reviews = "spiffe://cluster.local/ns/default/sa/reviews";
        let exact = uri(StringMatch::Exact(reviews.into(), false));
        assert!(sans_match(std::slice::from_ref(&exact), &sans(&[reviews])));
        assert!(!sans_match(
            std::slice::from_ref(&exact),
            &sans(&["spiffe://cluster.local/ns/default/sa/ratings"])
        ));
        // Any matcher may match; none means any peer.
        let alias = uri(StringMatch::Prefix("spiffe://old.domain/".into(), false));
        assert!(sans_match(
            &[exact, alias],
            &sans(&["spiffe://old.domain/ns/a/sa/b"])
        ));
        assert!(sans_match(&[], &sans(&[])));
        // A DNS matcher does not look at URIs, nor a URI matcher at DNS names.
        let dns = SanMatcher {
            kind: SanKind::Dns,
            matcher: StringMatch::Exact(reviews.into(), false),
        };
        assert!(!sans_match(&[dns], &sans(&[reviews])));
        let by_uri = uri(StringMatch::Exact("reviews.default.svc".into(), false));
        assert!(!sans_match(&[by_uri], &sans(&[])));
    }

    #[test]
    fn the_principal_is_the_first_uri_san() {
        assert_eq!(
            sans(&["spiffe://td/ns/a/sa/b", "spiffe://td/ns/c/sa/d"]).principal(),
            Some("spiffe://td/ns/a/sa/b")
        );
        assert_eq!(sans(&[]).principal(), Some("reviews.default.svc"));
        assert_eq!(Sans::default().principal(), None);
    }

    #[test]
    fn alpn_is_answered_only_when_shared() {
        let ours = vec!["h2".to_string(), "http/1.1".to_string()];
        assert!(alpn_overlaps(&ours, &[b"istio".to_vec(), b"h2".to_vec()]));
        assert!(!alpn_overlaps(
            &ours,
            &[b"istio-peer-exchange".to_vec(), b"istio".to_vec()]
        ));
        assert!(!alpn_overlaps(&[], &[b"h2".to_vec()]));
    }

    fn upstream(alpn: &[&str]) -> Arc<UpstreamTls> {
        Arc::new(UpstreamTls {
            common: CommonTls {
                min: Version::Tls12,
                max: Version::Tls13,
                cipher_suites: vec![],
                alpn: alpn.iter().map(|s| s.to_string()).collect(),
                sans: vec![],
            },
            sni: "outbound_.9080_._.reviews.default.svc.cluster.local".into(),
        })
    }

    #[test]
    fn http_over_istio_mtls_offers_istios_http_alpn() {
        let http_alpn = |alpn: &[&str], http2| upstream(alpn).for_http(http2).common.alpn.clone();
        let mesh = ["istio-peer-exchange", "istio"];
        assert_eq!(http_alpn(&mesh, false), ["istio-http/1.1", "istio"]);
        assert_eq!(http_alpn(&mesh, true), ["istio-h2", "istio"]);
        // HTTP/2 clusters: Istio adds h2 to the mesh ALPN.
        let mesh_h2 = ["istio-peer-exchange", "istio", "h2"];
        assert_eq!(http_alpn(&mesh_h2, true), ["istio-h2", "istio"]);
        // Everything else keeps its own (DestinationRule SIMPLE/MUTUAL, other lists).
        assert_eq!(http_alpn(&["h2", "http/1.1"], true), ["h2", "http/1.1"]);
        assert_eq!(http_alpn(&["istio"], false), ["istio"]);
        assert_eq!(
            http_alpn(&["istio-peer-exchange", "istio", "foo"], false),
            ["istio-peer-exchange", "istio", "foo"]
        );
        assert!(http_alpn(&[], false).is_empty());
        // The rest of the context stays.
        let spec = upstream(&mesh);
        assert_eq!(spec.for_http(false).sni, spec.sni);
    }

    fn istio_auto() -> Transport {
        Transport {
            matches: vec![
                SocketMatch {
                    criteria: [("tlsMode".to_string(), "istio".to_string())].into(),
                    tls: true,
                },
                SocketMatch {
                    criteria: BTreeMap::new(),
                    tls: false,
                },
            ],
            default_tls: false,
            tls: Some(Arc::new(UpstreamTls {
                common: CommonTls {
                    min: Version::Tls12,
                    max: Version::Tls13,
                    cipher_suites: vec![],
                    alpn: vec![],
                    sans: vec![],
                },
                sni: String::new(),
            })),
        }
    }

    #[test]
    fn transport_socket_matches_pick_the_first_that_holds() {
        let t = istio_auto();
        let meta = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(t.tls_for(&meta(&[("tlsMode", "istio")])));
        assert!(t.tls_for(&meta(&[("tlsMode", "istio"), ("other", "x")])));
        assert!(!t.tls_for(&meta(&[("tlsMode", "disabled")])));
        assert!(!t.tls_for(&meta(&[])));
        // No match at all: the cluster's own socket.
        let only_istio = Transport {
            matches: t.matches[..1].to_vec(),
            default_tls: true,
            ..t.clone()
        };
        assert!(only_istio.tls_for(&meta(&[])));
        // No TLS context: never TLS.
        let plain = Transport { tls: None, ..t };
        assert!(!plain.tls_for(&meta(&[("tlsMode", "istio")])));
    }
}
