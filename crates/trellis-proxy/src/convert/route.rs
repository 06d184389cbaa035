//! RDS: RouteConfiguration → virtual hosts and routes (matches, forward / direct response /
//! redirect, rewrites, header mutations, timeouts, retries, per-route fault injection).

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{DataSource, HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::redirect_action::{
    PathRewriteSpecifier, SchemeRewriteSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::retry_policy::{RetryBackOff, RetryHostPredicate};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, HostRewriteSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{
    Decorator, DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction,
    RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::FaultDelay;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use envoy_types::pb::google::protobuf::Any;

use super::listener::unpack;
use super::{Result, duration, millionths, regex_matcher, reject, string_matcher};
use crate::config::{self, Action as OwnAction, Forward, Mirror, PathMatch, Redirect, RetryOn};

const FAULT_FILTER: &str = "envoy.filters.http.fault";

pub fn route_configuration(rc: &RouteConfiguration) -> Result<config::RouteConfig> {
    let RouteConfiguration {
        name,
        virtual_hosts,
        vhds,
        internal_only_headers,
        response_headers_to_add,
        response_headers_to_remove,
        request_headers_to_add,
        request_headers_to_remove,
        most_specific_header_mutations_wins,
        validate_clusters: _,
        max_direct_response_body_size_bytes: _,
        cluster_specifier_plugins,
        request_mirror_policies,
        ignore_port_in_host_matching,
        vhost_header,
        ignore_path_parameters_in_path_matching,
        typed_per_filter_config,
        metadata: _,
        route_specifiers,
    } = rc;
    let p = format!("route {name}");
    reject!(p; vhds, internal_only_headers, response_headers_to_add, response_headers_to_remove,
        request_headers_to_add, request_headers_to_remove, most_specific_header_mutations_wins,
        cluster_specifier_plugins, request_mirror_policies, vhost_header,
        ignore_path_parameters_in_path_matching, typed_per_filter_config, route_specifiers);
    let virtual_hosts = virtual_hosts
        .iter()
        .map(|vh| virtual_host(vh, &format!("{p}.virtual_hosts[{}]", vh.name)))
        .collect::<Result<_>>()?;
    Ok(config::RouteConfig::new(
        name.clone(),
        virtual_hosts,
        *ignore_port_in_host_matching,
    ))
}

fn virtual_host(vh: &VirtualHost, p: &str) -> Result<config::VirtualHost> {
    let VirtualHost {
        name,
        domains,
        routes,
        matcher,
        require_tls,
        virtual_clusters,
        rate_limits,
        request_headers_to_add,
        request_headers_to_remove,
        response_headers_to_add,
        response_headers_to_remove,
        cors,
        typed_per_filter_config,
        include_request_attempt_count,
        include_attempt_count_in_response,
        retry_policy,
        retry_policy_typed_config,
        hedge_policy,
        include_is_timeout_retry_header,
        per_request_buffer_limit_bytes: _,
        request_body_buffer_limit: _,
        request_mirror_policies,
        metadata: _,
        route_specifiers,
    } = vh;
    reject!(p; matcher, require_tls, virtual_clusters, rate_limits, request_headers_to_add,
        request_headers_to_remove, response_headers_to_add, response_headers_to_remove, cors,
        typed_per_filter_config, include_request_attempt_count,
        include_attempt_count_in_response, retry_policy, retry_policy_typed_config,
        hedge_policy, include_is_timeout_retry_header, request_mirror_policies,
        route_specifiers);
    let routes = routes
        .iter()
        .enumerate()
        .map(|(i, r)| route(r, &format!("{p}.routes[{i}]")))
        .collect::<Result<_>>()?;
    Ok(config::VirtualHost {
        name: name.clone(),
        domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
        routes,
    })
}

fn route(r: &Route, p: &str) -> Result<config::Route> {
    let Route {
        name,
        r#match,
        metadata: _,
        decorator,
        typed_per_filter_config,
        request_headers_to_add,
        request_headers_to_remove,
        response_headers_to_add,
        response_headers_to_remove,
        tracing,
        per_request_buffer_limit_bytes: _,
        stat_prefix: _,
        request_body_buffer_limit: _,
        route_specifiers,
        action,
    } = r;
    reject!(p; tracing, route_specifiers);
    if let Some(Decorator {
        operation: _,
        propagate,
    }) = decorator
    {
        reject!(p; propagate);
    }
    let (mut fault, mut cors) = (None, None);
    for (filter, any) in typed_per_filter_config {
        let at = format!("{p}.typed_per_filter_config[{filter}]");
        if filter == FAULT_FILTER {
            fault = Some(http_fault(any, &at)?);
        } else if filter == super::cors::CORS_FILTER {
            cors = Some(std::sync::Arc::new(super::cors::cors_policy(any, &at)?));
        } else {
            return Err(format!(
                "{p}.typed_per_filter_config: per-route config of {filter} is not implemented"
            ));
        }
    }
    let matcher = route_match(
        r#match
            .as_ref()
            .ok_or(format!("{p}: route without match"))?,
        &format!("{p}.match"),
    )?;
    let action = match action {
        Some(Action::Route(a)) => {
            OwnAction::Forward(Box::new(route_action(a, &format!("{p}.route"))?))
        }
        Some(Action::DirectResponse(d)) => direct(d, &format!("{p}.direct_response"))?,
        Some(Action::Redirect(r)) => OwnAction::Redirect(redirect(r, &format!("{p}.redirect"))?),
        _ => {
            return Err(format!(
                "{p}: only route, redirect and direct_response actions are implemented"
            ));
        }
    };
    Ok(config::Route {
        name: name.clone(),
        matcher,
        action,
        headers: config::HeaderMutations {
            request_add: header_options(request_headers_to_add, p)?,
            request_remove: lower(request_headers_to_remove),
            response_add: header_options(response_headers_to_add, p)?,
            response_remove: lower(response_headers_to_remove),
        },
        fault,
        cors,
    })
}

fn lower(names: &[String]) -> Vec<String> {
    names.iter().map(|n| n.to_ascii_lowercase()).collect()
}

fn header_options(options: &[HeaderValueOption], p: &str) -> Result<Vec<config::HeaderAdd>> {
    options
        .iter()
        .map(|o| {
            let HeaderValueOption {
                header,
                append,
                append_action,
                keep_empty_value: _,
            } = o;
            let Some(HeaderValue {
                key,
                value,
                raw_value,
            }) = header
            else {
                return Err(format!("{p}: header option without header"));
            };
            reject!(p; raw_value);
            let overwrite = match append {
                Some(a) => !a.value,
                None => match HeaderAppendAction::try_from(*append_action) {
                    Ok(HeaderAppendAction::AppendIfExistsOrAdd) => false,
                    Ok(HeaderAppendAction::OverwriteIfExistsOrAdd) => true,
                    _ => {
                        return Err(format!(
                            "{p}: header append_action {append_action} is not implemented"
                        ));
                    }
                },
            };
            if value.contains('%') {
                return Err(format!(
                    "{p}: header {key}: command operators (%...%) in values are not implemented"
                ));
            }
            Ok(config::HeaderAdd {
                name: key.to_ascii_lowercase(),
                value: value.clone(),
                overwrite,
            })
        })
        .collect()
}

pub(crate) fn route_match(m: &RouteMatch, p: &str) -> Result<config::RouteMatch> {
    let RouteMatch {
        case_sensitive,
        runtime_fraction,
        headers,
        query_parameters,
        cookies,
        grpc,
        tls_context,
        dynamic_metadata,
        filter_state,
        path_specifier,
    } = m;
    reject!(p; runtime_fraction, cookies, grpc, tls_context, dynamic_metadata, filter_state);
    let case_sensitive = case_sensitive.as_ref().is_none_or(|b| b.value);
    let path = match path_specifier {
        Some(PathSpecifier::Prefix(s)) => PathMatch::Prefix(s.clone()),
        Some(PathSpecifier::Path(s)) => PathMatch::Exact(s.clone()),
        Some(PathSpecifier::PathSeparatedPrefix(s)) => PathMatch::SeparatedPrefix(s.clone()),
        Some(PathSpecifier::SafeRegex(r)) => PathMatch::Regex(regex_matcher(r, p)?),
        _ => {
            return Err(format!(
                "{p}: only prefix, path, path_separated_prefix and safe_regex path matches are implemented"
            ));
        }
    };
    let headers = headers
        .iter()
        .map(|h| header_matcher(h, p))
        .collect::<Result<_>>()?;
    let query = query_parameters
        .iter()
        .map(|q| {
            let QueryParameterMatcher {
                name,
                query_parameter_match_specifier,
            } = q;
            let value = match query_parameter_match_specifier {
                Some(QueryParameterMatchSpecifier::StringMatch(sm)) => Some(string_matcher(sm, p)?),
                Some(QueryParameterMatchSpecifier::PresentMatch(true)) | None => None,
                Some(QueryParameterMatchSpecifier::PresentMatch(false)) => {
                    return Err(format!("{p}: query present_match false is not implemented"));
                }
            };
            Ok(config::QueryMatcher {
                name: name.clone(),
                value,
            })
        })
        .collect::<Result<_>>()?;
    Ok(config::RouteMatch {
        path,
        case_sensitive,
        headers,
        query,
    })
}

#[allow(deprecated)]
pub(crate) fn header_matcher(h: &HeaderMatcher, p: &str) -> Result<config::HeaderMatcher> {
    let HeaderMatcher {
        name,
        invert_match,
        treat_missing_header_as_empty,
        header_match_specifier,
    } = h;
    reject!(p; treat_missing_header_as_empty);
    let p = format!("{p}.headers[{name}]");
    let exact = |s: &str| Some(config::StringMatch::Exact(s.to_string(), false));
    let (value, absent) = match header_match_specifier {
        None => (None, false),
        Some(HeaderMatchSpecifier::PresentMatch(present)) => (None, !present),
        Some(HeaderMatchSpecifier::ExactMatch(s)) => (exact(s), false),
        Some(HeaderMatchSpecifier::PrefixMatch(s)) => {
            (Some(config::StringMatch::Prefix(s.clone(), false)), false)
        }
        Some(HeaderMatchSpecifier::SuffixMatch(s)) => {
            (Some(config::StringMatch::Suffix(s.clone(), false)), false)
        }
        Some(HeaderMatchSpecifier::ContainsMatch(s)) => {
            (Some(config::StringMatch::Contains(s.clone(), false)), false)
        }
        Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => (
            Some(config::StringMatch::Regex(regex_matcher(r, &p)?)),
            false,
        ),
        Some(HeaderMatchSpecifier::StringMatch(sm)) => (Some(string_matcher(sm, &p)?), false),
        Some(HeaderMatchSpecifier::RangeMatch(_)) => {
            return Err(format!("{p}.range_match is not implemented"));
        }
    };
    Ok(config::HeaderMatcher {
        name: name.to_ascii_lowercase(),
        value,
        absent,
        invert: *invert_match,
    })
}

fn route_action(a: &RouteAction, p: &str) -> Result<Forward> {
    let RouteAction {
        cluster_not_found_response_code,
        metadata_match,
        prefix_rewrite,
        regex_rewrite,
        path_rewrite_policy,
        path_rewrite,
        append_x_forwarded_host,
        timeout,
        idle_timeout,
        flush_timeout,
        early_data_policy,
        retry_policy,
        retry_policy_typed_config,
        request_mirror_policies,
        priority,
        rate_limits,
        include_vh_rate_limits,
        hash_policy,
        cors,
        max_grpc_timeout,
        grpc_timeout_offset,
        upgrade_configs,
        internal_redirect_policy,
        internal_redirect_action: _,
        max_internal_redirects,
        hedge_policy,
        max_stream_duration,
        cluster_specifier,
        host_rewrite_specifier,
    } = a;
    reject!(p; cluster_not_found_response_code, metadata_match, path_rewrite_policy,
        path_rewrite, append_x_forwarded_host, idle_timeout, flush_timeout, early_data_policy,
        retry_policy_typed_config, priority, rate_limits,
        include_vh_rate_limits, cors, grpc_timeout_offset,
        internal_redirect_policy, max_internal_redirects, hedge_policy);
    if let Some(msd) = max_stream_duration {
        let zero = |d: &Option<envoy_types::pb::google::protobuf::Duration>| {
            d.as_ref().is_none_or(|d| duration(d).is_zero())
        };
        if !zero(&msd.max_stream_duration)
            || !zero(&msd.grpc_timeout_header_max)
            || !zero(&msd.grpc_timeout_header_offset)
        {
            return Err(format!("{p}.max_stream_duration is not implemented"));
        }
    }
    let clusters = match cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => vec![(c.clone(), 1)],
        Some(ClusterSpecifier::WeightedClusters(w)) => weighted(w, p)?,
        _ => {
            return Err(format!(
                "{p}: only cluster and weighted_clusters are implemented"
            ));
        }
    };
    let host_rewrite = match host_rewrite_specifier {
        None => None,
        Some(HostRewriteSpecifier::HostRewriteLiteral(h)) => Some(h.clone()),
        Some(_) => {
            return Err(format!(
                "{p}: only host_rewrite_literal host rewrites are implemented"
            ));
        }
    };
    let regex_rewrite = match regex_rewrite {
        None => None,
        Some(RegexMatchAndSubstitute {
            pattern,
            substitution,
        }) => {
            let pattern = pattern
                .as_ref()
                .ok_or(format!("{p}.regex_rewrite without pattern"))?;
            let re = regex::RegexBuilder::new(&pattern.regex)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("{p}.regex_rewrite: {e}"))?;
            // RE2's `\1` substitutions are `${1}` in the regex crate.
            let sub = regex::Regex::new(r"\\(\d)")
                .map_err(|e| e.to_string())?
                .replace_all(substitution, "$${$1}")
                .into_owned();
            Some((re, sub))
        }
    };
    Ok(Forward {
        clusters,
        prefix_rewrite: (!prefix_rewrite.is_empty()).then(|| prefix_rewrite.clone()),
        regex_rewrite,
        host_rewrite,
        // Envoy: unset means 15 s; zero means none.
        timeout: match timeout {
            None => Some(Duration::from_secs(15)),
            Some(d) => Some(duration(d)).filter(|d| !d.is_zero()),
        },
        retry: retry_policy
            .as_ref()
            .map(|r| retry(r, &format!("{p}.retry_policy")))
            .transpose()?,
        max_grpc_timeout: max_grpc_timeout.as_ref().map(duration),
        mirrors: request_mirror_policies
            .iter()
            .enumerate()
            .map(|(i, m)| mirror(m, &format!("{p}.request_mirror_policies[{i}]")))
            .collect::<Result<_>>()?,
        hash_policy: hash_policy
            .iter()
            .enumerate()
            .map(|(i, h)| hash(h, &format!("{p}.hash_policy[{i}]")))
            .collect::<Result<_>>()?,
        upgrades: route_upgrades(upgrade_configs, p)?,
    })
}

/// A route's `upgrade_configs`: which upgrade types it enables or disables (CONNECT, with
/// its `connect_config`, is not implemented).
fn route_upgrades(
    configs: &[envoy_types::pb::envoy::config::route::v3::route_action::UpgradeConfig],
    p: &str,
) -> Result<Option<crate::upgrade::Upgrades>> {
    if configs.is_empty() {
        return Ok(None);
    }
    let mut out = crate::upgrade::Upgrades::default();
    for (i, u) in configs.iter().enumerate() {
        let envoy_types::pb::envoy::config::route::v3::route_action::UpgradeConfig {
            upgrade_type,
            enabled,
            connect_config,
        } = u;
        let p = format!("{p}.upgrade_configs[{i}]");
        reject!(p; connect_config);
        if upgrade_type.eq_ignore_ascii_case("connect") {
            return Err(format!("{p}: CONNECT is not implemented"));
        }
        let kind = upgrade_type.to_ascii_lowercase();
        if enabled.as_ref().is_none_or(|b| b.value) {
            out.enabled.push(kind);
        } else {
            out.disabled.push(kind);
        }
    }
    Ok(Some(out))
}

fn hash(
    h: &envoy_types::pb::envoy::config::route::v3::route_action::HashPolicy,
    p: &str,
) -> Result<crate::hash::HashPolicy> {
    use crate::hash::HashKey;
    use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::{
        ConnectionProperties, Cookie, Header, PolicySpecifier, QueryParameter,
    };
    let envoy_types::pb::envoy::config::route::v3::route_action::HashPolicy {
        terminal,
        policy_specifier,
    } = h;
    let key = match policy_specifier {
        Some(PolicySpecifier::Header(Header {
            header_name,
            regex_rewrite,
        })) => {
            reject!(p; regex_rewrite);
            HashKey::Header(header_name.to_ascii_lowercase())
        }
        Some(PolicySpecifier::Cookie(Cookie {
            name,
            ttl,
            path,
            attributes,
        })) => {
            reject!(p; attributes);
            HashKey::Cookie {
                name: name.clone(),
                ttl: ttl.as_ref().map(duration),
                path: path.clone(),
            }
        }
        Some(PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip })) => {
            if !source_ip {
                return Err(format!("{p}.connection_properties without source_ip"));
            }
            HashKey::SourceIp
        }
        Some(PolicySpecifier::QueryParameter(QueryParameter { name })) => {
            HashKey::QueryParameter(name.clone())
        }
        Some(PolicySpecifier::FilterState(_)) => {
            return Err(format!("{p}.filter_state is not implemented"));
        }
        None => return Err(format!("{p}: empty hash policy")),
    };
    Ok(crate::hash::HashPolicy {
        key,
        terminal: *terminal,
    })
}

/// Shadowing: a copy of the request to another cluster, its answer ignored.
fn mirror(
    m: &envoy_types::pb::envoy::config::route::v3::route_action::RequestMirrorPolicy,
    p: &str,
) -> Result<Mirror> {
    let envoy_types::pb::envoy::config::route::v3::route_action::RequestMirrorPolicy {
        cluster,
        cluster_header,
        runtime_fraction,
        trace_sampled: _,
        disable_shadow_host_suffix_append,
        request_headers_mutations,
        host_rewrite_literal,
    } = m;
    reject!(p; cluster_header, request_headers_mutations, host_rewrite_literal);
    // Unset: every request; the runtime key is not consulted (there is no runtime).
    let share = runtime_fraction.as_ref().map_or(1_000_000, |f| {
        f.default_value.as_ref().map_or(0, super::millionths)
    });
    Ok(Mirror {
        cluster: cluster.clone(),
        share,
        shadow_suffix: !*disable_shadow_host_suffix_append,
    })
}

fn weighted(w: &WeightedCluster, p: &str) -> Result<Vec<(String, u32)>> {
    let WeightedCluster {
        clusters,
        total_weight: _,
        runtime_key_prefix,
        random_value_specifier,
    } = w;
    reject!(p; runtime_key_prefix, random_value_specifier);
    clusters
        .iter()
        .map(|c| {
            let ClusterWeight {
                name,
                cluster_header,
                weight,
                metadata_match,
                request_headers_to_add,
                request_headers_to_remove,
                response_headers_to_add,
                response_headers_to_remove,
                typed_per_filter_config,
                host_rewrite_specifier,
            } = c;
            let p = format!("{p}.weighted_clusters[{name}]");
            reject!(p; cluster_header, metadata_match, request_headers_to_add,
                request_headers_to_remove, response_headers_to_add, response_headers_to_remove,
                typed_per_filter_config, host_rewrite_specifier);
            Ok((name.clone(), weight.as_ref().map_or(0, |w| w.value)))
        })
        .collect()
}

fn retry(r: &RetryPolicy, p: &str) -> Result<config::RetryPolicy> {
    let RetryPolicy {
        retry_on,
        num_retries,
        per_try_timeout,
        per_try_idle_timeout,
        retry_priority,
        retry_host_predicate,
        retry_options_predicates,
        host_selection_retry_max_attempts,
        retriable_status_codes,
        retry_back_off,
        rate_limited_retry_back_off,
        retriable_headers,
        retriable_request_headers,
        refresh_cluster_on_retry: _,
    } = r;
    reject!(p; per_try_idle_timeout, retry_priority, retry_options_predicates,
        rate_limited_retry_back_off, retriable_headers, retriable_request_headers);
    let mut on = RetryOn::default();
    for cond in retry_on.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        match cond {
            "5xx" => on.server_error = true,
            "gateway-error" => on.gateway_error = true,
            "reset" | "reset-before-request" => on.reset = true,
            "connect-failure" => on.connect_failure = true,
            "refused-stream" => on.refused_stream = true,
            "retriable-4xx" => on.retriable_4xx = true,
            "retriable-status-codes" => on.retriable_status_codes = true,
            "unavailable" => on.grpc_unavailable = true,
            "cancelled" => on.grpc_cancelled = true,
            "deadline-exceeded" => on.grpc_deadline_exceeded = true,
            "resource-exhausted" => on.grpc_resource_exhausted = true,
            "internal" => on.grpc_internal = true,
            other => return Err(format!("{p}.retry_on: {other:?} is not implemented")),
        }
    }
    let mut avoid_previous_hosts = false;
    for RetryHostPredicate { name, .. } in retry_host_predicate {
        if name == "envoy.retry_host_predicates.previous_hosts" {
            avoid_previous_hosts = true;
        } else {
            return Err(format!(
                "{p}.retry_host_predicate {name} is not implemented"
            ));
        }
    }
    let (base, max) = match retry_back_off {
        None => (Duration::from_millis(25), Duration::from_millis(250)),
        Some(RetryBackOff {
            base_interval,
            max_interval,
        }) => {
            let base = base_interval
                .as_ref()
                .map_or(Duration::from_millis(25), duration);
            let max = max_interval.as_ref().map_or(base * 10, duration);
            (base, max)
        }
    };
    Ok(config::RetryPolicy {
        on,
        num_retries: num_retries.as_ref().map_or(1, |n| n.value),
        per_try_timeout: per_try_timeout
            .as_ref()
            .map(duration)
            .filter(|d| !d.is_zero()),
        retriable_status_codes: retriable_status_codes
            .iter()
            .filter_map(|c| u16::try_from(*c).ok())
            .collect(),
        avoid_previous_hosts,
        host_selection_attempts: (*host_selection_retry_max_attempts).max(1) as u32,
        base_interval: base,
        max_interval: max,
    })
}

fn direct(d: &DirectResponseAction, p: &str) -> Result<OwnAction> {
    let DirectResponseAction {
        status,
        body,
        body_format,
    } = d;
    reject!(p; body_format);
    let body = match body {
        None => None,
        Some(DataSource {
            watched_directory: _,
            specifier,
        }) => match specifier {
            Some(Specifier::InlineString(s)) => Some(s.clone()),
            Some(Specifier::InlineBytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            None => None,
            Some(_) => return Err(format!("{p}.body: only inline bodies are implemented")),
        },
    };
    Ok(OwnAction::Direct {
        status: u16::try_from(*status)
            .ok()
            .filter(|s| (200..600).contains(s))
            .ok_or(format!("{p}.status {status} is out of range"))?,
        body,
    })
}

fn redirect(r: &RedirectAction, p: &str) -> Result<Redirect> {
    let RedirectAction {
        host_redirect,
        port_redirect,
        response_code,
        strip_query,
        scheme_rewrite_specifier,
        path_rewrite_specifier,
    } = r;
    let mut out = Redirect {
        host: (!host_redirect.is_empty()).then(|| host_redirect.clone()),
        port: (*port_redirect != 0).then(|| u16::try_from(*port_redirect).unwrap_or(0)),
        strip_query: *strip_query,
        status: match response_code {
            0 => 301,
            1 => 302,
            2 => 303,
            3 => 307,
            4 => 308,
            c => return Err(format!("{p}.response_code {c} is not implemented")),
        },
        ..Default::default()
    };
    match scheme_rewrite_specifier {
        None => {}
        Some(SchemeRewriteSpecifier::HttpsRedirect(true)) => out.scheme = Some("https".into()),
        Some(SchemeRewriteSpecifier::HttpsRedirect(false)) => {}
        Some(SchemeRewriteSpecifier::SchemeRedirect(s)) => out.scheme = Some(s.clone()),
    }
    match path_rewrite_specifier {
        None => {}
        Some(PathRewriteSpecifier::PathRedirect(s)) => out.path = Some(s.clone()),
        Some(PathRewriteSpecifier::PrefixRewrite(s)) => out.prefix_rewrite = Some(s.clone()),
        Some(_) => return Err(format!("{p}: regex path redirects are not implemented")),
    }
    Ok(out)
}

fn http_fault(any: &Any, p: &str) -> Result<config::Fault> {
    let fault = unpack::<HttpFault>(any, p)?;
    let HttpFault {
        delay,
        abort,
        upstream_cluster,
        headers,
        downstream_nodes,
        max_active_faults,
        response_rate_limit,
        delay_percent_runtime: _,
        abort_percent_runtime: _,
        delay_duration_runtime: _,
        abort_http_status_runtime: _,
        max_active_faults_runtime: _,
        response_rate_limit_percent_runtime: _,
        abort_grpc_status_runtime: _,
        disable_downstream_cluster_stats: _,
        filter_metadata: _,
    } = &fault;
    let p = p.to_string();
    reject!(p; upstream_cluster, headers, downstream_nodes, max_active_faults, response_rate_limit);
    let mut out = config::Fault::default();
    if let Some(FaultDelay {
        percentage,
        fault_delay_secifier,
    }) = delay
    {
        let Some(FaultDelaySecifier::FixedDelay(d)) = fault_delay_secifier else {
            return Err(format!("{p}.delay: only fixed delays are implemented"));
        };
        out.delay = Some((
            duration(d),
            percentage.as_ref().map_or(1_000_000, millionths),
        ));
    }
    if let Some(FaultAbort {
        percentage,
        response_body,
        error_type,
    }) = abort
    {
        reject!(p; response_body);
        let kind = match error_type {
            Some(ErrorType::HttpStatus(s)) => config::FaultAbort::Http(
                u16::try_from(*s).map_err(|_| format!("{p}.abort: status {s}"))?,
            ),
            Some(ErrorType::GrpcStatus(s)) => config::FaultAbort::Grpc(*s),
            _ => {
                return Err(format!(
                    "{p}.abort: only HTTP and gRPC aborts are implemented"
                ));
            }
        };
        out.abort = Some((kind, percentage.as_ref().map_or(1_000_000, millionths)));
    }
    Ok(out)
}
