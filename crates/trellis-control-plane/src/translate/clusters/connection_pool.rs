//! `connectionPool` → circuit-breaker thresholds, connect timeout, TCP keepalive and HTTP
//! protocol options. Istio always sets thresholds: each one is `u32::MAX` unless the rule
//! sets a positive value (zero means unset in proto3), so Envoy's own low defaults (1024)
//! never trip by surprise.

use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, UpstreamConnectionOptions};
use envoy_types::pb::envoy::config::core::v3::{
    Http2ProtocolOptions, HttpProtocolOptions as CommonHttpOptions, KeepaliveSettings,
    TcpKeepalive,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::UpstreamProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::explicit_http_config::ProtocolConfig;
use envoy_types::pb::google::protobuf::UInt32Value;
use trellis_api::istio::networking::{
    ConnectionPoolSettings, ConnectionPoolSettingsTcpSettingsTcpKeepalive,
};

use super::Building;
use crate::translate::pb_duration;

fn max(value: i32) -> Option<UInt32Value> {
    Some(UInt32Value {
        value: u32::try_from(value)
            .ok()
            .filter(|v| *v > 0)
            .unwrap_or(u32::MAX),
    })
}

/// The thresholds Istio sets on every outbound cluster, narrowed by the pool settings.
pub fn thresholds(pool: Option<&ConnectionPoolSettings>) -> Thresholds {
    let http = pool.and_then(|p| p.http.as_ref());
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    Thresholds {
        max_connections: max(tcp.map_or(0, |t| t.max_connections)),
        max_pending_requests: max(http.map_or(0, |h| h.http1_max_pending_requests)),
        max_requests: max(http.map_or(0, |h| h.http2_max_requests)),
        max_retries: max(http.map_or(0, |h| h.max_retries)),
        track_remaining: true,
        ..Default::default()
    }
}

/// Applies the pool settings (None = defaults) to the cluster being built.
pub fn apply(
    b: &mut Building,
    pool: Option<&ConnectionPoolSettings>,
    mesh_keepalive: Option<&ConnectionPoolSettingsTcpSettingsTcpKeepalive>,
) {
    b.cluster.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![thresholds(pool)],
        ..Default::default()
    });
    let http = pool.and_then(|p| p.http.as_ref());
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    if let Some(timeout) = tcp.and_then(|t| t.connect_timeout) {
        b.cluster.connect_timeout = Some(pb_duration(timeout.to_std()));
    }
    let keepalive = tcp
        .and_then(|t| t.tcp_keepalive.as_ref())
        .or(mesh_keepalive);
    if let Some(k) = keepalive {
        b.cluster.upstream_connection_options = Some(UpstreamConnectionOptions {
            tcp_keepalive: Some(tcp_keepalive(k)),
            ..Default::default()
        });
    }

    let idle = http
        .and_then(|h| h.idle_timeout)
        .or_else(|| tcp.and_then(|t| t.idle_timeout));
    let per_connection = http.map_or(0, |h| h.max_requests_per_connection);
    let duration = tcp.and_then(|t| t.max_connection_duration);
    let streams = http.map_or(0, |h| h.max_concurrent_streams);
    let h2_keepalive = http.and_then(|h| h.http2_keep_alive.as_ref());
    if idle.is_some()
        || per_connection > 0
        || duration.is_some()
        || streams > 0
        || h2_keepalive.is_some()
    {
        let options = b.http_options();
        let common = options
            .common_http_protocol_options
            .get_or_insert_with(CommonHttpOptions::default);
        common.idle_timeout = idle
            .map(|d| pb_duration(d.to_std()))
            .or(common.idle_timeout);
        if per_connection > 0 {
            common.max_requests_per_connection = max(per_connection);
        }
        if let Some(d) = duration {
            common.max_connection_duration = Some(pb_duration(d.to_std()));
        }
        if let Some(h2) = http2_options(options) {
            if streams > 0 {
                h2.max_concurrent_streams = max(streams);
            }
            if let Some(k) = h2_keepalive {
                h2.connection_keepalive = Some(KeepaliveSettings {
                    interval: k.interval.map(|d| pb_duration(d.to_std())),
                    timeout: k.timeout.map(|d| pb_duration(d.to_std())),
                    ..Default::default()
                });
            }
        }
    }
    if http.is_some_and(|h| h.use_client_protocol) {
        b.http_options().upstream_protocol_options = Some(
            UpstreamProtocolOptions::UseDownstreamProtocolConfig(Default::default()),
        );
    }
}

fn http2_options(options: &mut HttpProtocolOptions) -> Option<&mut Http2ProtocolOptions> {
    match &mut options.upstream_protocol_options {
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) => {
            match &mut explicit.protocol_config {
                Some(ProtocolConfig::Http2ProtocolOptions(h2)) => Some(h2),
                _ => None,
            }
        }
        _ => None,
    }
}

fn tcp_keepalive(k: &ConnectionPoolSettingsTcpSettingsTcpKeepalive) -> TcpKeepalive {
    let secs = |d: Option<trellis_api::Duration>| {
        d.map(|d| UInt32Value {
            value: u32::try_from(d.to_std().as_secs()).unwrap_or(u32::MAX),
        })
    };
    TcpKeepalive {
        keepalive_probes: (k.probes > 0).then_some(UInt32Value { value: k.probes }),
        keepalive_time: secs(k.time),
        keepalive_interval: secs(k.interval),
    }
}

#[cfg(test)]
mod tests {
    use trellis_api::istio::networking::{
        ConnectionPoolSettingsHttpSettings, ConnectionPoolSettingsTcpSettings,
    };

    use super::*;

    #[test]
    fn unset_thresholds_are_unlimited() {
        let t = thresholds(None);
        for v in [
            &t.max_connections,
            &t.max_pending_requests,
            &t.max_requests,
            &t.max_retries,
        ] {
            assert_eq!(v.as_ref().map(|v| v.value), Some(u32::MAX));
        }
        assert!(t.track_remaining);
    }

    #[test]
    fn circuit_breaker_from_istio_sample() {
        // samples/httpbin/destinationrule circuit breaker: 1 connection, 1 pending request.
        let pool = ConnectionPoolSettings {
            tcp: Some(ConnectionPoolSettingsTcpSettings {
                max_connections: 1,
                connect_timeout: Some(trellis_api::Duration::from_millis(250)),
                ..Default::default()
            }),
            http: Some(ConnectionPoolSettingsHttpSettings {
                http1_max_pending_requests: 1,
                max_requests_per_connection: 1,
                ..Default::default()
            }),
        };
        let mut b = Building::new("c".into());
        apply(&mut b, Some(&pool), None);
        let t = &b.cluster.circuit_breakers.as_ref().unwrap().thresholds[0];
        assert_eq!(t.max_connections, Some(UInt32Value { value: 1 }));
        assert_eq!(t.max_pending_requests, Some(UInt32Value { value: 1 }));
        assert_eq!(t.max_requests, Some(UInt32Value { value: u32::MAX }));
        assert_eq!(
            b.cluster.connect_timeout.as_ref().map(|d| d.nanos),
            Some(250_000_000)
        );
        let common = b
            .http
            .as_ref()
            .and_then(|h| h.common_http_protocol_options.as_ref())
            .unwrap();
        assert_eq!(
            common.max_requests_per_connection,
            Some(UInt32Value { value: 1 })
        );
    }

    #[test]
    fn keepalive_from_rule_or_mesh() {
        let mesh = ConnectionPoolSettingsTcpSettingsTcpKeepalive {
            probes: 3,
            time: Some(trellis_api::Duration::from_secs(7200)),
            interval: Some(trellis_api::Duration::from_secs(75)),
        };
        let mut b = Building::new("c".into());
        apply(&mut b, None, Some(&mesh));
        let k = b
            .cluster
            .upstream_connection_options
            .and_then(|o| o.tcp_keepalive)
            .unwrap();
        assert_eq!(k.keepalive_probes, Some(UInt32Value { value: 3 }));
        assert_eq!(k.keepalive_time, Some(UInt32Value { value: 7200 }));
    }
}
