//! IST0130 / IST0131: VirtualService rules that can never be reached, and matches that an
//! earlier match already takes (the same match, or a prefix that covers it).
//!
//! Precedence is first-match: a rule without matches catches everything, so every later
//! rule is unreachable; a match equal (ignoring its name) to an earlier one is ineffective;
//! a rule whose matches are all ineffective is unreachable.

use std::collections::BTreeMap;

use trellis_api::Resource;
use trellis_api::istio::networking::{HttpMatchRequest, HttpRoute, StringMatch};

use super::super::messages as m;
use super::super::{Context, Message};

pub fn unreachable_rules(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, vs) in ctx.virtual_services() {
        let http: Vec<(String, Vec<(String, HttpMatchRequest)>)> = vs
            .http
            .iter()
            .enumerate()
            .map(|(i, h)| (http_rule_name(h, i), http_matches(h)))
            .collect();
        first_match(r, &http, out);
        prefix_overlaps(r, &vs.http, out);
        let tcp: Vec<_> = vs
            .tcp
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("#{i}"), numbered(&t.r#match)))
            .collect();
        first_match(r, &tcp, out);
        let tls: Vec<_> = vs
            .tls
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("#{i}"), numbered(&t.r#match)))
            .collect();
        first_match(r, &tls, out);
    }
}

fn http_rule_name(h: &HttpRoute, i: usize) -> String {
    if h.name.is_empty() {
        format!("#{i}")
    } else {
        m::quote(&h.name)
    }
}

fn match_name(mr: &HttpMatchRequest, i: usize) -> String {
    if mr.name.is_empty() {
        format!("#{i}")
    } else {
        m::quote(&mr.name)
    }
}

/// The matches of an http rule, named, with the name cleared so that equal matches compare
/// equal.
fn http_matches(h: &HttpRoute) -> Vec<(String, HttpMatchRequest)> {
    h.r#match
        .iter()
        .enumerate()
        .map(|(i, mr)| {
            let mut key = mr.clone();
            key.name.clear();
            (match_name(mr, i), key)
        })
        .collect()
}

fn numbered<T: Clone>(matches: &[T]) -> Vec<(String, T)> {
    matches
        .iter()
        .enumerate()
        .map(|(i, mr)| (format!("#{i}"), mr.clone()))
        .collect()
}

/// The first-match rules, for any kind of route: `rules` is `(rule name, [(match name,
/// match)])` in order.
fn first_match<T: PartialEq>(
    r: &Resource,
    rules: &[(String, Vec<(String, T)>)],
    out: &mut Vec<Message>,
) {
    let mut seen: Vec<(&T, usize)> = Vec::new();
    let mut catch_all = false;
    for (i, (name, matches)) in rules.iter().enumerate() {
        if matches.is_empty() {
            if catch_all {
                out.push(m::unreachable_rule(
                    r,
                    name,
                    "only the last rule can have no matches",
                ));
            }
            catch_all = true;
            continue;
        }
        let mut dups = 0;
        for (mname, mr) in matches {
            if catch_all {
                out.push(m::unreachable_rule(
                    r,
                    name,
                    "route without matches defined before",
                ));
                continue;
            }
            if let Some((_, earlier)) = seen.iter().find(|(s, _)| *s == mr) {
                out.push(m::ineffective_match(r, name, mname, &rules[*earlier].0));
                dups += 1;
                continue;
            }
            seen.push((mr, i));
        }
        if dups == matches.len() {
            out.push(m::unreachable_rule(
                r,
                name,
                "all matches used by prior rules",
            ));
        }
    }
}

/// A uri-prefix match reduced to what decides whether an earlier one covers it.
struct PrefixMatch {
    rule: String,
    name: String,
    prefix: String,
    port: u32,
    method: String,
    authority: String,
    headers: BTreeMap<String, String>,
    query: BTreeMap<String, String>,
    without_headers: BTreeMap<String, String>,
}

fn exact_or_prefix(s: Option<&StringMatch>) -> String {
    match s {
        Some(StringMatch { exact: Some(e), .. }) if !e.is_empty() => format!("exact:{e}"),
        Some(StringMatch {
            prefix: Some(p), ..
        }) if !p.is_empty() => format!("prefix:{p}"),
        _ => String::new(),
    }
}

fn reduce(map: &BTreeMap<String, StringMatch>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| (k.clone(), exact_or_prefix(Some(v))))
        .collect()
}

fn prefix_match(
    h: &HttpRoute,
    rule: usize,
    mr: &HttpMatchRequest,
    i: usize,
) -> Option<PrefixMatch> {
    let prefix = mr.uri.as_ref()?.prefix.as_ref().filter(|p| !p.is_empty())?;
    let mut method = exact_or_prefix(mr.method.as_ref());
    if method.is_empty() {
        method = "exact:GET".to_string();
    }
    Some(PrefixMatch {
        rule: http_rule_name(h, rule),
        name: match_name(mr, i),
        prefix: prefix.clone(),
        port: mr.port,
        method,
        authority: exact_or_prefix(mr.authority.as_ref()),
        headers: reduce(&mr.headers),
        query: reduce(&mr.query_params),
        without_headers: reduce(&mr.without_headers),
    })
}

/// Whether every request `b` matches is matched by the earlier `a`.
fn covered(a: &PrefixMatch, b: &PrefixMatch) -> bool {
    let value_ok = |va: &String, vb: &String| va == vb || va.starts_with(vb.as_str());
    let map_ok = |ma: &BTreeMap<String, String>, mb: &BTreeMap<String, String>| {
        ma.len() == mb.len()
            && ma
                .iter()
                .all(|(k, va)| mb.get(k).is_some_and(|vb| value_ok(va, vb)))
    };
    b.prefix.starts_with(&a.prefix)
        && a.port == b.port
        && value_ok(&a.method, &b.method)
        && value_ok(&a.authority, &b.authority)
        && map_ok(&a.headers, &b.headers)
        && map_ok(&a.query, &b.query)
        && map_ok(&a.without_headers, &b.without_headers)
}

/// IST0131 for uri-prefix matches that an earlier, shorter prefix already takes.
fn prefix_overlaps(r: &Resource, http: &[HttpRoute], out: &mut Vec<Message>) {
    let mut seen: Vec<HttpMatchRequest> = Vec::new();
    let mut prefixes = Vec::new();
    let mut catch_all = false;
    for (i, h) in http.iter().enumerate() {
        if h.r#match.is_empty() {
            catch_all = true;
            continue;
        }
        for (j, mr) in h.r#match.iter().enumerate() {
            if catch_all {
                continue;
            }
            let mut key = mr.clone();
            key.name.clear();
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            prefixes.extend(prefix_match(h, i, mr, j));
        }
    }
    for (ai, a) in prefixes.iter().enumerate() {
        for b in &prefixes[ai + 1..] {
            if a.prefix != b.prefix && covered(a, b) {
                out.push(m::ineffective_match(
                    r,
                    &b.rule,
                    &format!("{} of prefix {}", b.name, b.prefix),
                    &format!("{} of prefix {} on {}", a.name, a.prefix, a.rule),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use trellis_api::istio::mesh::MeshConfig;

    use super::super::super::{Input, analyze_input};

    fn run(yaml: &str) -> Vec<String> {
        let decoded = trellis_api::decode_bytes("t.yaml", yaml.as_bytes(), "default");
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        let mesh = MeshConfig::default();
        let input = Input {
            resources: &decoded.resources,
            mesh: &mesh,
            decode_errors: &[],
        };
        analyze_input(&input, |n| n == "virtualservice.UnreachableRulesAnalyzer")
            .into_iter()
            .map(|m| format!("{} {}", m.code, m.message))
            .collect()
    }

    const HEAD: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec:\n  hosts: [a]\n  http:\n";

    #[test]
    fn a_catch_all_rule_shadows_every_later_rule() {
        let got = run(&format!(
            "{HEAD}  - route: [{{destination: {{host: a}}}}]\n  - match: [{{uri: {{exact: /x}}}}]\n    route: [{{destination: {{host: a}}}}]\n"
        ));
        assert_eq!(
            got,
            ["IST0130 VirtualService rule #1 not used (route without matches defined before)."]
        );
    }

    #[test]
    fn a_repeated_match_is_ineffective_and_its_rule_unreachable() {
        let got = run(&format!(
            "{HEAD}  - match: [{{uri: {{exact: /x}}}}]\n    route: [{{destination: {{host: a}}}}]\n  - name: again\n    match: [{{name: m, uri: {{exact: /x}}}}]\n    route: [{{destination: {{host: a}}}}]\n"
        ));
        assert_eq!(
            got,
            [
                "IST0130 VirtualService rule \"again\" not used (all matches used by prior rules).",
                "IST0131 VirtualService rule \"again\" match \"m\" is not used (duplicate/overlapping match in rule #0).",
            ]
        );
    }

    #[test]
    fn a_shorter_prefix_first_covers_a_longer_one() {
        let got = run(&format!(
            "{HEAD}  - match: [{{uri: {{prefix: /a}}}}]\n    route: [{{destination: {{host: a}}}}]\n  - match: [{{uri: {{prefix: /ab}}}}]\n    route: [{{destination: {{host: a}}}}]\n"
        ));
        assert_eq!(
            got,
            [
                "IST0131 VirtualService rule #1 match #0 of prefix /ab is not used (duplicate/overlapping match in rule #0 of prefix /a on #0)."
            ]
        );
        // The longer prefix first is fine.
        let got = run(&format!(
            "{HEAD}  - match: [{{uri: {{prefix: /ab}}}}]\n    route: [{{destination: {{host: a}}}}]\n  - match: [{{uri: {{prefix: /a}}}}]\n    route: [{{destination: {{host: a}}}}]\n"
        ));
        assert!(got.is_empty(), "{got:?}");
    }
}
