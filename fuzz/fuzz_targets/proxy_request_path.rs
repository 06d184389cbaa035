//! Arbitrary requests through the proxy's own request-path code (hyper's parser is not
//! ours): method, authority, path and headers, one per line (`name: value` for headers),
//! against a fixed configuration — the RouteConfiguration the control plane translates for
//! bookinfo's `virtual-service-reviews-jason-v2-v3` (`fixtures/`, port 9080), plus one
//! virtual host with rewrites, a redirect, header mutations and a CORS policy. Each request
//! goes through path normalization, virtual host and route matching, the CORS filter's
//! decision, the upgrade check, and the route's rewrites, redirect and header mutations.
//! Any panic is a bug.
#![no_main]

use std::sync::OnceLock;

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use trellis_proxy::config::{Action, RouteConfig};
use trellis_proxy::{convert, cors, http, routing, upgrade};

const FIXTURE: &[u8] = include_bytes!("../fixtures/routes-9080-reviews-jason.pb");
fn configs() -> &'static [RouteConfig] {
    static CONFIGS: OnceLock<Vec<RouteConfig>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let fixture = RouteConfiguration::decode(FIXTURE).expect("fixture decodes");
        [fixture, rewrites()]
            .iter()
            .map(|rc| convert::route::route_configuration(rc).expect("fixture converts"))
            .collect()
    })
}

/// Routes with what the bookinfo fixture lacks: prefix and regex rewrites, a redirect,
/// header mutations and a CORS policy (as Istio translates them).
fn rewrites() -> RouteConfiguration {
    use envoy_types::pb::envoy::config::core::v3::{HeaderValue as PbHeader, HeaderValueOption};
    use envoy_types::pb::envoy::config::route::v3::redirect_action::PathRewriteSpecifier;
    use envoy_types::pb::envoy::config::route::v3::route::Action as PbAction;
    use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
    use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
    use envoy_types::pb::envoy::config::route::v3::{
        RedirectAction, Route, RouteAction, RouteMatch, VirtualHost,
    };
    use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
    use envoy_types::pb::envoy::r#type::matcher::v3::{
        RegexMatchAndSubstitute, RegexMatcher, StringMatcher,
    };
    let matcher = |p: PathSpecifier| {
        Some(RouteMatch {
            path_specifier: Some(p),
            ..Default::default()
        })
    };
    let forward = |prefix_rewrite: &str, regex: Option<(&str, &str)>| {
        Some(PbAction::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster("c".into())),
            prefix_rewrite: prefix_rewrite.into(),
            regex_rewrite: regex.map(|(re, sub)| RegexMatchAndSubstitute {
                pattern: Some(RegexMatcher {
                    regex: re.into(),
                    ..Default::default()
                }),
                substitution: sub.into(),
            }),
            ..Default::default()
        }))
    };
    let mut cors = Route {
        r#match: matcher(PathSpecifier::Prefix("/cors".into())),
        action: forward("", None),
        ..Default::default()
    };
    cors.typed_per_filter_config.insert(
        "envoy.filters.http.cors".into(),
        envoy_types::util::pack_any(CorsPolicy {
            allow_origin_string_match: vec![StringMatcher {
                match_pattern: Some(MatchPattern::Prefix("https://".into())),
                ignore_case: true,
            }],
            allow_methods: "*".into(),
            allow_headers: "*".into(),
            expose_headers: "x-a".into(),
            max_age: "60".into(),
            ..Default::default()
        }),
    );
    let set = |k: &str, v: &str| HeaderValueOption {
        header: Some(PbHeader {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    RouteConfiguration {
        name: "rewrites".into(),
        virtual_hosts: vec![VirtualHost {
            name: "rewrites".into(),
            domains: vec!["*".into()],
            routes: vec![
                cors,
                Route {
                    r#match: matcher(PathSpecifier::Prefix("/old".into())),
                    action: Some(PbAction::Redirect(RedirectAction {
                        host_redirect: "example.com".into(),
                        port_redirect: 8080,
                        path_rewrite_specifier: Some(PathRewriteSpecifier::PrefixRewrite(
                            "/new".into(),
                        )),
                        ..Default::default()
                    })),
                    ..Default::default()
                },
                Route {
                    r#match: matcher(PathSpecifier::SafeRegex(RegexMatcher {
                        regex: "/re/[a-z]+/.*".into(),
                        ..Default::default()
                    })),
                    action: forward("", Some(("^/re/([a-z]+)/(.*)$", "/\\2/\\1"))),
                    ..Default::default()
                },
                Route {
                    r#match: matcher(PathSpecifier::Prefix("/".into())),
                    action: forward("/v1/", None),
                    request_headers_to_add: vec![set("x-added", "1")],
                    request_headers_to_remove: vec!["cookie".into()],
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or("GET");
    let authority = lines.next().unwrap_or("");
    let raw_path = lines.next().unwrap_or("/");
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(n, v);
        }
    }
    let path = if raw_path.starts_with('/') {
        http::normalize(raw_path)
    } else {
        raw_path.to_string()
    };
    for rc in configs() {
        let Some(vh) = routing::virtual_host(rc, authority) else {
            continue;
        };
        let Some(route) = routing::route(vh, &path, &headers) else {
            continue;
        };
        let _ = cors::filter(true, route.cors.as_deref(), method, &headers);
        let _ = upgrade::refused(
            &upgrade::Upgrades::default(),
            route,
            hyper::Version::HTTP_11,
            &headers,
        );
        let mut request_headers = headers.clone();
        http::mutate(
            &mut request_headers,
            &route.headers.request_add,
            &route.headers.request_remove,
        );
        match &route.action {
            Action::Forward(f) => {
                let _ = http::rewrite_path(f, route, &path);
            }
            Action::Redirect(r) => {
                let _ = http::redirect(r, authority, &path);
            }
            Action::Direct { .. } => {}
        }
    }
});
