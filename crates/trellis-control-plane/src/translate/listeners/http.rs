//! The HTTP connection manager as Istio configures it for each kind of listener: the filter
//! chain fault → cors → router (routes put per-route fault and CORS config on the routes
//! that need it), websocket upgrades, no stream idle timeout, path normalization, and the
//! x-forwarded / request-id settings of a sidecar (trust nothing from the client's
//! address: `use_remote_address: false`) or of a gateway (the edge: it is the remote
//! address, trusts as many `x-forwarded-for` hops as `gatewayTopology.numTrustedProxies`
//! says, and it sanitizes client-certificate headers).

use envoy_types::pb::envoy::config::listener::v3::Filter;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, MaxStreamDuration,
};
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    CodecType, ForwardClientCertDetails, PathWithEscapedSlashesAction, RouteSpecifier,
    SetCurrentClientCertDetails, UpgradeConfig,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpFilterConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::{BoolValue, Duration};
use envoy_types::util::pack_any;

use crate::translate::clusters::ads_config_source;

pub const HCM: &str = "envoy.filters.network.http_connection_manager";
pub const FAULT: &str = "envoy.filters.http.fault";
pub const CORS: &str = "envoy.filters.http.cors";
pub const ROUTER: &str = "envoy.filters.http.router";
/// ALPN values that mean plaintext HTTP, for protocol sniffing (`http_inspector`).
pub const HTTP_ALPNS: [&str; 3] = ["http/1.0", "http/1.1", "h2c"];
/// The `server` header Istio's proxies send.
const SERVER_NAME: &str = "istio-envoy";

/// Which side of the mesh an HTTP listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    SidecarOutbound,
    SidecarInbound,
    /// `trusted_hops`: the proxies in front of the gateway whose `x-forwarded-for`
    /// entries are believed (meshConfig `defaultConfig.gatewayTopology.numTrustedProxies`).
    Gateway {
        trusted_hops: u32,
    },
}

impl Side {
    /// The gateway side under `mesh`'s topology.
    pub fn gateway(mesh: &trellis_api::istio::mesh::MeshConfig) -> Side {
        Side::Gateway {
            trusted_hops: mesh
                .default_config
                .as_ref()
                .and_then(|c| c.gateway_topology.as_ref())
                .map_or(0, |t| t.num_trusted_proxies),
        }
    }
}

fn zero() -> Option<Duration> {
    Some(Duration::default())
}

/// The HTTP filters, in Istio's order for the filters Trellis emits.
pub fn http_filters() -> Vec<HttpFilter> {
    let filter = |name: &str, any| HttpFilter {
        name: name.to_string(),
        config_type: Some(HttpFilterConfig::TypedConfig(any)),
        ..Default::default()
    };
    vec![
        filter(FAULT, pack_any(HttpFault::default())),
        filter(CORS, pack_any(Cors::default())),
        filter(ROUTER, pack_any(Router::default())),
    ]
}

fn base(side: Side, stat_prefix: String) -> HttpConnectionManager {
    let mut hcm = HttpConnectionManager {
        codec_type: CodecType::Auto as i32,
        stat_prefix,
        http_filters: http_filters(),
        upgrade_configs: vec![UpgradeConfig {
            upgrade_type: "websocket".to_string(),
            ..Default::default()
        }],
        stream_idle_timeout: zero(),
        normalize_path: Some(BoolValue { value: true }),
        path_with_escaped_slashes_action: PathWithEscapedSlashesAction::KeepUnchanged as i32,
        use_remote_address: Some(BoolValue {
            value: matches!(side, Side::Gateway { .. }),
        }),
        generate_request_id: Some(BoolValue { value: true }),
        server_name: SERVER_NAME.to_string(),
        ..Default::default()
    };
    match side {
        Side::SidecarOutbound => {}
        Side::SidecarInbound => {
            // The peer's identity travels to the app in x-forwarded-client-cert.
            hcm.forward_client_cert_details = ForwardClientCertDetails::AppendForward as i32;
            hcm.set_current_client_cert_details = Some(SetCurrentClientCertDetails {
                subject: Some(BoolValue { value: true }),
                dns: true,
                uri: true,
                ..Default::default()
            });
        }
        Side::Gateway { trusted_hops } => {
            hcm.forward_client_cert_details = ForwardClientCertDetails::SanitizeSet as i32;
            hcm.xff_num_trusted_hops = trusted_hops;
        }
    }
    hcm
}

/// An HCM that takes its routes from RDS configuration `route_name`; `security`
/// (authentication and authorization filters, in order) runs before fault/cors/router.
pub fn rds(side: Side, stat_prefix: String, route_name: &str, security: &[HttpFilter]) -> Filter {
    let mut config_source = ads_config_source();
    config_source.initial_fetch_timeout = zero();
    let mut hcm = base(side, stat_prefix);
    hcm.http_filters.splice(0..0, security.iter().cloned());
    hcm.route_specifier = Some(RouteSpecifier::Rds(Rds {
        config_source: Some(config_source),
        route_config_name: route_name.to_string(),
    }));
    network_filter(hcm)
}

/// The inbound HCM: every request to the workload port goes to its `inbound|port||`
/// cluster, with no timeout of its own (the client side owns timeouts). `security`
/// (authentication and authorization filters, in order) runs before fault/cors/router.
pub fn inbound(port: u32, cluster: &str, security: &[HttpFilter]) -> Filter {
    let route = Route {
        name: "default".to_string(),
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
            ..Default::default()
        }),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.to_string())),
            timeout: zero(),
            max_stream_duration: Some(MaxStreamDuration {
                max_stream_duration: zero(),
                grpc_timeout_header_max: zero(),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut hcm = base(Side::SidecarInbound, format!("inbound_0.0.0.0_{port}"));
    hcm.http_filters.splice(0..0, security.iter().cloned());
    hcm.route_specifier = Some(RouteSpecifier::RouteConfig(RouteConfiguration {
        name: cluster.to_string(),
        virtual_hosts: vec![VirtualHost {
            name: format!("inbound|http|{port}"),
            domains: vec!["*".to_string()],
            routes: vec![route],
            ..Default::default()
        }],
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }));
    network_filter(hcm)
}

fn network_filter(hcm: HttpConnectionManager) -> Filter {
    Filter {
        name: HCM.to_string(),
        config_type: Some(ConfigType::TypedConfig(pack_any(hcm))),
    }
}

#[cfg(test)]
mod tests {
    use trellis_api::istio::mesh::{MeshConfig, ProxyConfig, Topology};

    use super::*;

    fn hcm(filter: &Filter) -> HttpConnectionManager {
        use prost::Message;
        match &filter.config_type {
            Some(ConfigType::TypedConfig(any)) => {
                HttpConnectionManager::decode(any.value.as_slice()).unwrap()
            }
            other => panic!("no typed config: {other:?}"),
        }
    }

    #[test]
    fn a_gateway_trusts_the_meshs_number_of_forwarding_proxies_and_a_sidecar_none() {
        let mesh = MeshConfig {
            default_config: Some(ProxyConfig {
                gateway_topology: Some(Topology {
                    num_trusted_proxies: 2,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let gateway = hcm(&rds(Side::gateway(&mesh), "p".into(), "r", &[]));
        assert_eq!(gateway.xff_num_trusted_hops, 2);
        assert_eq!(gateway.use_remote_address, Some(BoolValue { value: true }));
        let default = hcm(&rds(
            Side::gateway(&MeshConfig::default()),
            "p".into(),
            "r",
            &[],
        ));
        assert_eq!(default.xff_num_trusted_hops, 0);
        let sidecar = hcm(&rds(Side::SidecarOutbound, "p".into(), "r", &[]));
        assert_eq!(sidecar.xff_num_trusted_hops, 0);
        assert_eq!(sidecar.use_remote_address, Some(BoolValue { value: false }));
    }
}
