//! Envoy bootstrap configuration that makes a stock Envoy a mesh proxy: the node id in
//! Istio's form, the metadata Istio's agent sends, ADS over gRPC to the control plane
//! (clusters and listeners from ADS, the rest following them), and the admin interface on
//! localhost. A pure function of its options.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Value, json};

use crate::proxy::{ProxyKind, ProxyNode};

/// The name of the static cluster that reaches the control plane, as Istio names it.
pub const XDS_CLUSTER: &str = "xds-grpc";

/// The name of the static cluster that reaches the agent's SDS server, as Istio names it;
/// mTLS secrets (`default`, `ROOTCA`) are fetched through it.
pub const SDS_CLUSTER: &str = "sds-grpc";

/// Who the proxy is and where its control plane is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapOptions {
    /// Istio's node id; built from kind, IP, name and namespace when absent.
    pub node_id: Option<String>,
    pub kind: ProxyKind,
    /// The workload (pod) name.
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    pub labels: BTreeMap<String, String>,
    pub ip: IpAddr,
    /// The control plane's xDS address, `host:port`.
    pub xds_host: String,
    pub xds_port: u16,
    pub admin_port: u16,
    /// Incremental xDS (`DELTA_GRPC`) instead of state of the world.
    pub delta: bool,
}

impl BootstrapOptions {
    /// The node id the proxy introduces itself with.
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            ProxyNode::node_id(self.kind, &self.ip.to_string(), &self.name, &self.namespace)
        })
    }
}

/// Envoy's v3 bootstrap, as JSON (which Envoy reads as YAML too).
pub fn envoy_bootstrap(o: &BootstrapOptions) -> Value {
    let labels: serde_json::Map<String, Value> = o
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let xds_endpoint_type = if o.xds_host.parse::<IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    json!({
        "node": {
            "id": o.node_id(),
            "cluster": format!("{}.{}", o.name, o.namespace),
            "metadata": {
                "NAMESPACE": o.namespace,
                "SERVICE_ACCOUNT": o.service_account,
                "LABELS": labels,
                "INSTANCE_IPS": o.ip.to_string(),
                "WORKLOAD_NAME": o.name,
                "NAME": o.name,
                "CLUSTER_ID": "Kubernetes",
                "MESH_ID": "cluster.local",
            },
        },
        "admin": {
            "address": {
                "socket_address": { "address": "127.0.0.1", "port_value": o.admin_port },
            },
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": if o.delta { "DELTA_GRPC" } else { "GRPC" },
                "transport_api_version": "V3",
                "set_node_on_first_message_only": true,
                "grpc_services": [{ "envoy_grpc": { "cluster_name": XDS_CLUSTER } }],
            },
            "cds_config": { "ads": {}, "resource_api_version": "V3" },
            "lds_config": { "ads": {}, "resource_api_version": "V3" },
        },
        "static_resources": {
            "clusters": [{
                "name": XDS_CLUSTER,
                "type": xds_endpoint_type,
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": XDS_CLUSTER,
                    "endpoints": [{
                        "lb_endpoints": [{
                            "endpoint": {
                                "address": {
                                    "socket_address": {
                                        "address": o.xds_host,
                                        "port_value": o.xds_port,
                                    },
                                },
                            },
                        }],
                    }],
                },
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {
                            "http2_protocol_options": {
                                "connection_keepalive": { "interval": "30s", "timeout": "10s" },
                            },
                        },
                    },
                },
            }],
        },
    })
}

/// Adds Istio's `sds-grpc` static cluster, reaching the agent's SDS server on the Unix
/// socket `socket`, to an [`envoy_bootstrap`].
pub fn add_sds_cluster(bootstrap: &mut Value, socket: &str) {
    let cluster = json!({
        "name": SDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": SDS_CLUSTER,
            "endpoints": [{
                "lb_endpoints": [{
                    "endpoint": { "address": { "pipe": { "path": socket } } },
                }],
            }],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} },
            },
        },
    });
    if let Some(clusters) = bootstrap
        .pointer_mut("/static_resources/clusters")
        .and_then(Value::as_array_mut)
    {
        clusters.push(cluster);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> BootstrapOptions {
        BootstrapOptions {
            node_id: None,
            kind: ProxyKind::Sidecar,
            name: "productpage-v1".into(),
            namespace: "default".into(),
            service_account: "bookinfo-productpage".into(),
            labels: BTreeMap::from([("app".into(), "productpage".into())]),
            ip: "127.0.0.2".parse().unwrap(),
            xds_host: "127.0.0.1".into(),
            xds_port: 15010,
            admin_port: 15000,
            delta: false,
        }
    }

    #[test]
    fn node_and_metadata_as_istio_agent_sends_them() {
        let b = envoy_bootstrap(&options());
        assert_eq!(
            b["node"]["id"],
            "sidecar~127.0.0.2~productpage-v1.default~default.svc.cluster.local"
        );
        let md = &b["node"]["metadata"];
        assert_eq!(md["NAMESPACE"], "default");
        assert_eq!(md["SERVICE_ACCOUNT"], "bookinfo-productpage");
        assert_eq!(md["LABELS"]["app"], "productpage");
        assert_eq!(md["INSTANCE_IPS"], "127.0.0.2");
        assert_eq!(md["WORKLOAD_NAME"], "productpage-v1");
        assert_eq!(b["dynamic_resources"]["ads_config"]["api_type"], "GRPC");
        assert_eq!(b["static_resources"]["clusters"][0]["type"], "STATIC");
        assert_eq!(b["admin"]["address"]["socket_address"]["port_value"], 15000);
    }

    #[test]
    fn the_sds_cluster_reaches_the_agent_socket() {
        let plain = envoy_bootstrap(&options());
        let mut b = plain.clone();
        add_sds_cluster(&mut b, "/run/sds.sock");
        let clusters = b["static_resources"]["clusters"].as_array().unwrap();
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[0], plain["static_resources"]["clusters"][0]);
        assert_eq!(clusters[1]["name"], SDS_CLUSTER);
        let endpoint = &clusters[1]["load_assignment"]["endpoints"][0]["lb_endpoints"][0];
        assert_eq!(
            endpoint["endpoint"]["address"]["pipe"]["path"],
            "/run/sds.sock"
        );
    }

    #[test]
    fn the_node_id_parses_back_and_overrides_win() {
        let o = options();
        let node =
            ProxyNode::from_parts(&o.node_id(), &Default::default(), Default::default()).unwrap();
        assert_eq!(node.namespace, "default");
        let custom = BootstrapOptions {
            node_id: Some("router~1.2.3.4~gw.istio-system~istio-system.svc.cluster.local".into()),
            xds_host: "istiod.local".into(),
            delta: true,
            ..options()
        };
        let b = envoy_bootstrap(&custom);
        assert_eq!(b["node"]["id"], custom.node_id.unwrap());
        assert_eq!(
            b["dynamic_resources"]["ads_config"]["api_type"],
            "DELTA_GRPC"
        );
        assert_eq!(b["static_resources"]["clusters"][0]["type"], "STRICT_DNS");
    }
}
