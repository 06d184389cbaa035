//! Route selection as Envoy does it, as pure functions: the virtual host by `:authority`
//! (exact domain, then the longest `*.suffix`, then the longest `prefix.*`, then `*`), then
//! the first route whose path, header and query matchers all match.

use hyper::HeaderMap;

use crate::config::{
    Action, HeaderMatcher, PathMatch, QueryMatcher, Route, RouteConfig, RouteMatch, StringMatch,
    VirtualHost,
};

pub fn virtual_host<'a>(rc: &'a RouteConfig, authority: &str) -> Option<&'a VirtualHost> {
    let mut host = authority.to_ascii_lowercase();
    if rc.ignore_port_in_host_matching {
        host = strip_port(&host).to_string();
    }
    find_domain(rc, &host)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn find_domain<'a>(rc: &'a RouteConfig, host: &str) -> Option<&'a VirtualHost> {
    if let Some(vh) = rc.exact_domain(host) {
        return Some(vh);
    }
    let mut best: Option<(u8, usize, &VirtualHost)> = None;
    for vh in &rc.virtual_hosts {
        for d in &vh.domains {
            let rank = if d == "*" {
                Some((0, 0))
            } else if let Some(suffix) = d.strip_prefix('*') {
                (host.len() > suffix.len() && host.ends_with(suffix)).then_some((2, d.len()))
            } else if let Some(prefix) = d.strip_suffix('*') {
                (host.len() > prefix.len() && host.starts_with(prefix)).then_some((1, d.len()))
            } else {
                None
            };
            if let Some((class, len)) = rank
                && best.is_none_or(|(c, l, _)| (class, len) > (c, l))
            {
                best = Some((class, len, vh));
            }
        }
    }
    best.map(|(_, _, vh)| vh)
}

/// The first route that matches `path` (with its query) and `headers`.
pub fn route<'a>(
    vh: &'a VirtualHost,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Option<&'a Route> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    vh.routes
        .iter()
        .find(|r| route_matches(&r.matcher, path, query, headers))
}

/// A forwarding route's cluster when it has exactly one (weighted routes choose theirs
/// per request): what a request refused before routing is logged with.
pub fn sole_cluster(route: &Route) -> Option<String> {
    match &route.action {
        Action::Forward(f) => match f.clusters.as_slice() {
            [(name, _)] => Some(name.clone()),
            _ => None,
        },
        _ => None,
    }
}

pub fn route_matches(m: &RouteMatch, path: &str, query: &str, headers: &HeaderMap) -> bool {
    path_matches(&m.path, m.case_sensitive, path)
        && m.headers.iter().all(|h| header_matches(h, headers))
        && m.query.iter().all(|q| query_matches(q, query))
}

fn path_matches(m: &PathMatch, case_sensitive: bool, path: &str) -> bool {
    let eq_prefix = |prefix: &str| {
        path.len() >= prefix.len()
            && path.is_char_boundary(prefix.len())
            && if case_sensitive {
                path.starts_with(prefix)
            } else {
                path[..prefix.len()].eq_ignore_ascii_case(prefix)
            }
    };
    match m {
        PathMatch::Prefix(p) => eq_prefix(p),
        PathMatch::Exact(p) => {
            if case_sensitive {
                path == p
            } else {
                path.eq_ignore_ascii_case(p)
            }
        }
        PathMatch::SeparatedPrefix(p) => {
            eq_prefix(p) && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
        }
        PathMatch::Regex(re) => re.is_match(path),
    }
}

fn header_matches(m: &HeaderMatcher, headers: &HeaderMap) -> bool {
    let values: Vec<&str> = headers
        .get_all(m.name.as_str())
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let result = if m.absent {
        values.is_empty()
    } else if values.is_empty() {
        false
    } else {
        match &m.value {
            None => true,
            // Envoy matches several values of one header joined by commas.
            Some(sm) => string_matches(sm, &values.join(",")),
        }
    };
    result != m.invert
}

fn query_matches(m: &QueryMatcher, query: &str) -> bool {
    let value = query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == m.name).then_some(v)
    });
    match (value, &m.value) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(v), Some(sm)) => string_matches(sm, v),
    }
}

pub fn string_matches(m: &StringMatch, value: &str) -> bool {
    let cmp = |s: &str, ic: bool, f: fn(&str, &str) -> bool| {
        if ic {
            f(&value.to_ascii_lowercase(), &s.to_ascii_lowercase())
        } else {
            f(value, s)
        }
    };
    match m {
        StringMatch::Exact(s, ic) => cmp(s, *ic, |a, b| a == b),
        StringMatch::Prefix(s, ic) => cmp(s, *ic, |a, b| a.starts_with(b)),
        StringMatch::Suffix(s, ic) => cmp(s, *ic, |a, b| a.ends_with(b)),
        StringMatch::Contains(s, ic) => cmp(s, *ic, |a, b| a.contains(b)),
        StringMatch::Regex(re) => re.is_match(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Action, HeaderMutations};

    fn vh(name: &str, domains: &[&str], routes: Vec<Route>) -> VirtualHost {
        VirtualHost {
            name: name.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            routes,
        }
    }

    fn r(
        name: &str,
        path: PathMatch,
        headers: Vec<HeaderMatcher>,
        query: Vec<QueryMatcher>,
    ) -> Route {
        Route {
            name: name.into(),
            matcher: RouteMatch {
                path,
                case_sensitive: true,
                headers,
                query,
            },
            action: Action::Direct {
                status: 200,
                body: None,
            },
            headers: HeaderMutations::default(),
            fault: None,
            cors: None,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn domains_exact_then_suffix_then_prefix_then_any() {
        let rc = RouteConfig::new(
            "80".into(),
            vec![
                vh("any", &["*"], vec![]),
                vh("suffix", &["*.example.com"], vec![]),
                vh("prefix", &["api.*"], vec![]),
                vh("exact", &["reviews", "reviews:9080"], vec![]),
            ],
            false,
        );
        let name = |host: &str| virtual_host(&rc, host).map(|v| v.name.clone());
        assert_eq!(name("reviews").as_deref(), Some("exact"));
        assert_eq!(name("Reviews:9080").as_deref(), Some("exact"));
        assert_eq!(name("reviews:1234").as_deref(), Some("any"));
        assert_eq!(name("api.example.com").as_deref(), Some("suffix"));
        assert_eq!(name("api.local").as_deref(), Some("prefix"));
        assert_eq!(name("other").as_deref(), Some("any"));
        let strict = RouteConfig::new(
            rc.name.clone(),
            vec![vh("exact", &["reviews"], vec![])],
            true,
        );
        assert_eq!(virtual_host(&strict, "reviews:1234").unwrap().name, "exact");
        assert!(virtual_host(&strict, "ratings").is_none());
    }

    #[test]
    fn first_matching_route_wins_with_paths_headers_and_queries() {
        let jason = HeaderMatcher {
            name: "end-user".into(),
            value: Some(StringMatch::Exact("jason".into(), false)),
            absent: false,
            invert: false,
        };
        let not_test = HeaderMatcher {
            name: "x-test".into(),
            value: Some(StringMatch::Prefix("t".into(), false)),
            absent: false,
            invert: true,
        };
        let q = QueryMatcher {
            name: "v".into(),
            value: Some(StringMatch::Regex(regex::Regex::new("^[0-9]+$").unwrap())),
        };
        let host = vh(
            "h",
            &["*"],
            vec![
                r("jason", PathMatch::Prefix("/".into()), vec![jason], vec![]),
                r("exact", PathMatch::Exact("/exact".into()), vec![], vec![]),
                r("query", PathMatch::Prefix("/q".into()), vec![], vec![q]),
                r(
                    "sep",
                    PathMatch::SeparatedPrefix("/api".into()),
                    vec![],
                    vec![],
                ),
                r(
                    "regex",
                    PathMatch::Regex(crate::convert::regex("/r/[a-z]+", "t").unwrap()),
                    vec![],
                    vec![],
                ),
                r(
                    "inverted",
                    PathMatch::Prefix("/".into()),
                    vec![not_test],
                    vec![],
                ),
            ],
        );
        let pick = |path: &str, h: &[(&str, &str)]| {
            route(&host, path, &headers(h)).map(|r| r.name.clone())
        };
        assert_eq!(
            pick("/x", &[("end-user", "jason")]).as_deref(),
            Some("jason")
        );
        assert_eq!(pick("/exact", &[]).as_deref(), Some("exact"));
        assert_eq!(pick("/exact?a=b", &[]).as_deref(), Some("exact"));
        assert_eq!(pick("/q?v=12", &[]).as_deref(), Some("query"));
        assert_eq!(pick("/q?v=x", &[]).as_deref(), Some("inverted"));
        assert_eq!(pick("/api/v1", &[]).as_deref(), Some("sep"));
        assert_eq!(pick("/apix", &[]).as_deref(), Some("inverted"));
        assert_eq!(pick("/r/abc", &[]).as_deref(), Some("regex"));
        assert_eq!(pick("/r/abc/d", &[]).as_deref(), Some("inverted"));
        assert_eq!(pick("/x", &[("x-test", "true")]), None);
    }

    #[test]
    fn case_insensitive_paths_and_presence() {
        let mut exact = r("e", PathMatch::Exact("/Ratings".into()), vec![], vec![]);
        exact.matcher.case_sensitive = false;
        let absent = r(
            "absent",
            PathMatch::Prefix("/".into()),
            vec![HeaderMatcher {
                name: "x-canary".into(),
                value: None,
                absent: true,
                invert: false,
            }],
            vec![],
        );
        let host = vh("h", &["*"], vec![exact, absent]);
        assert_eq!(route(&host, "/ratings", &headers(&[])).unwrap().name, "e");
        assert_eq!(
            route(&host, "/other", &headers(&[])).unwrap().name,
            "absent"
        );
        assert!(route(&host, "/other", &headers(&[("x-canary", "1")])).is_none());
        assert!(string_matches(
            &StringMatch::Suffix("SON".into(), true),
            "jason"
        ));
        assert!(!string_matches(
            &StringMatch::Contains("zz".into(), false),
            "jason"
        ));
    }
}
