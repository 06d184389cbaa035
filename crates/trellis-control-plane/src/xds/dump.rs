//! A proxy's configuration summarised for people: the rows of istioctl's `proxy-config`
//! tables, as serde structs. Two sources give the same summary, so an operator can compare
//! them: [`ConfigDump::from_resources`] (what translation produces for the proxy, served
//! at `/debug/config_dump`) and [`ConfigDump::from_envoy`] (Envoy's admin
//! `/config_dump?include_eds` JSON). envoy-types has no serde, and the tables need a few
//! fields only, so both sides read just those.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, HealthStatus, Metadata};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;
use envoy_types::pb::google::protobuf::value::Kind as ValueKind;
use prost::Message;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::resources::{ProxyResources, XdsResource, XdsType};

const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TCP_PROXY: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

/// One proxy's configuration, summarised.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigDump {
    pub proxy: String,
    pub clusters: Vec<ClusterInfo>,
    pub listeners: Vec<ListenerInfo>,
    pub routes: Vec<RouteInfo>,
    pub endpoints: Vec<EndpointInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub name: String,
    /// Envoy's discovery type: `EDS`, `STATIC`, `STRICT_DNS`, `ORIGINAL_DST`...
    #[serde(rename = "type")]
    pub kind: String,
    /// `name.namespace` of the DestinationRule in force, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_rule: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListenerInfo {
    pub name: String,
    pub address: String,
    pub port: u32,
    /// One per filter chain (the default chain last).
    pub chains: Vec<ChainInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainInfo {
    /// istioctl's wording: `SNI: a.com; Trans: tls; App: h2; Addr: 10.0.0.0/8:80`, or `ALL`.
    #[serde(rename = "match")]
    pub matches: String,
    /// `Route: 9080`, `Cluster: outbound|...`, `Inline Route`, `Non-HTTP/Non-TCP`.
    pub destination: String,
}

/// One route of one virtual host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteInfo {
    /// The route configuration.
    pub name: String,
    pub virtual_host: String,
    pub domains: Vec<String>,
    /// `/*` (prefix), `/exact`, `regex`; `+ N headers` when headers are matched too.
    #[serde(rename = "match")]
    pub matches: String,
    /// `name.namespace` of the VirtualService, when the route came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_service: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// `address:port`.
    pub endpoint: String,
    /// `HEALTHY`, `UNHEALTHY`, `DRAINING`...
    pub status: String,
    pub cluster: String,
}

// ---------------------------------------------------------------------------------------
// From translation

impl ConfigDump {
    /// The summary of translated resources. `destination_rule` names the rule in force
    /// for a cluster name, when the caller knows it.
    pub fn from_resources(
        proxy: &str,
        resources: &ProxyResources,
        destination_rule: impl Fn(&str) -> Option<String>,
    ) -> ConfigDump {
        let mut dump = ConfigDump {
            proxy: proxy.to_string(),
            ..Default::default()
        };
        for t in XdsType::ORDER {
            for resource in resources.of_type(t).values() {
                match &**resource.as_ref() {
                    XdsResource::Cluster(c) => dump.clusters.push(cluster(c, &destination_rule)),
                    XdsResource::Endpoint(e) => dump.endpoints.extend(endpoints(e)),
                    XdsResource::Listener(l) => dump.listeners.push(listener(l)),
                    XdsResource::Route(r) => dump.routes.extend(routes(r)),
                    // The name table is not part of Envoy's config dump.
                    XdsResource::NameTable(_) => {}
                }
            }
        }
        dump
    }
}

fn cluster(c: &Cluster, destination_rule: &impl Fn(&str) -> Option<String>) -> ClusterInfo {
    let kind = match &c.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(*t)
            .map(|t| t.as_str_name().to_string())
            .unwrap_or_else(|_| t.to_string()),
        Some(ClusterDiscoveryType::ClusterType(custom)) => custom.name.clone(),
        None => "STATIC".to_string(),
    };
    ClusterInfo {
        name: c.name.clone(),
        kind,
        destination_rule: config_name(c.metadata.as_ref()).or_else(|| destination_rule(&c.name)),
    }
}

fn endpoints(e: &ClusterLoadAssignment) -> Vec<EndpointInfo> {
    e.endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .filter_map(|lb| {
            let Some(HostIdentifier::Endpoint(ep)) = &lb.host_identifier else {
                return None;
            };
            let (address, port) = socket(ep.address.as_ref())?;
            let status = HealthStatus::try_from(lb.health_status).unwrap_or_default();
            Some(EndpointInfo {
                endpoint: format!("{address}:{port}"),
                status: health(status.as_str_name()),
                cluster: e.cluster_name.clone(),
            })
        })
        .collect()
}

/// EDS that says nothing about health means healthy, as Envoy takes it.
fn health(status: &str) -> String {
    match status {
        "" | "UNKNOWN" => "HEALTHY".to_string(),
        other => other.to_string(),
    }
}

fn socket(address: Option<&Address>) -> Option<(String, u32)> {
    match address?.address.as_ref()? {
        AddressKind::SocketAddress(s) => {
            let port = match s.port_specifier {
                Some(PortSpecifier::PortValue(p)) => p,
                _ => 0,
            };
            Some((s.address.clone(), port))
        }
        _ => None,
    }
}

fn listener(l: &Listener) -> ListenerInfo {
    let (address, port) = socket(l.address.as_ref()).unwrap_or_default();
    let chains = l
        .filter_chains
        .iter()
        .chain(&l.default_filter_chain)
        .map(|chain| ChainInfo {
            matches: chain_match(chain.filter_chain_match.as_ref()),
            destination: chain_destination(chain),
        })
        .collect();
    ListenerInfo {
        name: l.name.clone(),
        address,
        port,
        chains,
    }
}

fn chain_match(m: Option<&FilterChainMatch>) -> String {
    let Some(m) = m else {
        return "ALL".to_string();
    };
    let prefixes: Vec<String> = m
        .prefix_ranges
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r.address_prefix,
                r.prefix_len.as_ref().map_or(32, |l| l.value)
            )
        })
        .collect();
    describe_match(
        &m.server_names,
        &m.transport_protocol,
        &m.application_protocols,
        &prefixes,
        m.destination_port.as_ref().map(|p| p.value),
    )
}

/// istioctl's description of a filter chain match.
pub fn describe_match(
    server_names: &[String],
    transport: &str,
    application: &[String],
    prefixes: &[String],
    port: Option<u32>,
) -> String {
    let mut parts = Vec::new();
    if !server_names.is_empty() {
        parts.push(format!("SNI: {}", server_names.join(",")));
    }
    if !transport.is_empty() {
        parts.push(format!("Trans: {transport}"));
    }
    if !application.is_empty() {
        parts.push(format!("App: {}", application.join(",")));
    }
    match (prefixes.is_empty(), port) {
        (true, None) => {}
        (true, Some(port)) => parts.push(format!("Addr: *:{port}")),
        (false, port) => {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            parts.push(format!("Addr: {}{port}", prefixes.join(",")));
        }
    }
    if parts.is_empty() {
        "ALL".to_string()
    } else {
        parts.join("; ")
    }
}

fn chain_destination(chain: &FilterChain) -> String {
    for filter in &chain.filters {
        let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
            continue;
        };
        let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
        if type_name == HCM {
            if let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice()) {
                return match hcm.route_specifier {
                    Some(RouteSpecifier::Rds(rds)) => format!("Route: {}", rds.route_config_name),
                    Some(RouteSpecifier::RouteConfig(_)) => "Inline Route".to_string(),
                    _ => "HTTP".to_string(),
                };
            }
        } else if type_name == TCP_PROXY
            && let Ok(tcp) = TcpProxy::decode(any.value.as_slice())
        {
            return match tcp.cluster_specifier {
                Some(ClusterSpecifier::Cluster(c)) => format!("Cluster: {c}"),
                Some(ClusterSpecifier::WeightedClusters(w)) => weighted(
                    w.clusters
                        .iter()
                        .map(|c| (c.name.as_str(), c.weight))
                        .collect(),
                ),
                None => "TCP".to_string(),
            };
        }
    }
    "Non-HTTP/Non-TCP".to_string()
}

fn weighted(clusters: Vec<(&str, u32)>) -> String {
    let parts: Vec<String> = clusters
        .iter()
        .map(|(name, weight)| format!("{name} ({weight})"))
        .collect();
    format!("WeightedClusters: {}", parts.join(", "))
}

fn routes(r: &RouteConfiguration) -> Vec<RouteInfo> {
    let mut out = Vec::new();
    for vhost in &r.virtual_hosts {
        for route in &vhost.routes {
            let (path, headers) = route.r#match.as_ref().map_or((String::new(), 0), |m| {
                let path = match &m.path_specifier {
                    Some(PathSpecifier::Prefix(p)) => format!("{p}*"),
                    Some(PathSpecifier::Path(p)) => p.clone(),
                    Some(PathSpecifier::SafeRegex(r)) => r.regex.clone(),
                    Some(PathSpecifier::PathSeparatedPrefix(p)) => format!("{p}/*"),
                    _ => "/*".to_string(),
                };
                (path, m.headers.len())
            });
            out.push(RouteInfo {
                name: r.name.clone(),
                virtual_host: vhost.name.clone(),
                domains: vhost.domains.clone(),
                matches: describe_route(&path, headers),
                virtual_service: config_name(route.metadata.as_ref()),
            });
        }
    }
    out
}

fn describe_route(path: &str, headers: usize) -> String {
    match headers {
        0 => path.to_string(),
        1 => format!("{path} + 1 header"),
        n => format!("{path} + {n} headers"),
    }
}

/// `name.namespace` from Istio's `istio.config` metadata
/// (`/apis/networking.istio.io/v1/namespaces/NS/virtual-service/NAME`).
fn config_name(metadata: Option<&Metadata>) -> Option<String> {
    let fields = &metadata?.filter_metadata.get("istio")?.fields;
    match fields.get("config")?.kind.as_ref()? {
        ValueKind::StringValue(path) => Some(object_name(path)),
        _ => None,
    }
}

/// `/apis/GROUP/VERSION/namespaces/NS/KIND/NAME` → `NAME.NS`.
pub fn object_name(path: &str) -> String {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.iter().position(|p| *p == "namespaces") {
        Some(i) if parts.len() >= i + 4 => format!("{}.{}", parts[i + 3], parts[i + 1]),
        _ => path.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// From Envoy's admin /config_dump (JSON, proto field names)

impl ConfigDump {
    /// The summary of Envoy's `/config_dump?include_eds` output.
    pub fn from_envoy(proxy: &str, dump: &Value) -> ConfigDump {
        let mut out = ConfigDump {
            proxy: proxy.to_string(),
            ..Default::default()
        };
        let configs = dump["configs"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for config in configs {
            let kind = config["@type"].as_str().unwrap_or_default();
            let kind = kind.rsplit('.').next().unwrap_or_default();
            match kind {
                "ClustersConfigDump" => {
                    for c in entries(config, &["static_clusters", "dynamic_active_clusters"]) {
                        out.clusters.push(json_cluster(&c["cluster"]));
                    }
                }
                "ListenersConfigDump" => {
                    for l in entries(config, &["static_listeners"]) {
                        out.listeners.push(json_listener(&l["listener"]));
                    }
                    for l in entries(config, &["dynamic_listeners"]) {
                        let state = &l["active_state"];
                        if !state.is_null() {
                            out.listeners.push(json_listener(&state["listener"]));
                        }
                    }
                }
                "RoutesConfigDump" => {
                    for r in entries(config, &["static_route_configs", "dynamic_route_configs"]) {
                        out.routes.extend(json_routes(&r["route_config"]));
                    }
                }
                "EndpointsConfigDump" => {
                    for e in entries(
                        config,
                        &["static_endpoint_configs", "dynamic_endpoint_configs"],
                    ) {
                        out.endpoints.extend(json_endpoints(&e["endpoint_config"]));
                    }
                }
                _ => {}
            }
        }
        out.clusters.sort_by(|a, b| a.name.cmp(&b.name));
        out.listeners.sort_by(|a, b| a.name.cmp(&b.name));
        out.routes.sort_by(|a, b| a.name.cmp(&b.name));
        out.endpoints.sort_by(|a, b| a.cluster.cmp(&b.cluster));
        out
    }
}

fn entries<'a>(config: &'a Value, keys: &[&str]) -> Vec<&'a Value> {
    keys.iter()
        .filter_map(|k| config[*k].as_array())
        .flatten()
        .collect()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn number(v: &Value) -> Option<u32> {
    v.as_u64()
        .or_else(|| v.as_str()?.parse().ok())
        .and_then(|n| u32::try_from(n).ok())
}

fn json_cluster(c: &Value) -> ClusterInfo {
    let kind = match (c["type"].as_str(), c["cluster_type"]["name"].as_str()) {
        (Some(t), _) => t.to_string(),
        (None, Some(custom)) => custom.to_string(),
        (None, None) => "STATIC".to_string(),
    };
    ClusterInfo {
        name: text(&c["name"]),
        kind,
        destination_rule: json_config_name(&c["metadata"]),
    }
}

fn json_config_name(metadata: &Value) -> Option<String> {
    metadata["filter_metadata"]["istio"]["config"]
        .as_str()
        .map(object_name)
}

fn json_socket(address: &Value) -> (String, u32) {
    let s = &address["socket_address"];
    (text(&s["address"]), number(&s["port_value"]).unwrap_or(0))
}

fn json_listener(l: &Value) -> ListenerInfo {
    let (address, port) = json_socket(&l["address"]);
    let mut chains: Vec<&Value> = l["filter_chains"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if l["default_filter_chain"].is_object() {
        chains.push(&l["default_filter_chain"]);
    }
    ListenerInfo {
        name: text(&l["name"]),
        address,
        port,
        chains: chains
            .into_iter()
            .map(|chain| {
                let m = &chain["filter_chain_match"];
                let prefixes: Vec<String> = m["prefix_ranges"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|r| {
                                format!(
                                    "{}/{}",
                                    text(&r["address_prefix"]),
                                    number(&r["prefix_len"]).unwrap_or(32)
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                ChainInfo {
                    matches: describe_match(
                        &strings(&m["server_names"]),
                        m["transport_protocol"].as_str().unwrap_or_default(),
                        &strings(&m["application_protocols"]),
                        &prefixes,
                        number(&m["destination_port"]),
                    ),
                    destination: json_destination(chain),
                }
            })
            .collect(),
    }
}

fn json_destination(chain: &Value) -> String {
    for filter in chain["filters"].as_array().into_iter().flatten() {
        let config = &filter["typed_config"];
        let type_name = config["@type"].as_str().unwrap_or_default();
        let type_name = type_name.rsplit('/').next().unwrap_or_default();
        if type_name == HCM {
            return if let Some(name) = config["rds"]["route_config_name"].as_str() {
                format!("Route: {name}")
            } else if config["route_config"].is_object() {
                "Inline Route".to_string()
            } else {
                "HTTP".to_string()
            };
        }
        if type_name == TCP_PROXY {
            if let Some(cluster) = config["cluster"].as_str() {
                return format!("Cluster: {cluster}");
            }
            let clusters = config["weighted_clusters"]["clusters"].as_array();
            return match clusters {
                Some(clusters) => weighted(
                    clusters
                        .iter()
                        .map(|c| {
                            (
                                c["name"].as_str().unwrap_or_default(),
                                number(&c["weight"]).unwrap_or(0),
                            )
                        })
                        .collect(),
                ),
                None => "TCP".to_string(),
            };
        }
    }
    "Non-HTTP/Non-TCP".to_string()
}

fn json_routes(r: &Value) -> Vec<RouteInfo> {
    let mut out = Vec::new();
    for vhost in r["virtual_hosts"].as_array().into_iter().flatten() {
        for route in vhost["routes"].as_array().into_iter().flatten() {
            let m = &route["match"];
            let path = if let Some(p) = m["prefix"].as_str() {
                format!("{p}*")
            } else if let Some(p) = m["path"].as_str() {
                p.to_string()
            } else if let Some(p) = m["safe_regex"]["regex"].as_str() {
                p.to_string()
            } else if let Some(p) = m["path_separated_prefix"].as_str() {
                format!("{p}/*")
            } else {
                "/*".to_string()
            };
            let headers = m["headers"].as_array().map_or(0, Vec::len);
            out.push(RouteInfo {
                name: text(&r["name"]),
                virtual_host: text(&vhost["name"]),
                domains: strings(&vhost["domains"]),
                matches: describe_route(&path, headers),
                virtual_service: json_config_name(&route["metadata"]),
            });
        }
    }
    out
}

fn json_endpoints(e: &Value) -> Vec<EndpointInfo> {
    let cluster = text(&e["cluster_name"]);
    let mut out = Vec::new();
    for locality in e["endpoints"].as_array().into_iter().flatten() {
        for lb in locality["lb_endpoints"].as_array().into_iter().flatten() {
            let (address, port) = json_socket(&lb["endpoint"]["address"]);
            if address.is_empty() {
                continue;
            }
            out.push(EndpointInfo {
                endpoint: format!("{address}:{port}"),
                status: health(lb["health_status"].as_str().unwrap_or_default()),
                cluster: cluster.clone(),
            });
        }
    }
    out
}

/// Istio's cluster name, taken apart for the cluster table: `(fqdn, port, subset,
/// direction)`; other names (`BlackHoleCluster`) have only a name.
pub fn cluster_parts(name: &str) -> Option<(String, String, String, String)> {
    let mut parts = name.splitn(4, '|');
    let (Some(direction), Some(port), Some(subset), Some(fqdn)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if direction != "outbound" && direction != "inbound" {
        return None;
    }
    Some((fqdn.into(), port.into(), subset.into(), direction.into()))
}

#[cfg(test)]
mod tests;
