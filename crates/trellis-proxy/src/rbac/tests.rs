//! RBAC as tables: policies written as Envoy protos (the shapes Istio's builder emits),
//! converted, and evaluated against request and connection attributes.

// Istio emits `metadata` and the `*_match` header specifiers, deprecated in Envoy's API.
#![allow(deprecated)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::{CidrRange, TypedExtensionConfig};
use envoy_types::pb::envoy::config::rbac::v3::permission::{Rule, Set as PermSet};
use envoy_types::pb::envoy::config::rbac::v3::principal::{
    Authenticated, Identifier, Set as IdSet,
};
use envoy_types::pb::envoy::config::rbac::v3::{Permission, Policy, Principal, Rbac as PbRules};
use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as PbHttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as PbNetworkRbac;
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::PathSegment;
use envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::path_segment::Segment;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    FilterStateMatcher, ListMatcher, MetadataMatcher, OrMatcher, PathMatcher, RegexMatcher,
    StringMatcher, ValueMatcher, filter_state_matcher, list_matcher, path_matcher, value_matcher,
};
use envoy_types::pb::envoy::r#type::v3::Int32Range;
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use hyper::HeaderMap;
use prost::{Message, Name};
use serde_json::json;

use super::config::Rules;
use super::convert::{http_rbac, network_rbac};
use super::matcher::{Attributes, Decision, Metadata, PeerIdentity, Request, evaluate};

// --- proto builders (Istio's shapes) ----------------------------------------------------

fn exact(s: &str) -> StringMatcher {
    StringMatcher {
        ignore_case: false,
        match_pattern: Some(MatchPattern::Exact(s.into())),
    }
}

fn regex(s: &str) -> StringMatcher {
    StringMatcher {
        ignore_case: false,
        match_pattern: Some(MatchPattern::SafeRegex(RegexMatcher {
            regex: s.into(),
            ..Default::default()
        })),
    }
}

fn prefix(s: &str) -> StringMatcher {
    StringMatcher {
        ignore_case: false,
        match_pattern: Some(MatchPattern::Prefix(s.into())),
    }
}

fn perm(rule: Rule) -> Permission {
    Permission { rule: Some(rule) }
}

fn id(identifier: Identifier) -> Principal {
    Principal {
        identifier: Some(identifier),
    }
}

fn and_rules(rules: Vec<Permission>) -> Permission {
    perm(Rule::AndRules(PermSet { rules }))
}

fn or_rules(rules: Vec<Permission>) -> Permission {
    perm(Rule::OrRules(PermSet { rules }))
}

fn not_rule(p: Permission) -> Permission {
    perm(Rule::NotRule(Box::new(p)))
}

fn and_ids(ids: Vec<Principal>) -> Principal {
    id(Identifier::AndIds(IdSet { ids }))
}

fn or_ids(ids: Vec<Principal>) -> Principal {
    id(Identifier::OrIds(IdSet { ids }))
}

fn header(name: &str, spec: HeaderMatchSpecifier) -> HeaderMatcher {
    HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

fn url_path(m: StringMatcher) -> Permission {
    perm(Rule::UrlPath(PathMatcher {
        rule: Some(path_matcher::Rule::Path(m)),
    }))
}

fn cidr(ip: &str, len: u32) -> CidrRange {
    CidrRange {
        address_prefix: ip.into(),
        prefix_len: Some(UInt32Value { value: len }),
    }
}

/// Istio's JWT claim matcher: `payload.<claim...>` as a string, or a list with one of them.
fn claim(path: &[&str], value: &str) -> Principal {
    let s = ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::StringMatch(exact(value))),
    };
    let list = ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::ListMatch(Box::new(
            ListMatcher {
                match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(s.clone()))),
            },
        ))),
    };
    id(Identifier::Metadata(MetadataMatcher {
        filter: "envoy.filters.http.jwt_authn".into(),
        path: std::iter::once("payload")
            .chain(path.iter().copied())
            .map(|k| PathSegment {
                segment: Some(Segment::Key(k.into())),
            })
            .collect(),
        value: Some(ValueMatcher {
            match_pattern: Some(value_matcher::MatchPattern::OrMatch(OrMatcher {
                value_matchers: vec![list, s],
            })),
        }),
        invert: false,
    }))
}

fn authenticated(m: StringMatcher) -> Principal {
    id(Identifier::Authenticated(Authenticated {
        principal_name: Some(m),
    }))
}

fn any_perm() -> Permission {
    perm(Rule::Any(true))
}

fn any_id() -> Principal {
    id(Identifier::Any(true))
}

fn policy(permissions: Vec<Permission>, principals: Vec<Principal>) -> Policy {
    Policy {
        permissions,
        principals,
        ..Default::default()
    }
}

fn rules(action: i32, policies: Vec<(&str, Policy)>) -> PbRules {
    PbRules {
        action,
        policies: policies
            .into_iter()
            .map(|(n, p)| (n.to_string(), p))
            .collect::<HashMap<_, _>>(),
        audit_logging_options: None,
    }
}

fn convert(action: i32, policies: Vec<(&str, Policy)>) -> Rules {
    http_rbac(
        &PbHttpRbac {
            rules: Some(rules(action, policies)),
            ..Default::default()
        },
        "test",
    )
    .unwrap()
    .rules
    .unwrap()
}

const ALLOW: i32 = 0;
const DENY: i32 = 1;
const LOG: i32 = 2;

// --- attributes ----------------------------------------------------------------------

struct Req {
    method: &'static str,
    path: &'static str,
    authority: &'static str,
    headers: HeaderMap,
    destination: SocketAddr,
    direct: SocketAddr,
    remote: IpAddr,
    peer: PeerIdentity,
    metadata: Metadata,
    http: bool,
}

fn req(path: &'static str) -> Req {
    Req {
        method: "GET",
        path,
        authority: "reviews:9080",
        headers: HeaderMap::new(),
        destination: "10.0.0.5:9080".parse().unwrap(),
        direct: "10.0.0.9:40000".parse().unwrap(),
        remote: "10.0.0.9".parse().unwrap(),
        peer: PeerIdentity::default(),
        metadata: Metadata::new(),
        http: true,
    }
}

impl Req {
    fn header(mut self, k: &'static str, v: &'static str) -> Req {
        self.headers.append(k, v.parse().unwrap());
        self
    }

    fn decide(&self, r: &Rules) -> Decision {
        let a = Attributes {
            destination: self.destination,
            direct_remote: self.direct,
            remote: self.remote,
            server_name: "",
            peer: &self.peer,
            request: self.http.then_some(Request {
                method: self.method,
                path: self.path,
                authority: self.authority,
                scheme: "http",
                headers: &self.headers,
            }),
            metadata: &self.metadata,
        };
        evaluate(r, &a)
    }

    fn allowed(&self, r: &Rules) -> bool {
        self.decide(r).allowed
    }
}

// --- tables --------------------------------------------------------------------------

#[test]
fn actions_allow_deny_log() {
    let p = || {
        vec![(
            "ns[foo]-policy[p]-rule[0]",
            policy(vec![url_path(exact("/admin"))], vec![any_id()]),
        )]
    };
    let allow = convert(ALLOW, p());
    let deny = convert(DENY, p());
    let log = convert(LOG, p());
    let name = Some("ns[foo]-policy[p]-rule[0]".to_string());
    let hit = req("/admin?x=1");
    let miss = req("/public");
    assert_eq!(
        hit.decide(&allow),
        Decision {
            allowed: true,
            matched_policy: name.clone()
        }
    );
    assert_eq!(
        miss.decide(&allow),
        Decision {
            allowed: false,
            matched_policy: None
        }
    );
    assert_eq!(
        hit.decide(&deny),
        Decision {
            allowed: false,
            matched_policy: name.clone()
        }
    );
    assert_eq!(
        miss.decide(&deny),
        Decision {
            allowed: true,
            matched_policy: None
        }
    );
    assert_eq!(
        hit.decide(&log),
        Decision {
            allowed: true,
            matched_policy: name
        }
    );
    assert_eq!(
        miss.decide(&log),
        Decision {
            allowed: true,
            matched_policy: None
        }
    );
    // No policies: ALLOW denies everything, DENY allows everything.
    assert!(!miss.allowed(&convert(ALLOW, vec![])));
    assert!(miss.allowed(&convert(DENY, vec![])));
}

#[test]
fn first_matching_policy_by_name_is_reported() {
    let r = convert(
        DENY,
        vec![
            ("b", policy(vec![any_perm()], vec![any_id()])),
            ("a", policy(vec![any_perm()], vec![any_id()])),
            ("c", policy(vec![url_path(exact("/never"))], vec![any_id()])),
        ],
    );
    assert_eq!(req("/").decide(&r).matched_policy.as_deref(), Some("a"));
}

#[test]
fn istio_match_never_policy() {
    // What Istio emits for an AuthorizationPolicy with no rules.
    let r = convert(
        ALLOW,
        vec![(
            "never",
            policy(
                vec![not_rule(any_perm())],
                vec![id(Identifier::NotId(Box::new(any_id())))],
            ),
        )],
    );
    assert!(!req("/").allowed(&r));
}

#[test]
fn permissions_combine_and_match_request_parts() {
    use HeaderMatchSpecifier as H;
    let cases: Vec<(&str, Permission, Req, bool)> = vec![
        (
            "and",
            and_rules(vec![
                url_path(prefix("/a")),
                perm(Rule::DestinationPort(9080)),
            ]),
            req("/a/b"),
            true,
        ),
        (
            "and fails",
            and_rules(vec![
                url_path(prefix("/a")),
                perm(Rule::DestinationPort(80)),
            ]),
            req("/a/b"),
            false,
        ),
        (
            "or",
            or_rules(vec![
                perm(Rule::DestinationPort(80)),
                perm(Rule::DestinationPort(9080)),
            ]),
            req("/"),
            true,
        ),
        (
            "not",
            not_rule(perm(Rule::DestinationPort(80))),
            req("/"),
            true,
        ),
        (
            "port range end exclusive",
            perm(Rule::DestinationPortRange(Int32Range {
                start: 9000,
                end: 9080,
            })),
            req("/"),
            false,
        ),
        (
            "port range",
            perm(Rule::DestinationPortRange(Int32Range {
                start: 9000,
                end: 9081,
            })),
            req("/"),
            true,
        ),
        (
            "destination ip",
            perm(Rule::DestinationIp(cidr("10.0.0.0", 24))),
            req("/"),
            true,
        ),
        (
            "destination ip outside",
            perm(Rule::DestinationIp(cidr("10.0.1.0", 24))),
            req("/"),
            false,
        ),
        (
            "url path ignores query",
            url_path(exact("/p")),
            req("/p?q=/x"),
            true,
        ),
        (
            "url path ignore case",
            url_path(StringMatcher {
                ignore_case: true,
                ..exact("/P")
            }),
            req("/p"),
            true,
        ),
        (
            "path header keeps the query",
            perm(Rule::Header(header(
                ":path",
                H::ExactMatch("/p?q=1".into()),
            ))),
            req("/p?q=1"),
            true,
        ),
        (
            "method",
            perm(Rule::Header(header(
                ":method",
                H::StringMatch(exact("GET")),
            ))),
            req("/"),
            true,
        ),
        (
            "authority ignore case",
            perm(Rule::Header(header(
                ":authority",
                H::StringMatch(StringMatcher {
                    ignore_case: true,
                    ..exact("REVIEWS:9080")
                }),
            ))),
            req("/"),
            true,
        ),
        (
            "authority present",
            perm(Rule::Header(header(":authority", H::PresentMatch(true)))),
            req("/"),
            true,
        ),
        (
            "header regex",
            perm(Rule::Header(header(
                "x-v",
                H::SafeRegexMatch(RegexMatcher {
                    regex: "v[0-9]".into(),
                    ..Default::default()
                }),
            ))),
            req("/").header("x-v", "v2"),
            true,
        ),
        (
            "header values joined",
            perm(Rule::Header(header("x-v", H::ExactMatch("a,b".into())))),
            req("/").header("x-v", "a").header("x-v", "b"),
            true,
        ),
        (
            "missing header",
            perm(Rule::Header(header("x-v", H::PrefixMatch("".into())))),
            req("/"),
            false,
        ),
        (
            "absent header",
            perm(Rule::Header(header("x-v", H::PresentMatch(false)))),
            req("/"),
            true,
        ),
        (
            "inverted",
            perm(Rule::Header(HeaderMatcher {
                invert_match: true,
                ..header("x-v", H::ExactMatch("a".into()))
            })),
            req("/").header("x-v", "b"),
            true,
        ),
        (
            "inverted missing",
            perm(Rule::Header(HeaderMatcher {
                invert_match: true,
                ..header("x-v", H::ExactMatch("a".into()))
            })),
            req("/"),
            true,
        ),
        (
            "missing as empty",
            perm(Rule::Header(HeaderMatcher {
                treat_missing_header_as_empty: true,
                ..header("x-v", H::StringMatch(exact("")))
            })),
            req("/"),
            true,
        ),
        (
            "sni without tls",
            perm(Rule::RequestedServerName(regex(".+"))),
            req("/"),
            false,
        ),
        (
            "sni empty",
            perm(Rule::RequestedServerName(exact(""))),
            req("/"),
            true,
        ),
    ];
    for (name, p, r, want) in cases {
        let rules = convert(ALLOW, vec![("p", policy(vec![p], vec![any_id()]))]);
        assert_eq!(r.allowed(&rules), want, "{name}");
    }
}

#[test]
fn uri_templates() {
    let template = |t: &str| {
        perm(Rule::UriTemplate(TypedExtensionConfig {
            name: "uri-template".into(),
            typed_config: Some(Any {
                type_url: UriTemplateMatchConfig::type_url(),
                value: UriTemplateMatchConfig {
                    path_template: t.into(),
                }
                .encode_to_vec(),
            }),
        }))
    };
    for (t, path, want) in [
        ("/path/template/*", "/path/template/x", true),
        ("/path/template/*", "/path/template/x/y", false),
        ("/path/template/*", "/path/template/", false),
        ("/**/path/template", "/a/b/path/template", true),
        ("/**/path/template", "/a/b/path/template/x", false),
        ("/api/{v}/items/{rest=**}", "/api/v1/items/a/b?q", true),
        ("/a.b/*", "/aXb/c", false),
    ] {
        let rules = convert(
            ALLOW,
            vec![("p", policy(vec![template(t)], vec![any_id()]))],
        );
        let mut r = req("/");
        r.path = path;
        assert_eq!(r.allowed(&rules), want, "{t} ~ {path}");
    }
}

#[test]
fn principals_identity_addresses_and_claims() {
    let mut mtls = req("/");
    mtls.peer.principal = Some("spiffe://cluster.local/ns/foo/sa/sleep".into());
    let mut forwarded = req("/");
    forwarded.remote = "1.2.3.4".parse().unwrap();
    let mut jwt = req("/");
    jwt.metadata.insert(
        "envoy.filters.http.jwt_authn".into(),
        json!({"payload": {"iss": "issuer", "sub": "alice", "aud": ["a", "b"], "groups": ["g1"], "nested": {"k": "v"}}})
            .as_object()
            .unwrap()
            .clone(),
    );
    let plain = req("/");
    let sa = r"spiffe://.+/ns/foo/(.+/|)sa/sleep(/.+)?";
    let cases: Vec<(&str, Principal, &Req, bool)> = vec![
        ("service account", authenticated(regex(sa)), &mtls, true),
        (
            "service account without mtls",
            authenticated(regex(sa)),
            &plain,
            false,
        ),
        (
            "namespace",
            authenticated(regex(".*/ns/foo/.*")),
            &mtls,
            true,
        ),
        (
            "other namespace",
            authenticated(regex(".*/ns/bar/.*")),
            &mtls,
            false,
        ),
        (
            "not authenticated",
            id(Identifier::NotId(Box::new(authenticated(regex(".+"))))),
            &plain,
            true,
        ),
        (
            "any authenticated",
            id(Identifier::Authenticated(Authenticated {
                principal_name: None,
            })),
            &mtls,
            true,
        ),
        (
            "filter state",
            id(Identifier::FilterState(FilterStateMatcher {
                key: "io.istio.peer_principal".into(),
                matcher: Some(filter_state_matcher::Matcher::StringMatch(prefix(
                    "spiffe://cluster.local/",
                ))),
            })),
            &mtls,
            true,
        ),
        (
            "filter state other key",
            id(Identifier::FilterState(FilterStateMatcher {
                key: "x".into(),
                matcher: Some(filter_state_matcher::Matcher::StringMatch(prefix(""))),
            })),
            &mtls,
            false,
        ),
        (
            "direct remote",
            id(Identifier::DirectRemoteIp(cidr("10.0.0.9", 32))),
            &forwarded,
            true,
        ),
        (
            "remote from xff",
            id(Identifier::RemoteIp(cidr("1.2.0.0", 16))),
            &forwarded,
            true,
        ),
        (
            "remote is not the peer",
            id(Identifier::RemoteIp(cidr("10.0.0.9", 32))),
            &forwarded,
            false,
        ),
        (
            "request principal",
            and_ids(vec![claim(&["iss"], "issuer"), claim(&["sub"], "alice")]),
            &jwt,
            true,
        ),
        (
            "request principal other sub",
            and_ids(vec![claim(&["iss"], "issuer"), claim(&["sub"], "bob")]),
            &jwt,
            false,
        ),
        (
            "anonymous has no claims",
            claim(&["iss"], "issuer"),
            &plain,
            false,
        ),
        ("audience in list", claim(&["aud"], "b"), &jwt, true),
        (
            "group",
            or_ids(vec![claim(&["groups"], "g0"), claim(&["groups"], "g1")]),
            &jwt,
            true,
        ),
        ("nested claim", claim(&["nested", "k"], "v"), &jwt, true),
        (
            "nested claim missing",
            claim(&["nested", "x"], "v"),
            &jwt,
            false,
        ),
    ];
    for (name, p, r, want) in cases {
        let rules = convert(ALLOW, vec![("p", policy(vec![any_perm()], vec![p]))]);
        assert_eq!(r.allowed(&rules), want, "{name}");
    }
}

#[test]
fn network_rbac_has_no_request() {
    let rbac = network_rbac(
        &PbNetworkRbac {
            rules: Some(rules(
                ALLOW,
                vec![(
                    "p",
                    policy(
                        vec![or_rules(vec![
                            url_path(exact("/")),
                            perm(Rule::DestinationPort(9080)),
                        ])],
                        vec![any_id()],
                    ),
                )],
            )),
            stat_prefix: "tcp.".into(),
            shadow_rules_stat_prefix: "istio_dry_run_allow_".into(),
            ..Default::default()
        },
        "chain",
    )
    .unwrap();
    assert_eq!(rbac.stat_prefix, "tcp.");
    let mut conn = req("/");
    conn.http = false;
    assert!(
        conn.allowed(rbac.rules.as_ref().unwrap()),
        "the port matches"
    );
    conn.destination.set_port(80);
    assert!(
        !conn.allowed(rbac.rules.as_ref().unwrap()),
        "no path without HTTP"
    );
}

#[test]
fn shadow_rules_convert_beside_rules() {
    let rbac = http_rbac(
        &PbHttpRbac {
            rules: Some(rules(
                ALLOW,
                vec![("a", policy(vec![any_perm()], vec![any_id()]))],
            )),
            shadow_rules: Some(rules(
                DENY,
                vec![("s", policy(vec![any_perm()], vec![any_id()]))],
            )),
            shadow_rules_stat_prefix: "istio_dry_run_allow_".into(),
            ..Default::default()
        },
        "l",
    )
    .unwrap();
    let shadow = rbac.shadow_rules.unwrap();
    assert_eq!(
        req("/").decide(&shadow),
        Decision {
            allowed: false,
            matched_policy: Some("s".into())
        }
    );
    assert!(req("/").allowed(&rbac.rules.unwrap()));
}

#[test]
fn unsupported_fields_are_rejected_by_name() {
    use envoy_types::pb::envoy::config::rbac::v3::rbac::AuditLoggingOptions;
    let with = |pol: Policy| {
        http_rbac(
            &PbHttpRbac {
                rules: Some(rules(ALLOW, vec![("p", pol)])),
                ..Default::default()
            },
            "l",
        )
        .unwrap_err()
    };
    let cases = [
        (
            with(Policy {
                condition: Some(Default::default()),
                ..policy(vec![any_perm()], vec![any_id()])
            }),
            "condition is not implemented",
        ),
        (with(policy(vec![], vec![any_id()])), "must not be empty"),
        (
            with(policy(
                vec![perm(Rule::Matcher(Default::default()))],
                vec![any_id()],
            )),
            "matcher is not implemented",
        ),
        (
            with(policy(
                vec![any_perm()],
                vec![id(Identifier::Custom(Default::default()))],
            )),
            "custom is not implemented",
        ),
        (
            with(policy(vec![url_path(regex("("))], vec![any_id()])),
            "invalid regex",
        ),
        (
            with(policy(
                vec![perm(Rule::DestinationIp(cidr("nope", 8)))],
                vec![any_id()],
            )),
            "is not an IP address",
        ),
        (
            http_rbac(
                &PbHttpRbac {
                    track_per_rule_stats: true,
                    ..Default::default()
                },
                "l",
            )
            .unwrap_err(),
            "track_per_rule_stats is not implemented",
        ),
        (
            http_rbac(
                &PbHttpRbac {
                    rules: Some(PbRules {
                        audit_logging_options: Some(AuditLoggingOptions::default()),
                        ..rules(ALLOW, vec![])
                    }),
                    ..Default::default()
                },
                "l",
            )
            .unwrap_err(),
            "audit_logging_options is not implemented",
        ),
        (
            network_rbac(
                &PbNetworkRbac {
                    enforcement_type: 1,
                    ..Default::default()
                },
                "l",
            )
            .unwrap_err(),
            "enforcement_type is not implemented",
        ),
        (
            http_rbac(
                &PbHttpRbac {
                    rules: Some(rules(7, vec![])),
                    ..Default::default()
                },
                "l",
            )
            .unwrap_err(),
            "unknown action 7",
        ),
    ];
    for (err, want) in cases {
        assert!(err.contains(want), "{err:?} lacks {want:?}");
        assert!(err.contains("envoy.filters."), "{err:?} names no filter");
    }
    // Deep nesting is refused rather than recursed into.
    let mut deep = any_perm();
    for _ in 0..100 {
        deep = not_rule(deep);
    }
    assert!(with(policy(vec![deep], vec![any_id()])).contains("nested deeper"));
}

#[test]
fn listeners_with_authz_filters_convert_and_unknown_ones_are_nacked() {
    use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
    use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpConfig;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, HttpFilter, Rds,
    };
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;

    fn any<T: Message + Name>(m: &T) -> Any {
        Any {
            type_url: T::type_url(),
            value: m.encode_to_vec(),
        }
    }
    let filter = |name: &str, config: Any| Filter {
        name: name.into(),
        config_type: Some(ConfigType::TypedConfig(config)),
    };
    let listener = |filters: Vec<Filter>| Listener {
        name: "l".into(),
        address: Some(Address {
            address: Some(AddressKind::SocketAddress(SocketAddress {
                address: "127.0.0.1".into(),
                port_specifier: Some(PortSpecifier::PortValue(9080)),
                ..Default::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters,
            ..Default::default()
        }],
        ..Default::default()
    };
    let tcp = filter(
        "envoy.filters.network.tcp_proxy",
        any(&TcpProxy {
            stat_prefix: "t".into(),
            cluster_specifier: Some(ClusterSpecifier::Cluster("c".into())),
            ..Default::default()
        }),
    );
    let net_rbac = filter(
        "envoy.filters.network.rbac",
        any(&PbNetworkRbac {
            rules: Some(rules(DENY, vec![])),
            stat_prefix: "tcp.".into(),
            ..Default::default()
        }),
    );
    let l =
        crate::convert::listener::listener(&listener(vec![net_rbac.clone(), tcp.clone()])).unwrap();
    assert_eq!(l.chains[0].rbac.len(), 1);
    let err = crate::convert::listener::listener(&listener(vec![
        filter("envoy.filters.network.ext_authz", Any::default()),
        tcp,
    ]))
    .unwrap_err();
    assert!(
        err.contains("network filter envoy.filters.network.ext_authz is not implemented"),
        "{err}"
    );

    let hcm = |filters: Vec<HttpFilter>| {
        listener(vec![filter(
            "envoy.filters.network.http_connection_manager",
            any(&HttpConnectionManager {
                stat_prefix: "h".into(),
                http_filters: filters,
                route_specifier: Some(RouteSpecifier::Rds(Rds {
                    route_config_name: "r".into(),
                    config_source: None,
                })),
                ..Default::default()
            }),
        )])
    };
    let http_filter = |name: &str, config: Any| HttpFilter {
        name: name.into(),
        config_type: Some(HttpConfig::TypedConfig(config)),
        ..Default::default()
    };
    let rbac = http_filter(
        "envoy.filters.http.rbac",
        any(&PbHttpRbac {
            rules: Some(rules(ALLOW, vec![])),
            ..Default::default()
        }),
    );
    let l = crate::convert::listener::listener(&hcm(vec![rbac.clone(), rbac])).unwrap();
    let crate::config::Network::Http(h) = &l.chains[0].network else {
        panic!("not HTTP")
    };
    assert_eq!(h.filters.len(), 2);
    let err = crate::convert::listener::listener(&hcm(vec![http_filter(
        "envoy.filters.http.ext_authz",
        Any::default(),
    )]))
    .unwrap_err();
    assert!(
        err.contains("HTTP filter envoy.filters.http.ext_authz is not implemented"),
        "{err}"
    );
    // A wrongly typed RBAC config names the expected type.
    let err = crate::convert::listener::listener(&hcm(vec![http_filter(
        "envoy.filters.http.rbac",
        any(&PbNetworkRbac::default()),
    )]))
    .unwrap_err();
    assert!(
        err.contains("expected envoy.extensions.filters.http.rbac.v3.RBAC"),
        "{err}"
    );
}
