//! Rules never reached: a catch-all before other rules, or a repeated match, is a warning,
//! as in Istio.

use trellis_api::istio::networking::{HttpMatchRequest, HttpRoute};

use crate::validate::Report;
use crate::validate::report::idx;

/// Canonical form of a match for duplicate detection (the name does not route).
pub(super) fn match_key(m: &HttpMatchRequest) -> String {
    let mut m = m.clone();
    m.name.clear();
    serde_json::to_string(&m).unwrap_or_default()
}

/// Warns about HTTP rules that can never be reached: anything after a catch-all, and rules
/// whose every match repeats an earlier one.
pub(super) fn warn_unreachable_http(r: &mut Report, routes: &[HttpRoute]) {
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut catch_all = false;
    for (i, route) in routes.iter().enumerate() {
        let name = route_name(&route.name, i);
        let path = idx("spec", "http", i);
        if route.r#match.is_empty() {
            if catch_all {
                r.warn(
                    &path,
                    format!(
                        "virtualService rule {name} not used (only the last rule can have no matches)"
                    ),
                );
            }
            catch_all = true;
            continue;
        }
        let mut dups = 0;
        for (j, m) in route.r#match.iter().enumerate() {
            if catch_all {
                r.warn(
                    &path,
                    format!(
                        "virtualService rule {name} not used (route without matches defined before)"
                    ),
                );
                continue;
            }
            let k = match_key(m);
            if let Some((_, earlier)) = seen.iter().find(|(s, _)| *s == k) {
                let earlier_name = route_name(&routes[*earlier].name, *earlier);
                r.warn(
                    &idx(&path, "match", j),
                    format!(
                        "virtualService rule {name} match {} is not used (duplicate/overlapping match in rule {earlier_name})",
                        route_name(&m.name, j)
                    ),
                );
                dups += 1;
            } else {
                seen.push((k, i));
            }
        }
        if dups == route.r#match.len() {
            r.warn(
                &path,
                format!("virtualService rule {name} not used (all matches used by prior rules)"),
            );
        }
    }
}

pub(super) fn warn_unreachable_l4<'a, M: serde::Serialize + 'a>(
    r: &mut Report,
    base: &str,
    routes: impl Iterator<Item = &'a [M]>,
) {
    let mut seen: Vec<String> = Vec::new();
    let mut catch_all = false;
    for (i, matches) in routes.enumerate() {
        let path = format!("{base}[{i}]");
        if matches.is_empty() {
            if catch_all {
                r.warn(
                    &path,
                    format!(
                        "virtualService rule #{i} not used (only the last rule can have no matches)"
                    ),
                );
            }
            catch_all = true;
            continue;
        }
        let mut dups = 0;
        for m in matches {
            if catch_all {
                r.warn(
                    &path,
                    format!(
                        "virtualService rule #{i} not used (route without matches defined before)"
                    ),
                );
                continue;
            }
            let k = serde_json::to_string(m).unwrap_or_default();
            if seen.contains(&k) {
                dups += 1;
            } else {
                seen.push(k);
            }
        }
        if dups == matches.len() {
            r.warn(
                &path,
                format!("virtualService rule #{i} not used (all matches used by prior rules)"),
            );
        }
    }
}

pub(super) fn route_name(name: &str, i: usize) -> String {
    if name.is_empty() {
        format!("#{i}")
    } else {
        format!("{name:?}")
    }
}
