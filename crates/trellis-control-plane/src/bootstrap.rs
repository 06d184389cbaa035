//! Envoy bootstrap configuration that makes a stock Envoy a mesh proxy: the node id in
//! Istio's form, the metadata Istio's agent sends, ADS over gRPC to the control plane
//! (clusters and listeners from ADS, the rest following them), and the admin interface on
//! localhost. A pure function of its options.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::proxy::{ProxyKind, ProxyNode, SDS_METADATA};
use crate::translate::mtls::SDS_CLUSTER;

/// The name of the static cluster that reaches the control plane, as Istio names it.
pub const XDS_CLUSTER: &str = "xds-grpc";

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
    /// The node agent's SDS socket: when set, the bootstrap gets Istio's `sds-grpc`
    /// cluster to it and the node says it has SDS (`SDS: "true"`), so the control plane
    /// sends it Istio mTLS, which names certificates served there.
    pub sds_socket: Option<PathBuf>,
}

impl BootstrapOptions {
    /// The node id the proxy introduces itself with.
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            ProxyNode::node_id(self.kind, &self.ip.to_string(), &self.name, &self.namespace)
        })
    }
}

/// The cluster id every proxy and endpoint carries (Istio's default for one cluster).
pub const CLUSTER_ID: &str = "Kubernetes";

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
    let mut bootstrap = json!({
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
                "CLUSTER_ID": CLUSTER_ID,
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
    });
    if let Some(socket) = &o.sds_socket {
        bootstrap["node"]["metadata"][SDS_METADATA] = json!("true");
        if let Some(clusters) = bootstrap["static_resources"]["clusters"].as_array_mut() {
            clusters.push(sds_cluster(socket));
        }
    }
    bootstrap
}

/// Istio's `sds-grpc` cluster: HTTP/2 to the node agent's Unix socket.
fn sds_cluster(socket: &Path) -> Value {
    json!({
        "name": SDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": SDS_CLUSTER,
            "endpoints": [{
                "lb_endpoints": [{
                    "endpoint": {
                        "address": { "pipe": { "path": socket.display().to_string() } },
                    },
                }],
            }],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} },
            },
        },
    })
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
            sds_socket: None,
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

    #[test]
    fn an_sds_socket_adds_the_agent_cluster_and_says_so() {
        let plain = envoy_bootstrap(&options());
        assert!(plain["node"]["metadata"].get("SDS").is_none());
        assert_eq!(
            plain["static_resources"]["clusters"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let b = envoy_bootstrap(&BootstrapOptions {
            sds_socket: Some("/var/run/trellis/sds.sock".into()),
            ..options()
        });
        assert_eq!(b["node"]["metadata"]["SDS"], "true");
        let sds = &b["static_resources"]["clusters"][1];
        assert_eq!(sds["name"], "sds-grpc");
        assert_eq!(
            sds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["pipe"]
                ["path"],
            "/var/run/trellis/sds.sock"
        );
        let node = ProxyNode::from_parts(
            b["node"]["id"].as_str().unwrap(),
            &[("SDS".to_string(), "true".to_string())].into(),
            Default::default(),
        )
        .unwrap();
        assert!(node.sds);
    }
}
