//! `envoy.filters.http.rbac` and `envoy.filters.network.rbac` → [`Rbac`]. Every permission
//! and principal Istio's authorization builder emits is converted; anything else (CEL
//! conditions, the generic `matcher` trees, custom principals, audit loggers) is rejected
//! with its path, like the rest of [`crate::convert`].

// `metadata` and `source_ip` are deprecated in Envoy's API, yet `metadata` is what Istio emits.
#![allow(deprecated)]

use envoy_types::pb::envoy::config::rbac::v3::{
    Permission as PbPermission, Policy as PbPolicy, Principal as PbPrincipal, Rbac as PbRules,
    permission, principal,
};
use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as PbHttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as PbNetworkRbac;
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    DoubleMatcher, FilterStateMatcher, ListMatcher, MetadataMatcher, OrMatcher, PathMatcher,
    ValueMatcher, double_matcher, filter_state_matcher, list_matcher, metadata_matcher,
    path_matcher, value_matcher,
};
use envoy_types::pb::envoy::r#type::v3::{DoubleRange, Int32Range};

use super::config::{
    Action, Cidr, DoubleMatch, Header, MetadataMatch, Permission, Policy, Principal, Rbac, Rules,
    Template, ValueMatch,
};
use crate::convert::listener::unpack;
use crate::convert::route::header_matcher;
use crate::convert::{Result, cidr, reject, string_matcher};

pub const HTTP_RBAC: &str = "envoy.filters.http.rbac";
pub const NETWORK_RBAC: &str = "envoy.filters.network.rbac";

/// Nesting deeper than this is rejected: evaluation recurses, and no translation nests so.
const MAX_DEPTH: usize = 64;

pub fn http_rbac(r: &PbHttpRbac, p: &str) -> Result<Rbac> {
    let PbHttpRbac {
        rules,
        rules_stat_prefix,
        matcher,
        shadow_rules,
        shadow_matcher,
        shadow_rules_stat_prefix,
        track_per_rule_stats,
    } = r;
    let p = format!("{p} ({HTTP_RBAC})");
    reject!(p; matcher, shadow_matcher, track_per_rule_stats);
    Ok(Rbac {
        rules: optional_rules(rules, &format!("{p}.rules"))?,
        shadow_rules: optional_rules(shadow_rules, &format!("{p}.shadow_rules"))?,
        rules_stat_prefix: rules_stat_prefix.clone(),
        shadow_rules_stat_prefix: shadow_rules_stat_prefix.clone(),
        stat_prefix: String::new(),
    })
}

pub fn network_rbac(r: &PbNetworkRbac, p: &str) -> Result<Rbac> {
    let PbNetworkRbac {
        rules,
        matcher,
        shadow_rules,
        shadow_matcher,
        shadow_rules_stat_prefix,
        stat_prefix,
        enforcement_type,
        delay_deny,
    } = r;
    let p = format!("{p} ({NETWORK_RBAC})");
    // ONE_TIME_ON_FIRST_BYTE (0) is the default; CONTINUOUS re-checks per read.
    reject!(p; matcher, shadow_matcher, enforcement_type, delay_deny);
    Ok(Rbac {
        rules: optional_rules(rules, &format!("{p}.rules"))?,
        shadow_rules: optional_rules(shadow_rules, &format!("{p}.shadow_rules"))?,
        rules_stat_prefix: String::new(),
        shadow_rules_stat_prefix: shadow_rules_stat_prefix.clone(),
        stat_prefix: stat_prefix.clone(),
    })
}

/// Decodes and converts an HTTP RBAC filter's typed config.
pub fn http_filter(any: &envoy_types::pb::google::protobuf::Any, p: &str) -> Result<Rbac> {
    http_rbac(&unpack(any, p)?, p)
}

/// Decodes and converts a network RBAC filter's typed config.
pub fn network_filter(any: &envoy_types::pb::google::protobuf::Any, p: &str) -> Result<Rbac> {
    network_rbac(&unpack(any, p)?, p)
}

fn optional_rules(r: &Option<PbRules>, p: &str) -> Result<Option<Rules>> {
    r.as_ref().map(|r| rules(r, p)).transpose()
}

fn rules(r: &PbRules, p: &str) -> Result<Rules> {
    let PbRules {
        action,
        policies,
        audit_logging_options,
    } = r;
    reject!(p; audit_logging_options);
    let action = match action {
        0 => Action::Allow,
        1 => Action::Deny,
        2 => Action::Log,
        other => return Err(format!("{p}.action: unknown action {other}")),
    };
    let mut out = policies
        .iter()
        .map(|(name, policy)| {
            Ok((
                name.clone(),
                self::policy(policy, &format!("{p}.policies[{name}]"))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Rules {
        action,
        policies: out,
    })
}

fn policy(pol: &PbPolicy, p: &str) -> Result<Policy> {
    let PbPolicy {
        permissions,
        principals,
        condition,
        checked_condition,
        cel_config,
    } = pol;
    reject!(p; condition, checked_condition, cel_config);
    if permissions.is_empty() || principals.is_empty() {
        return Err(format!("{p}: permissions and principals must not be empty"));
    }
    Ok(Policy {
        permissions: permissions
            .iter()
            .enumerate()
            .map(|(i, x)| self::permission(x, &format!("{p}.permissions[{i}]"), 0))
            .collect::<Result<_>>()?,
        principals: principals
            .iter()
            .enumerate()
            .map(|(i, x)| self::principal(x, &format!("{p}.principals[{i}]"), 0))
            .collect::<Result<_>>()?,
    })
}

fn depth_guard(depth: usize, p: &str) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(format!("{p}: nested deeper than {MAX_DEPTH}"));
    }
    Ok(())
}

fn permission(x: &PbPermission, p: &str, depth: usize) -> Result<Permission> {
    use permission::Rule;
    depth_guard(depth, p)?;
    let set = |rules: &[PbPermission], what: &str| {
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| permission(r, &format!("{p}.{what}.rules[{i}]"), depth + 1))
            .collect::<Result<Vec<_>>>()
    };
    Ok(match &x.rule {
        Some(Rule::Any(true)) => Permission::Any,
        Some(Rule::AndRules(s)) => Permission::And(set(&s.rules, "and_rules")?),
        Some(Rule::OrRules(s)) => Permission::Or(set(&s.rules, "or_rules")?),
        Some(Rule::NotRule(r)) => Permission::Not(Box::new(permission(
            r,
            &format!("{p}.not_rule"),
            depth + 1,
        )?)),
        Some(Rule::Header(h)) => Permission::Header(header(h, &format!("{p}.header"))?),
        Some(Rule::UrlPath(m)) => Permission::UrlPath(path(m, &format!("{p}.url_path"))?),
        Some(Rule::DestinationIp(c)) => {
            Permission::DestinationIp(to_cidr(c, &format!("{p}.destination_ip"))?)
        }
        Some(Rule::DestinationPort(port)) => Permission::DestinationPort(*port),
        Some(Rule::DestinationPortRange(r)) => {
            let Int32Range { start, end } = r;
            Permission::DestinationPortRange(i64::from(*start), i64::from(*end))
        }
        Some(Rule::Metadata(m)) => Permission::Metadata(metadata(m, &format!("{p}.metadata"))?),
        Some(Rule::RequestedServerName(m)) => Permission::RequestedServerName(string_matcher(
            m,
            &format!("{p}.requested_server_name"),
        )?),
        Some(Rule::UriTemplate(t)) => {
            let p = format!("{p}.uri_template");
            let Some(any) = &t.typed_config else {
                return Err(format!("{p}: no typed_config"));
            };
            let c: UriTemplateMatchConfig = unpack(any, &p)?;
            Permission::UriTemplate(template(&c.path_template, &p)?)
        }
        Some(Rule::Any(false)) | None => return Err(format!("{p}: empty permission")),
        Some(Rule::Matcher(_)) => return Err(format!("{p}.matcher is not implemented")),
        Some(Rule::SourcedMetadata(_)) => {
            return Err(format!("{p}.sourced_metadata is not implemented"));
        }
    })
}

fn principal(x: &PbPrincipal, p: &str, depth: usize) -> Result<Principal> {
    use principal::Identifier;
    depth_guard(depth, p)?;
    let set = |ids: &[PbPrincipal], what: &str| {
        ids.iter()
            .enumerate()
            .map(|(i, r)| principal(r, &format!("{p}.{what}.ids[{i}]"), depth + 1))
            .collect::<Result<Vec<_>>>()
    };
    Ok(match &x.identifier {
        Some(Identifier::Any(true)) => Principal::Any,
        Some(Identifier::AndIds(s)) => Principal::And(set(&s.ids, "and_ids")?),
        Some(Identifier::OrIds(s)) => Principal::Or(set(&s.ids, "or_ids")?),
        Some(Identifier::NotId(r)) => {
            Principal::Not(Box::new(principal(r, &format!("{p}.not_id"), depth + 1)?))
        }
        Some(Identifier::Authenticated(a)) => Principal::Authenticated(
            a.principal_name
                .as_ref()
                .map(|m| string_matcher(m, &format!("{p}.authenticated.principal_name")))
                .transpose()?,
        ),
        // `source_ip` is the connection's peer too (without the proxy protocol).
        Some(Identifier::SourceIp(c)) => {
            Principal::DirectRemoteIp(to_cidr(c, &format!("{p}.source_ip"))?)
        }
        Some(Identifier::DirectRemoteIp(c)) => {
            Principal::DirectRemoteIp(to_cidr(c, &format!("{p}.direct_remote_ip"))?)
        }
        Some(Identifier::RemoteIp(c)) => {
            Principal::RemoteIp(to_cidr(c, &format!("{p}.remote_ip"))?)
        }
        Some(Identifier::Header(h)) => Principal::Header(header(h, &format!("{p}.header"))?),
        Some(Identifier::UrlPath(m)) => Principal::UrlPath(path(m, &format!("{p}.url_path"))?),
        Some(Identifier::Metadata(m)) => {
            Principal::Metadata(metadata(m, &format!("{p}.metadata"))?)
        }
        Some(Identifier::FilterState(f)) => filter_state(f, &format!("{p}.filter_state"))?,
        Some(Identifier::Any(false)) | None => return Err(format!("{p}: empty principal")),
        Some(Identifier::SourcedMetadata(_)) => {
            return Err(format!("{p}.sourced_metadata is not implemented"));
        }
        Some(Identifier::Custom(_)) => return Err(format!("{p}.custom is not implemented")),
    })
}

fn to_cidr(c: &envoy_types::pb::envoy::config::core::v3::CidrRange, p: &str) -> Result<Cidr> {
    let (network, len) = cidr(c, p)?;
    Ok(Cidr { network, len })
}

fn header(h: &HeaderMatcher, p: &str) -> Result<Header> {
    let without = HeaderMatcher {
        treat_missing_header_as_empty: false,
        ..h.clone()
    };
    Ok(Header {
        matcher: header_matcher(&without, p)?,
        missing_as_empty: h.treat_missing_header_as_empty,
    })
}

fn path(m: &PathMatcher, p: &str) -> Result<crate::config::StringMatch> {
    match &m.rule {
        Some(path_matcher::Rule::Path(s)) => string_matcher(s, &format!("{p}.path")),
        None => Err(format!("{p}: path matcher without a rule")),
    }
}

fn filter_state(f: &FilterStateMatcher, p: &str) -> Result<Principal> {
    let FilterStateMatcher { key, matcher } = f;
    match matcher {
        Some(filter_state_matcher::Matcher::StringMatch(m)) => Ok(Principal::FilterState {
            key: key.clone(),
            value: string_matcher(m, &format!("{p}.string_match"))?,
        }),
        Some(filter_state_matcher::Matcher::AddressMatch(_)) => {
            Err(format!("{p}.address_match is not implemented"))
        }
        None => Err(format!("{p}: filter state matcher without a matcher")),
    }
}

fn metadata(m: &MetadataMatcher, p: &str) -> Result<MetadataMatch> {
    let MetadataMatcher {
        filter,
        path,
        value,
        invert,
    } = m;
    let Some(value) = value else {
        return Err(format!("{p}: metadata matcher without a value"));
    };
    if path.is_empty() {
        return Err(format!("{p}.path: must not be empty"));
    }
    Ok(MetadataMatch {
        filter: filter.clone(),
        path: path
            .iter()
            .map(|s| match &s.segment {
                Some(metadata_matcher::path_segment::Segment::Key(k)) => Ok(k.clone()),
                None => Err(format!("{p}.path: empty segment")),
            })
            .collect::<Result<_>>()?,
        value: value_matcher(value, &format!("{p}.value"), 0)?,
        invert: *invert,
    })
}

fn value_matcher(v: &ValueMatcher, p: &str, depth: usize) -> Result<ValueMatch> {
    use value_matcher::MatchPattern;
    depth_guard(depth, p)?;
    Ok(match &v.match_pattern {
        Some(MatchPattern::NullMatch(_)) => ValueMatch::Null,
        Some(MatchPattern::DoubleMatch(d)) => ValueMatch::Double(double(d, p)?),
        Some(MatchPattern::StringMatch(s)) => {
            ValueMatch::String(string_matcher(s, &format!("{p}.string_match"))?)
        }
        Some(MatchPattern::BoolMatch(b)) => ValueMatch::Bool(*b),
        Some(MatchPattern::PresentMatch(b)) => ValueMatch::Present(*b),
        Some(MatchPattern::ListMatch(l)) => {
            let ListMatcher { match_pattern } = &**l;
            match match_pattern {
                Some(list_matcher::MatchPattern::OneOf(one)) => ValueMatch::ListOneOf(Box::new(
                    value_matcher(one, &format!("{p}.list_match.one_of"), depth + 1)?,
                )),
                None => return Err(format!("{p}.list_match: no pattern")),
            }
        }
        Some(MatchPattern::OrMatch(OrMatcher { value_matchers })) => ValueMatch::Or(
            value_matchers
                .iter()
                .enumerate()
                .map(|(i, m)| value_matcher(m, &format!("{p}.or_match[{i}]"), depth + 1))
                .collect::<Result<_>>()?,
        ),
        None => return Err(format!("{p}: value matcher without a pattern")),
    })
}

fn double(d: &DoubleMatcher, p: &str) -> Result<DoubleMatch> {
    match &d.match_pattern {
        Some(double_matcher::MatchPattern::Exact(x)) => Ok(DoubleMatch::Exact(*x)),
        Some(double_matcher::MatchPattern::Range(DoubleRange { start, end })) => {
            Ok(DoubleMatch::Range(*start, *end))
        }
        None => Err(format!("{p}.double_match: no pattern")),
    }
}

/// Envoy's path template: `*` (or `{name}`, `{name=*}`) is one path segment, `**` (or
/// `{name=**}`) any number of characters including `/`; the rest is literal.
pub fn template(source: &str, p: &str) -> Result<Template> {
    if !source.starts_with('/') {
        return Err(format!("{p}: path template {source:?} must start with /"));
    }
    let mut pattern = String::new();
    let mut rest = source;
    while !rest.is_empty() {
        let (piece, len) = if let Some(r) = rest.strip_prefix("**") {
            (".*", rest.len() - r.len())
        } else if rest.starts_with('*') {
            ("[^/]+", 1)
        } else if rest.starts_with('{') {
            let Some(end) = rest.find('}') else {
                return Err(format!("{p}: unclosed variable in {source:?}"));
            };
            let var = &rest[1..end];
            let kind = var.split_once('=').map_or("*", |(_, k)| k);
            match kind {
                "*" => ("[^/]+", end + 1),
                "**" => (".*", end + 1),
                _ => {
                    return Err(format!(
                        "{p}: variable {var:?} in {source:?} is not implemented"
                    ));
                }
            }
        } else {
            let next = rest.find(['*', '{']).unwrap_or(rest.len());
            pattern.push_str(&regex::escape(&rest[..next]));
            rest = &rest[next..];
            continue;
        };
        pattern.push_str(piece);
        rest = &rest[len..];
    }
    Ok(Template {
        source: source.to_string(),
        regex: crate::convert::regex(&pattern, p)?,
    })
}
