//! CDS and EDS: clusters (EDS, STATIC, ORIGINAL_DST; round robin, least request, random;
//! circuit breakers; consecutive outlier detection and the panic threshold; HTTP/1.1 or HTTP/2 upstream) and their endpoints.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::cluster::CommonLbConfig;
use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, Cluster, OutlierDetection};
use envoy_types::pb::envoy::config::core::v3::{BindConfig, HealthStatus, HttpProtocolOptions as CommonHttp};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::explicit_http_config::ProtocolConfig;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions,
};

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::google::protobuf::Struct;

use super::listener::{socket_address, unpack};
use super::tls::upstream as upstream_tls;
use super::{Result, duration, is_set, reject};
use crate::config::{self, Discovery, LbPolicy as OwnLb, Limits};
use crate::outlier::OutlierConfig;
use crate::telemetry::peer::Peer;
use crate::tls::config::{SocketMatch, Transport, UpstreamTls};
use crate::tls::secrets::Secrets;
use crate::upstream::{ClusterRuntime, Host};
use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::google::protobuf::value::Kind;

const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
/// The endpoint metadata that `transport_socket_matches` look at.
pub const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";

/// What a cluster needs from its connection pool; a change makes a new pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    pub connect_timeout: Duration,
    pub http2: bool,
    pub idle_timeout: Option<Duration>,
    pub keepalive: Option<Duration>,
    /// `upstream_bind_config.source_address`.
    pub source: Option<IpAddr>,
    /// `max_requests_per_connection: 1`: every connection carries one request (no reuse).
    pub one_request_per_connection: bool,
    /// The cluster's TLS context, for the endpoints its transport gives TLS.
    pub tls: Option<Arc<UpstreamTls>>,
}

/// A cluster; its pool connects with the identity in `secrets`.
pub fn cluster(c: &Cluster, secrets: &Secrets) -> Result<config::Cluster> {
    let Cluster {
        transport_socket_matches,
        transport_socket_matcher,
        name,
        alt_stat_name: _,
        stats_matcher: _,
        eds_cluster_config,
        connect_timeout,
        per_connection_buffer_limit_bytes: _,
        per_connection_buffer_high_watermark_timeout: _,
        lb_policy,
        load_assignment,
        health_checks,
        max_requests_per_connection,
        circuit_breakers,
        upstream_http_protocol_options,
        common_http_protocol_options,
        http_protocol_options,
        http2_protocol_options,
        typed_extension_protocol_options,
        dns_refresh_rate: _,
        dns_jitter: _,
        dns_failure_refresh_rate: _,
        respect_dns_ttl: _,
        dns_lookup_family: _,
        dns_resolvers: _,
        use_tcp_for_dns_lookups: _,
        dns_resolution_config: _,
        typed_dns_resolver_config: _,
        wait_for_warm_on_init: _,
        outlier_detection,
        cleanup_interval: _,
        upstream_bind_config,
        lb_subset_config,
        common_lb_config,
        transport_socket,
        metadata: _,
        protocol_selection,
        upstream_connection_options,
        close_connections_on_host_health_failure,
        ignore_health_on_host_removal,
        filters,
        load_balancing_policy,
        lrs_server,
        lrs_report_endpoint_metrics,
        track_timeout_budgets: _,
        upstream_config,
        track_cluster_stats: _,
        preconnect_policy,
        connection_pool_per_downstream_connection,
        queuing_policies,
        cluster_discovery_type,
        lb_config,
    } = c;
    let p = format!("cluster {name}");
    reject!(p; transport_socket_matcher, health_checks,
        max_requests_per_connection, upstream_http_protocol_options,
        common_http_protocol_options, http_protocol_options, http2_protocol_options,
        lb_subset_config, protocol_selection, close_connections_on_host_health_failure,
        ignore_health_on_host_removal, filters, load_balancing_policy, lrs_server,
        lrs_report_endpoint_metrics, upstream_config, preconnect_policy,
        connection_pool_per_downstream_connection, queuing_policies);
    let kind = match cluster_discovery_type {
        None => DiscoveryType::Static,
        Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(*t)
            .map_err(|_| format!("{p}.type: unknown discovery type {t}"))?,
        Some(ClusterDiscoveryType::ClusterType(t)) => {
            return Err(format!("{p}.cluster_type {} is not implemented", t.name));
        }
    };
    let discovery = match kind {
        DiscoveryType::Eds => {
            let Some(EdsClusterConfig {
                eds_config: _,
                service_name,
            }) = eds_cluster_config
            else {
                return Err(format!("{p}: EDS cluster without eds_cluster_config"));
            };
            Discovery::Eds(if service_name.is_empty() {
                name.clone()
            } else {
                service_name.clone()
            })
        }
        DiscoveryType::Static => Discovery::Static(Arc::new(match load_assignment {
            Some(la) => hosts(la, &format!("{p}.load_assignment"))?,
            None => Vec::new(),
        })),
        DiscoveryType::OriginalDst => Discovery::OriginalDst,
        DiscoveryType::StrictDns | DiscoveryType::LogicalDns => {
            return Err(format!(
                "{p}.type {}: DNS clusters are not implemented",
                kind.as_str_name()
            ));
        }
    };
    let lb = match LbPolicy::try_from(*lb_policy) {
        Ok(LbPolicy::RoundRobin) => OwnLb::RoundRobin,
        Ok(LbPolicy::LeastRequest) => OwnLb::LeastRequest,
        Ok(LbPolicy::Random) => OwnLb::Random,
        Ok(LbPolicy::RingHash) => {
            let (mut min, mut max) = (1024, 8 << 20);
            match lb_config {
                None => {}
                Some(LbConfig::RingHashLbConfig(r)) => {
                    // hash_function is accepted either way: the proxy hashes with its own.
                    min = r.minimum_ring_size.as_ref().map_or(min, |v| v.value);
                    max = r.maximum_ring_size.as_ref().map_or(max, |v| v.value);
                    if min > max {
                        return Err(format!(
                            "{p}.ring_hash_lb_config: minimum_ring_size {min} > maximum_ring_size {max}"
                        ));
                    }
                }
                Some(_) => return Err(format!("{p}.lb_config does not match lb_policy RING_HASH")),
            }
            OwnLb::RingHash(min.max(1), max.min(8 << 20))
        }
        Ok(LbPolicy::Maglev) => {
            let size = match lb_config {
                None => 65537,
                Some(LbConfig::MaglevLbConfig(m)) => {
                    m.table_size.as_ref().map_or(65537, |v| v.value)
                }
                Some(_) => return Err(format!("{p}.lb_config does not match lb_policy MAGLEV")),
            };
            if !is_prime(size) || size > 5_000_011 {
                return Err(format!(
                    "{p}.maglev_lb_config.table_size {size} must be a prime up to 5000011"
                ));
            }
            OwnLb::Maglev(size)
        }
        Ok(LbPolicy::ClusterProvided) if discovery == Discovery::OriginalDst => OwnLb::RoundRobin,
        Ok(other) => {
            return Err(format!(
                "{p}.lb_policy {} is not implemented",
                other.as_str_name()
            ));
        }
        Err(_) => return Err(format!("{p}.lb_policy {lb_policy} is unknown")),
    };
    if is_set(lb_config) && !lb.consistent() {
        return Err(format!(
            "{p}.lb_config is not implemented for this lb_policy"
        ));
    }
    let mut settings = PoolSettings {
        connect_timeout: connect_timeout
            .as_ref()
            .map_or(Duration::from_secs(5), duration),
        http2: false,
        idle_timeout: None,
        keepalive: None,
        source: None,
        one_request_per_connection: false,
        tls: None,
    };
    let transport = transport(transport_socket_matches, transport_socket.as_ref(), &p)?;
    settings.tls = transport.tls.clone();
    if let Some(o) = upstream_connection_options {
        let p = format!("{p}.upstream_connection_options");
        let envoy_types::pb::envoy::config::cluster::v3::UpstreamConnectionOptions {
            tcp_keepalive,
            set_local_interface_name_on_upstream_connections,
            happy_eyeballs_config,
        } = o;
        reject!(p; set_local_interface_name_on_upstream_connections, happy_eyeballs_config);
        settings.keepalive = tcp_keepalive.as_ref().map(|k| {
            Duration::from_secs(k.keepalive_time.as_ref().map_or(300, |t| t.value.into()))
        });
    }
    for (key, any) in typed_extension_protocol_options {
        if key != HTTP_OPTIONS {
            return Err(format!(
                "{p}.typed_extension_protocol_options[{key}] is not implemented"
            ));
        }
        let p = format!("{p}.typed_extension_protocol_options[{key}]");
        http_options(&unpack(any, &p)?, &p, &mut settings)?;
    }
    let source = match upstream_bind_config {
        None => None,
        Some(b) => Some(bind_config(b, &format!("{p}.upstream_bind_config"))?),
    };
    settings.source = source;
    let limits = match circuit_breakers {
        None => Limits::default(),
        Some(cb) => limits(cb, &format!("{p}.circuit_breakers"))?,
    };
    let outlier = match outlier_detection {
        None => None,
        Some(o) => Some(outlier(o, &format!("{p}.outlier_detection"))?),
    };
    let panic_threshold = match common_lb_config {
        None => 50.0,
        Some(c) => common_lb(c, &format!("{p}.common_lb_config"))?,
    };
    Ok(config::Cluster {
        name: name.clone(),
        discovery,
        lb,
        outlier,
        panic_threshold,
        connect_timeout: settings.connect_timeout,
        http2: settings.http2,
        limits,
        transport,
        runtime: Arc::new(ClusterRuntime::new(settings, secrets)),
    })
}

fn http_options(o: &HttpProtocolOptions, p: &str, settings: &mut PoolSettings) -> Result<()> {
    let HttpProtocolOptions {
        common_http_protocol_options,
        upstream_http_protocol_options,
        http_filters,
        header_validation_config,
        outlier_detection,
        request_mirror_policies,
        hash_policy,
        retry_policy,
        upstream_protocol_options,
    } = o;
    reject!(p; upstream_http_protocol_options, http_filters, header_validation_config,
        outlier_detection, request_mirror_policies, hash_policy, retry_policy);
    if let Some(common) = common_http_protocol_options {
        let CommonHttp {
            idle_timeout,
            max_connection_duration,
            max_connection_duration_jitter,
            max_headers_count,
            max_response_headers_kb,
            max_stream_duration,
            headers_with_underscores_action: _,
            max_requests_per_connection,
        } = common;
        reject!(p; max_connection_duration, max_connection_duration_jitter, max_headers_count,
            max_response_headers_kb, max_stream_duration);
        settings.idle_timeout = idle_timeout.as_ref().map(duration);
        match max_requests_per_connection.as_ref().map(|v| v.value) {
            None | Some(0) => {}
            Some(1) => settings.one_request_per_connection = true,
            Some(n) => {
                return Err(format!(
                    "{p}.common_http_protocol_options.max_requests_per_connection: {n} is not implemented (only 1: no reuse)"
                ));
            }
        }
    }
    match upstream_protocol_options {
        None => {}
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
            protocol_config,
        })) => match protocol_config {
            Some(ProtocolConfig::HttpProtocolOptions(_)) | None => settings.http2 = false,
            Some(ProtocolConfig::Http2ProtocolOptions(h2)) => {
                if *h2 != Default::default() {
                    return Err(format!(
                        "{p}.explicit_http_config.http2_protocol_options: settings are not implemented"
                    ));
                }
                settings.http2 = true;
            }
            Some(ProtocolConfig::Http3ProtocolOptions(_)) => {
                return Err(format!("{p}: HTTP/3 upstreams are not implemented"));
            }
        },
        Some(_) => {
            return Err(format!(
                "{p}: only explicit_http_config upstream protocols are implemented"
            ));
        }
    }
    Ok(())
}

/// `transport_socket_matches`, then `transport_socket`; one TLS context at most.
fn transport(
    matches: &[TransportSocketMatch],
    default: Option<&TransportSocket>,
    p: &str,
) -> Result<Transport> {
    let mut out = Transport::default();
    let mut tls = |ts: Option<&TransportSocket>, p: &str| -> Result<bool> {
        let Some(context) = ts.map(|ts| upstream_tls(ts, p)).transpose()?.flatten() else {
            return Ok(false);
        };
        match &out.tls {
            Some(known) if **known != context => Err(format!(
                "{p}: a second, different TLS context in one cluster is not implemented"
            )),
            Some(_) => Ok(true),
            None => {
                out.tls = Some(Arc::new(context));
                Ok(true)
            }
        }
    };
    let mut socket_matches = Vec::new();
    for (i, m) in matches.iter().enumerate() {
        let p = format!("{p}.transport_socket_matches[{i}]");
        let TransportSocketMatch {
            name: _,
            r#match,
            transport_socket,
        } = m;
        socket_matches.push(SocketMatch {
            criteria: r#match.as_ref().map(string_fields).unwrap_or_default(),
            tls: tls(transport_socket.as_ref(), &format!("{p}.transport_socket"))?,
        });
    }
    let default_tls = tls(default, &format!("{p}.transport_socket"))?;
    out.matches = socket_matches;
    out.default_tls = default_tls;
    Ok(out)
}

/// A metadata struct as string pairs (other values by their JSON text), for matching.
fn string_fields(s: &Struct) -> BTreeMap<String, String> {
    s.fields
        .iter()
        .map(|(k, v)| {
            let text = match &v.kind {
                Some(Kind::StringValue(s)) => s.clone(),
                Some(Kind::BoolValue(b)) => b.to_string(),
                Some(Kind::NumberValue(n)) => n.to_string(),
                _ => String::new(),
            };
            (k.clone(), text)
        })
        .collect()
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

/// The consecutive kinds of outlier detection; success-rate and failure-percentage ejection
/// must be off (Istio turns success rate off; both need more traffic than a sidecar sees).
fn outlier(o: &OutlierDetection, p: &str) -> Result<OutlierConfig> {
    let OutlierDetection {
        consecutive_5xx,
        interval,
        base_ejection_time,
        max_ejection_percent,
        enforcing_consecutive_5xx,
        enforcing_success_rate,
        success_rate_minimum_hosts: _,
        success_rate_request_volume: _,
        success_rate_stdev_factor: _,
        consecutive_gateway_failure,
        enforcing_consecutive_gateway_failure,
        split_external_local_origin_errors,
        consecutive_local_origin_failure: _,
        enforcing_consecutive_local_origin_failure: _,
        enforcing_local_origin_success_rate: _,
        failure_percentage_threshold: _,
        enforcing_failure_percentage,
        enforcing_failure_percentage_local_origin,
        failure_percentage_minimum_hosts: _,
        failure_percentage_request_volume: _,
        max_ejection_time,
        max_ejection_time_jitter,
        successful_active_health_check_uneject_host: _,
        monitors,
        // The first ejection is always allowed, as the docs of max_ejection_percent say.
        always_eject_one_host: _,
        detect_degraded_hosts,
    } = o;
    reject!(p; split_external_local_origin_errors, max_ejection_time_jitter, monitors,
        detect_degraded_hosts);
    let u = |v: &Option<envoy_types::pb::google::protobuf::UInt32Value>, d: u32| {
        v.as_ref().map_or(d, |v| v.value)
    };
    if u(enforcing_success_rate, 100) != 0 {
        return Err(format!(
            "{p}.enforcing_success_rate: success-rate ejection is not implemented (set it to 0)"
        ));
    }
    if u(enforcing_failure_percentage, 0) != 0
        || u(enforcing_failure_percentage_local_origin, 0) != 0
    {
        return Err(format!(
            "{p}: failure-percentage ejection is not implemented"
        ));
    }
    let d = OutlierConfig::default();
    let dur = |v: &Option<envoy_types::pb::google::protobuf::Duration>, d: Duration| {
        v.as_ref().map_or(d, duration)
    };
    Ok(OutlierConfig {
        consecutive_5xx: u(consecutive_5xx, d.consecutive_5xx),
        enforcing_consecutive_5xx: u(enforcing_consecutive_5xx, d.enforcing_consecutive_5xx),
        consecutive_gateway_failure: u(consecutive_gateway_failure, d.consecutive_gateway_failure),
        enforcing_consecutive_gateway_failure: u(
            enforcing_consecutive_gateway_failure,
            d.enforcing_consecutive_gateway_failure,
        ),
        interval: dur(interval, d.interval).max(Duration::from_millis(1)),
        base_ejection_time: dur(base_ejection_time, d.base_ejection_time),
        max_ejection_time: dur(max_ejection_time, d.max_ejection_time),
        max_ejection_percent: u(max_ejection_percent, d.max_ejection_percent).min(100),
    })
}

/// `common_lb_config`: only `healthy_panic_threshold` (Envoy's default 50%).
fn common_lb(c: &CommonLbConfig, p: &str) -> Result<f64> {
    let CommonLbConfig {
        healthy_panic_threshold,
        update_merge_window: _,
        ignore_new_hosts_until_first_hc,
        close_connections_on_host_set_change,
        consistent_hashing_lb_config,
        override_host_status,
        locality_config_specifier,
    } = c;
    reject!(p; ignore_new_hosts_until_first_hc, close_connections_on_host_set_change,
        consistent_hashing_lb_config, override_host_status, locality_config_specifier);
    Ok(healthy_panic_threshold
        .as_ref()
        .map_or(50.0, |t| t.value.clamp(0.0, 100.0)))
}

/// Istio's `InboundPassthroughCluster` binds its upstream connections to 127.0.0.6 (so that
/// the app sees traffic from the proxy, not from itself); only the source address, any port.
fn bind_config(b: &BindConfig, p: &str) -> Result<IpAddr> {
    let BindConfig {
        source_address,
        freebind,
        socket_options,
        extra_source_addresses,
        additional_source_addresses,
        local_address_selector,
        validate_network_namespaces,
    } = b;
    reject!(p; freebind, socket_options, extra_source_addresses, additional_source_addresses,
        local_address_selector, validate_network_namespaces);
    let address =
        source_address
            .clone()
            .map(|sa| envoy_types::pb::envoy::config::core::v3::Address {
                address: Some(
                    envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(sa),
                ),
            });
    let a = socket_address(&address, &format!("{p}.source_address"))?;
    if a.port() != 0 {
        return Err(format!(
            "{p}.source_address: a fixed source port ({}) is not implemented",
            a.port()
        ));
    }
    Ok(a.ip())
}

fn limits(cb: &CircuitBreakers, p: &str) -> Result<Limits> {
    let CircuitBreakers {
        thresholds,
        per_host_thresholds,
    } = cb;
    reject!(p; per_host_thresholds);
    let mut out = Limits::default();
    for t in thresholds {
        let Thresholds {
            priority,
            max_connections,
            max_pending_requests,
            max_requests,
            max_retries,
            retry_budget,
            track_remaining: _,
            max_connection_pools,
        } = t;
        reject!(p; retry_budget, max_connection_pools);
        if *priority != 0 {
            // Only the default priority carries traffic: priorities are not implemented.
            continue;
        }
        let set = |v: &Option<envoy_types::pb::google::protobuf::UInt32Value>, d: u64| {
            v.as_ref().map_or(d, |v| u64::from(v.value))
        };
        out.max_connections = set(max_connections, out.max_connections);
        out.max_pending_requests = set(max_pending_requests, out.max_pending_requests);
        out.max_requests = set(max_requests, out.max_requests);
        out.max_retries = set(max_retries, out.max_retries);
    }
    Ok(out)
}

/// The healthy endpoints of an assignment (EDS, or a cluster's own `load_assignment`).
pub fn hosts(la: &ClusterLoadAssignment, p: &str) -> Result<Vec<Arc<Host>>> {
    let ClusterLoadAssignment {
        cluster_name: _,
        endpoints,
        named_endpoints,
        policy: _,
    } = la;
    reject!(p; named_endpoints);
    let mut out = Vec::new();
    for (i, l) in endpoints.iter().enumerate() {
        let p = format!("{p}.endpoints[{i}]");
        let LocalityLbEndpoints {
            locality: _,
            metadata: _,
            lb_endpoints,
            load_balancing_weight: _,
            priority,
            proximity,
            lb_config,
        } = l;
        reject!(p; priority, proximity, lb_config);
        for (j, e) in lb_endpoints.iter().enumerate() {
            let p = format!("{p}.lb_endpoints[{j}]");
            let LbEndpoint {
                health_status,
                metadata,
                load_balancing_weight,
                host_identifier,
            } = e;
            let Some(HostIdentifier::Endpoint(Endpoint {
                address,
                health_check_config: _,
                hostname: _,
                additional_addresses,
                observability_name: _,
            })) = host_identifier
            else {
                return Err(format!("{p}: named endpoints are not implemented"));
            };
            reject!(p; additional_addresses);
            let healthy = matches!(
                HealthStatus::try_from(*health_status),
                Ok(HealthStatus::Unknown | HealthStatus::Healthy | HealthStatus::Degraded)
            );
            if !healthy {
                continue;
            }
            let address = socket_address(address, &format!("{p}.endpoint.address"))?;
            let weight = load_balancing_weight.as_ref().map_or(1, |w| w.value.max(1));
            let mut host = Host::new(address, weight);
            host.workload = metadata.as_ref().and_then(istio_workload).map(Arc::new);
            host.socket_match = metadata
                .as_ref()
                .and_then(|m| m.filter_metadata.get(TRANSPORT_SOCKET_MATCH))
                .map(string_fields)
                .unwrap_or_default();
            out.push(Arc::new(host));
        }
    }
    Ok(out)
}

/// Istio's endpoint metadata `filter_metadata.istio.workload` (telemetry's view of the
/// endpoint's workload); other metadata is not the proxy's business and is ignored.
fn istio_workload(m: &Metadata) -> Option<Peer> {
    let istio = m.filter_metadata.get("istio")?;
    match istio.fields.get("workload")?.kind.as_ref()? {
        Kind::StringValue(s) => Peer::from_endpoint_metadata(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
    use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
    use envoy_types::pb::google::protobuf::{Struct, Value};

    fn endpoint(workload: Option<Kind>) -> LbEndpoint {
        let metadata = workload.map(|kind| Metadata {
            filter_metadata: [(
                "istio".to_string(),
                Struct {
                    fields: [("workload".to_string(), Value { kind: Some(kind) })].into(),
                },
            )]
            .into(),
            ..Default::default()
        });
        LbEndpoint {
            metadata,
            host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(AddressKind::SocketAddress(SocketAddress {
                        address: "10.0.0.1".into(),
                        port_specifier: Some(PortSpecifier::PortValue(9080)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn auto_mtls_gives_tls_to_endpoints_marked_istio() {
        use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
        use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
        use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
        let tls_mode = |v: &str| Struct {
            fields: [(
                "tlsMode".to_string(),
                Value {
                    kind: Some(Kind::StringValue(v.into())),
                },
            )]
            .into(),
        };
        // An UpstreamTlsContext without certificates is refused: the match must be judged.
        let tls = TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(ConfigType::TypedConfig(envoy_types::util::pack_any(
                UpstreamTlsContext::default(),
            ))),
        };
        let raw = TransportSocket {
            name: "envoy.transport_sockets.raw_buffer".into(),
            config_type: Some(ConfigType::TypedConfig(envoy_types::util::pack_any(
                RawBuffer::default(),
            ))),
        };
        let matches = |tls_socket: &TransportSocket| {
            vec![
                TransportSocketMatch {
                    name: "tlsMode-istio".into(),
                    r#match: Some(tls_mode("istio")),
                    transport_socket: Some(tls_socket.clone()),
                },
                TransportSocketMatch {
                    name: "tlsMode-disabled".into(),
                    r#match: Some(Struct::default()),
                    transport_socket: Some(raw.clone()),
                },
            ]
        };
        let e = transport(&matches(&tls), None, "cluster c").unwrap_err();
        assert!(
            e.starts_with("cluster c.transport_socket_matches[0].transport_socket.typed_config"),
            "{e}"
        );
        // Plain sockets only: no TLS context, nobody gets TLS.
        let plain = transport(&matches(&raw), Some(&raw), "c").unwrap();
        assert!(plain.tls.is_none());
        assert_eq!(plain.matches.len(), 2);
        assert_eq!(
            plain.matches[0].criteria,
            [("tlsMode".to_string(), "istio".to_string())].into()
        );
        // Endpoints carry the metadata the matches look at.
        let mut e = endpoint(None);
        e.metadata = Some(Metadata {
            filter_metadata: [(TRANSPORT_SOCKET_MATCH.to_string(), tls_mode("istio"))].into(),
            ..Default::default()
        });
        let la = ClusterLoadAssignment {
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![e, endpoint(None)],
                ..Default::default()
            }],
            ..Default::default()
        };
        let hosts = hosts(&la, "eds").unwrap();
        assert_eq!(hosts[0].socket_match["tlsMode"], "istio");
        assert!(hosts[1].socket_match.is_empty());
    }

    #[test]
    fn endpoints_keep_istios_workload_metadata() {
        let la = ClusterLoadAssignment {
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![
                    endpoint(Some(Kind::StringValue(
                        "reviews-v1;default;reviews;v1;Kubernetes".into(),
                    ))),
                    endpoint(Some(Kind::NumberValue(1.0))),
                    endpoint(None),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let hosts = hosts(&la, "eds").unwrap();
        let workload = hosts[0].workload.as_deref().unwrap();
        assert_eq!(
            (
                workload.workload.as_str(),
                workload.canonical_revision.as_str()
            ),
            ("reviews-v1", "v1")
        );
        assert!(hosts[1].workload.is_none(), "not a string: ignored");
        assert!(hosts[2].workload.is_none());
    }
}
