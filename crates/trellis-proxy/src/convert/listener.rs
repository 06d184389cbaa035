//! LDS: listeners with their filter chains (an HTTP connection manager or a TCP proxy each),
//! the `FilterChainMatch` criteria the translation emits (destination port and address,
//! server names, transport and application protocols), and the listener filters that feed
//! them (`original_dst`, `tls_inspector`, `http_inspector`). `bind_to_port: false` listeners
//! are held as handoff targets of the capture listeners (see [`config::Listener`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::listener_filter::ConfigType as ListenerFilterConfig;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy as PbTcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier as TcpClusterSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    ForwardClientCertDetails, PathWithEscapedSlashesAction, RouteSpecifier,
    ServerHeaderTransformation, SetCurrentClientCertDetails, UpgradeConfig,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpFilterConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as PbNetworkRbac;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::{Result, duration, reject};
use crate::config::{self, ChainMatch, HttpManager, Network, RouteSource};

pub const HCM: &str = "envoy.filters.network.http_connection_manager";
/// HTTP filters the proxy implements (the fault and CORS filters act on per-route config).
const HTTP_FILTERS: [&str; 3] = [
    "envoy.filters.http.fault",
    "envoy.filters.http.cors",
    "envoy.filters.http.router",
];

/// Decodes an `Any` of the expected type.
pub fn unpack<T: Message + Name + Default>(any: &Any, path: &str) -> Result<T> {
    if any.type_url != T::type_url() {
        return Err(format!(
            "{path}: expected {}, got {}",
            T::full_name(),
            any.type_url
        ));
    }
    T::decode(any.value.as_slice()).map_err(|e| format!("{path}: {e}"))
}

pub fn socket_address(a: &Option<Address>, path: &str) -> Result<SocketAddr> {
    let Some(Address {
        address: Some(AddressKind::SocketAddress(sa)),
    }) = a
    else {
        return Err(format!("{path}: only socket addresses are implemented"));
    };
    let SocketAddress {
        protocol,
        address,
        resolver_name,
        ipv4_compat: _,
        network_namespace_filepath,
        port_specifier,
    } = sa;
    reject!(path; protocol, resolver_name, network_namespace_filepath);
    let Some(PortSpecifier::PortValue(port)) = port_specifier else {
        return Err(format!("{path}: named ports are not implemented"));
    };
    let ip = address
        .parse()
        .map_err(|_| format!("{path}.address: {address:?} is not an IP address"))?;
    let port = u16::try_from(*port).map_err(|_| format!("{path}: port {port} out of range"))?;
    Ok(SocketAddr::new(ip, port))
}

pub fn listener(l: &Listener) -> Result<config::Listener> {
    let Listener {
        name,
        address,
        additional_addresses,
        stat_prefix: _,
        stats_matcher: _,
        filter_chains,
        fcds_config,
        filter_chain_matcher,
        use_original_dst,
        default_filter_chain,
        per_connection_buffer_limit_bytes: _,
        per_connection_buffer_high_watermark_timeout: _,
        metadata: _,
        deprecated_v1,
        drain_type: _,
        listener_filters,
        listener_filters_timeout,
        continue_on_listener_filters_timeout,
        transparent,
        freebind,
        socket_options,
        tcp_fast_open_queue_length: _,
        traffic_direction,
        udp_listener_config,
        api_listener,
        connection_balance_config: _,
        reuse_port: _,
        enable_reuse_port,
        access_log,
        tcp_backlog_size: _,
        max_connections_to_accept_per_socket_event: _,
        bind_to_port,
        enable_mptcp,
        ignore_global_conn_limit: _,
        bypass_overload_manager: _,
        tcp_keepalive: _,
        listener_specifier,
    } = l;
    let p = format!("listener {name}");
    reject!(p; additional_addresses, fcds_config, filter_chain_matcher, deprecated_v1,
        transparent, freebind, socket_options, udp_listener_config, api_listener,
        enable_mptcp, listener_specifier);
    let address = socket_address(address, &format!("{p}.address"))?;
    let mut out = config::Listener {
        name: name.clone(),
        address,
        bind: bind_to_port.as_ref().is_none_or(|b| b.value),
        capture: use_original_dst.as_ref().is_some_and(|b| b.value),
        handoff: use_original_dst.as_ref().is_some_and(|b| b.value),
        reuse_port: enable_reuse_port.as_ref().is_none_or(|b| b.value),
        inbound: *traffic_direction
            == envoy_types::pb::envoy::config::core::v3::TrafficDirection::Inbound as i32,
        inspect_tls: false,
        inspect_http: false,
        inspect_timeout: match listener_filters_timeout {
            None => Some(Duration::from_secs(15)),
            Some(d) => Some(duration(d)).filter(|d| !d.is_zero()),
        },
        continue_on_timeout: *continue_on_listener_filters_timeout,
        chains: Vec::new(),
        default_chain: None,
        access_logs: super::access_log::access_logs(access_log, &p)?,
    };
    for (i, f) in listener_filters.iter().enumerate() {
        let p = format!("{p}.listener_filters[{i}]");
        match listener_filter(f, &p)? {
            ListenerFilterKind::OriginalDst => out.capture = true,
            ListenerFilterKind::TlsInspector => out.inspect_tls = true,
            ListenerFilterKind::HttpInspector => out.inspect_http = true,
        }
    }
    if filter_chains.is_empty() && default_filter_chain.is_none() {
        return Err(format!("{p}: no filter chains"));
    }
    for (i, c) in filter_chains.iter().enumerate() {
        out.chains
            .push(filter_chain(c, &format!("{p}.filter_chains[{i}]"))?);
    }
    if let Some(c) = default_filter_chain {
        out.default_chain = Some(filter_chain(c, &format!("{p}.default_filter_chain"))?);
    }
    Ok(out)
}

enum ListenerFilterKind {
    OriginalDst,
    TlsInspector,
    HttpInspector,
}

/// The listener filters the translation emits, with their default settings.
fn listener_filter(f: &ListenerFilter, p: &str) -> Result<ListenerFilterKind> {
    let ListenerFilter {
        name,
        filter_disabled,
        config_type,
    } = f;
    reject!(p; filter_disabled);
    let kind = match name.as_str() {
        "envoy.filters.listener.original_dst" => ListenerFilterKind::OriginalDst,
        "envoy.filters.listener.tls_inspector" => ListenerFilterKind::TlsInspector,
        "envoy.filters.listener.http_inspector" => ListenerFilterKind::HttpInspector,
        other => return Err(format!("{p}: listener filter {other} is not implemented")),
    };
    match config_type {
        None => {}
        Some(ListenerFilterConfig::TypedConfig(any)) if any.value.is_empty() => {}
        Some(_) => {
            return Err(format!(
                "{p}: settings of listener filter {name} are not implemented"
            ));
        }
    }
    Ok(kind)
}

fn filter_chain(c: &FilterChain, p: &str) -> Result<config::FilterChain> {
    let FilterChain {
        filter_chain_match,
        filters,
        use_proxy_proto,
        metadata: _,
        transport_socket,
        transport_socket_connect_timeout,
        name,
    } = c;
    reject!(p; use_proxy_proto);
    let handshake_timeout = crate::tls::server::handshake_timeout(
        transport_socket_connect_timeout.as_ref().map(duration),
    );
    let tls = match transport_socket {
        None => None,
        Some(ts) => super::tls::downstream(ts, &format!("{p}.transport_socket"))?.map(|spec| {
            Arc::new(crate::tls::server::ServerContext::new(
                spec,
                handshake_timeout,
            ))
        }),
    };
    let matcher = match filter_chain_match {
        None => ChainMatch::default(),
        Some(m) => chain_match(m, &format!("{p}.filter_chain_match"))?,
    };
    let Some((filter, before)) = filters.split_last() else {
        return Err(format!("{p}.filters: no network filter"));
    };
    let rbac = before
        .iter()
        .enumerate()
        .map(|(i, f)| network_rbac(f, &format!("{p}.filters[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let Filter {
        name: filter_name,
        config_type,
    } = filter;
    let p = format!("{p}.filters[{}]", before.len());
    let Some(ConfigType::TypedConfig(any)) = config_type else {
        return Err(format!(
            "{p}: network filter {filter_name} without typed_config"
        ));
    };
    let network = if any.type_url == HttpConnectionManager::type_url() {
        Network::Http(Arc::new(http_connection_manager(&unpack(any, &p)?, &p)?))
    } else if any.type_url == PbTcpProxy::type_url() {
        Network::Tcp(tcp_proxy(&unpack(any, &p)?, &p)?)
    } else {
        return Err(format!(
            "{p}: network filter {filter_name} ({}) is not implemented",
            any.type_url
        ));
    };
    Ok(config::FilterChain {
        name: name.clone(),
        matcher,
        tls,
        rbac,
        network,
    })
}

/// A network filter before the terminal one: only RBAC is implemented there.
fn network_rbac(f: &Filter, p: &str) -> Result<Arc<crate::rbac::config::Rbac>> {
    let Filter { name, config_type } = f;
    match config_type {
        Some(ConfigType::TypedConfig(any)) if any.type_url == PbNetworkRbac::type_url() => {
            Ok(Arc::new(crate::rbac::convert::network_filter(any, p)?))
        }
        _ => Err(format!("{p}: network filter {name} is not implemented")),
    }
}

fn chain_match(m: &FilterChainMatch, p: &str) -> Result<ChainMatch> {
    let FilterChainMatch {
        destination_port,
        prefix_ranges,
        address_suffix,
        suffix_len,
        direct_source_prefix_ranges,
        source_type,
        source_prefix_ranges,
        source_ports,
        server_names,
        transport_protocol,
        application_protocols,
    } = m;
    reject!(p; address_suffix, suffix_len, direct_source_prefix_ranges, source_type,
        source_prefix_ranges, source_ports);
    let destination_port = match destination_port {
        None => None,
        Some(v) => Some(
            u16::try_from(v.value)
                .map_err(|_| format!("{p}.destination_port {} out of range", v.value))?,
        ),
    };
    let ranges = prefix_ranges
        .iter()
        .enumerate()
        .map(|(i, r)| super::cidr(r, &format!("{p}.prefix_ranges[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok(ChainMatch {
        destination_port,
        prefix_ranges: ranges,
        server_names: server_names
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
        transport_protocol: (!transport_protocol.is_empty()).then(|| transport_protocol.clone()),
        application_protocols: application_protocols.clone(),
    })
}

/// Envoy's `tcp_proxy`: a cluster or weighted clusters, an idle timeout.
pub fn tcp_proxy(t: &PbTcpProxy, p: &str) -> Result<config::TcpProxy> {
    let PbTcpProxy {
        stat_prefix,
        on_demand,
        metadata_match,
        idle_timeout,
        downstream_idle_timeout,
        upstream_idle_timeout,
        access_log,
        max_connect_attempts,
        backoff_options,
        hash_policy,
        tunneling_config,
        max_downstream_connection_duration,
        max_downstream_connection_duration_jitter_percentage,
        access_log_flush_interval,
        flush_access_log_on_connected,
        access_log_options,
        proxy_protocol_tlvs,
        proxy_protocol_tlv_merge_policy: _,
        upstream_connect_mode,
        max_early_data_bytes,
        check_drain_close: _,
        cluster_specifier,
    } = t;
    let p = format!("{p} (envoy.filters.network.tcp_proxy)");
    reject!(p; on_demand, metadata_match, downstream_idle_timeout, upstream_idle_timeout,
        max_connect_attempts, backoff_options, hash_policy, tunneling_config,
        max_downstream_connection_duration,
        max_downstream_connection_duration_jitter_percentage, access_log_flush_interval,
        flush_access_log_on_connected, access_log_options, proxy_protocol_tlvs,
        upstream_connect_mode, max_early_data_bytes);
    let clusters = match cluster_specifier {
        Some(TcpClusterSpecifier::Cluster(c)) => vec![(c.clone(), 1)],
        Some(TcpClusterSpecifier::WeightedClusters(w)) => w
            .clusters
            .iter()
            .map(|c| {
                let ClusterWeight {
                    name,
                    weight,
                    metadata_match,
                } = c;
                reject!(p; metadata_match);
                Ok((name.clone(), *weight))
            })
            .collect::<Result<Vec<_>>>()?,
        None => return Err(format!("{p}: no cluster")),
    };
    Ok(config::TcpProxy {
        stat_prefix: stat_prefix.clone(),
        clusters,
        idle_timeout: match idle_timeout {
            None => Some(Duration::from_secs(3600)),
            Some(d) => Some(duration(d)).filter(|d| !d.is_zero()),
        },
        access_logs: super::access_log::access_logs(access_log, &p)?,
    })
}

pub fn http_connection_manager(h: &HttpConnectionManager, p: &str) -> Result<HttpManager> {
    let HttpConnectionManager {
        codec_type: _,
        stat_prefix,
        http_filters,
        add_user_agent,
        tracing,
        common_http_protocol_options,
        http1_safe_max_connection_duration,
        http_protocol_options,
        http2_protocol_options,
        http3_protocol_options,
        server_name,
        server_header_transformation,
        scheme_header_transformation,
        max_request_headers_kb,
        stream_idle_timeout,
        stream_flush_timeout,
        request_timeout,
        request_headers_timeout,
        drain_timeout: _,
        drain_timeout_jitter: _,
        delayed_close_timeout: _,
        access_log,
        access_log_flush_interval,
        flush_access_log_on_new_request,
        access_log_options,
        use_remote_address,
        xff_num_trusted_hops,
        original_ip_detection_extensions,
        early_header_mutation_extensions,
        internal_address_config,
        skip_xff_append,
        via,
        generate_request_id,
        preserve_external_request_id,
        always_set_request_id_in_response,
        forward_client_cert_details,
        set_current_client_cert_details,
        forward_client_cert_matcher,
        proxy_100_continue,
        represent_ipv4_remote_address_as_ipv4_mapped_ipv6,
        upgrade_configs,
        normalize_path,
        merge_slashes,
        path_with_escaped_slashes_action,
        request_id_extension,
        local_reply_config,
        strip_matching_host_port,
        stream_error_on_invalid_http_message,
        path_normalization_options,
        strip_trailing_host_dot,
        proxy_status_config,
        typed_header_validation_config,
        append_x_forwarded_port,
        append_local_overload,
        add_proxy_protocol_connection_state,
        forward_proto_config,
        route_specifier,
        strip_port_mode,
    } = h;
    let p = format!("{p} ({HCM})");
    reject!(p; add_user_agent, tracing,
        http1_safe_max_connection_duration, http_protocol_options,
        http3_protocol_options, scheme_header_transformation,
        stream_flush_timeout, request_timeout,
        access_log_flush_interval, flush_access_log_on_new_request, access_log_options,
        original_ip_detection_extensions, early_header_mutation_extensions,
        internal_address_config, skip_xff_append, via, preserve_external_request_id,
        always_set_request_id_in_response, forward_client_cert_matcher, proxy_100_continue,
        represent_ipv4_remote_address_as_ipv4_mapped_ipv6, merge_slashes, request_id_extension,
        local_reply_config, strip_matching_host_port, stream_error_on_invalid_http_message,
        path_normalization_options, strip_trailing_host_dot, proxy_status_config,
        typed_header_validation_config, append_x_forwarded_port, append_local_overload,
        add_proxy_protocol_connection_state, forward_proto_config, strip_port_mode);
    if *server_header_transformation != ServerHeaderTransformation::Overwrite as i32 {
        return Err(format!(
            "{p}.server_header_transformation: only OVERWRITE is implemented"
        ));
    }
    if stream_idle_timeout
        .as_ref()
        .is_some_and(|d| d.seconds != 0 || d.nanos != 0)
    {
        return Err(format!(
            "{p}.stream_idle_timeout: only 0 (disabled) is implemented"
        ));
    }
    if *path_with_escaped_slashes_action != PathWithEscapedSlashesAction::KeepUnchanged as i32
        && *path_with_escaped_slashes_action
            != PathWithEscapedSlashesAction::ImplementationSpecificDefault as i32
    {
        return Err(format!(
            "{p}.path_with_escaped_slashes_action: only KEEP_UNCHANGED is implemented"
        ));
    }
    let mut filters = Vec::new();
    for (i, f) in http_filters.iter().enumerate() {
        filters.extend(http_filter(f, &format!("{p}.http_filters[{i}]"))?);
    }
    let mut upgrades = crate::upgrade::Upgrades::default();
    for (i, u) in upgrade_configs.iter().enumerate() {
        let UpgradeConfig {
            upgrade_type,
            filters,
            enabled,
        } = u;
        if upgrade_type.eq_ignore_ascii_case("connect") || !filters.is_empty() {
            return Err(format!(
                "{p}.upgrade_configs[{i}]: only upgrades other than CONNECT, without filters, are implemented"
            ));
        }
        if enabled.as_ref().is_none_or(|b| b.value) {
            upgrades.enabled.push(upgrade_type.to_ascii_lowercase());
        }
    }
    let route_config = match route_specifier {
        Some(RouteSpecifier::Rds(Rds {
            config_source: _,
            route_config_name,
        })) => RouteSource::Rds(route_config_name.clone()),
        Some(RouteSpecifier::RouteConfig(rc)) => {
            RouteSource::Inline(Arc::new(super::route::route_configuration(rc)?))
        }
        _ => {
            return Err(format!(
                "{p}.route_specifier: only rds and route_config are implemented"
            ));
        }
    };
    Ok(HttpManager {
        stat_prefix: stat_prefix.clone(),
        route_config,
        server_name: (!server_name.is_empty()).then(|| server_name.clone()),
        generate_request_id: generate_request_id.as_ref().is_none_or(|b| b.value),
        normalize_path: normalize_path.as_ref().is_some_and(|b| b.value),
        use_remote_address: use_remote_address.as_ref().is_some_and(|b| b.value),
        xff_trusted_hops: *xff_num_trusted_hops,
        upgrades,
        limits: super::limits::http_limits(
            max_request_headers_kb.as_ref(),
            request_headers_timeout.as_ref(),
            common_http_protocol_options.as_ref(),
            http2_protocol_options.as_ref(),
            &p,
        )?,
        cors: http_filters
            .iter()
            .any(|f| f.name == super::cors::CORS_FILTER && !f.disabled),
        filters,
        xfcc: xfcc(
            *forward_client_cert_details,
            set_current_client_cert_details.as_ref(),
            &p,
        )?,
        access_logs: super::access_log::access_logs(access_log, &p)?,
    })
}

/// `forward_client_cert_details` and the details of the current certificate (the PEM of the
/// certificate or chain is not implemented).
fn xfcc(
    mode: i32,
    details: Option<&SetCurrentClientCertDetails>,
    p: &str,
) -> Result<crate::xfcc::Xfcc> {
    use crate::xfcc::Mode;
    let mode = match ForwardClientCertDetails::try_from(mode) {
        Ok(ForwardClientCertDetails::Sanitize) => Mode::Sanitize,
        Ok(ForwardClientCertDetails::ForwardOnly) => Mode::ForwardOnly,
        Ok(ForwardClientCertDetails::AppendForward) => Mode::AppendForward,
        Ok(ForwardClientCertDetails::SanitizeSet) => Mode::SanitizeSet,
        Ok(ForwardClientCertDetails::AlwaysForwardOnly) => Mode::AlwaysForwardOnly,
        Err(_) => return Err(format!("{p}.forward_client_cert_details {mode} is unknown")),
    };
    let mut out = crate::xfcc::Xfcc {
        mode,
        ..Default::default()
    };
    if let Some(d) = details {
        let SetCurrentClientCertDetails {
            subject,
            cert,
            chain,
            dns,
            uri,
            issuer,
            format,
        } = d;
        let p = format!("{p}.set_current_client_cert_details");
        reject!(p; cert, chain, issuer, format);
        out.subject = subject.as_ref().is_some_and(|b| b.value);
        out.dns = *dns;
        out.uri = *uri;
    }
    Ok(out)
}

/// An HTTP filter: the authentication and authorization filters carry their config; the
/// others act on per-route config and must have none of their own.
fn http_filter(f: &HttpFilter, p: &str) -> Result<Option<config::HttpFilter>> {
    let HttpFilter {
        name,
        is_optional: _,
        disabled,
        config_type,
    } = f;
    if *disabled {
        return Ok(None);
    }
    let any = match config_type {
        Some(HttpFilterConfig::TypedConfig(any)) => Some(any),
        _ => None,
    };
    match (name.as_str(), any) {
        (crate::rbac::convert::HTTP_RBAC, Some(any)) => Ok(Some(config::HttpFilter::Rbac(
            Arc::new(crate::rbac::convert::http_filter(any, p)?),
        ))),
        (crate::jwt::convert::JWT_AUTHN, Some(any)) => Ok(Some(config::HttpFilter::JwtAuthn(
            Arc::new(crate::jwt::convert::http_filter(any, p)?),
        ))),
        (name, _) if !HTTP_FILTERS.contains(&name) => {
            Err(format!("{p}: HTTP filter {name} is not implemented"))
        }
        // The filters' own (listener-level) configs must be empty: the translation puts what
        // they do on the routes.
        (name, Some(any)) if !any.value.is_empty() => Err(format!(
            "{p}: listener-level config of {name} is not implemented"
        )),
        _ => Ok(None),
    }
}
