//! From the xDS `Node` a proxy sends to who it is: its [`ProxyNode`], and — when it carries
//! what Istio's agent sends for a workload (namespace, IPs, labels) — the [`Workload`] it
//! registers while connected.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

use crate::proxy::{NodeError, ProxyKind, ProxyNode};
use crate::registry::Workload;

/// The proxy a node describes, and the workload it registers, if any.
pub fn parse(node: &Node) -> Result<(ProxyNode, Option<Workload>), NodeError> {
    let (metadata, labels) = node.metadata.as_ref().map(flatten).unwrap_or_default();
    let proxy = ProxyNode::from_parts(&node.id, &metadata, labels)?;
    let workload = workload(&proxy, &metadata);
    Ok((proxy, workload))
}

/// A sidecar that states its namespace, its addresses and its labels runs a workload;
/// anything less is only a client.
fn workload(proxy: &ProxyNode, metadata: &BTreeMap<String, String>) -> Option<Workload> {
    if proxy.kind != ProxyKind::Sidecar
        || !metadata.contains_key("NAMESPACE")
        || !metadata.contains_key("INSTANCE_IPS")
        || proxy.labels.is_empty()
    {
        return None;
    }
    Some(Workload {
        name: proxy.workload_name.clone(),
        namespace: proxy.namespace.clone(),
        ip: *proxy.ips.first()?,
        labels: proxy.labels.clone(),
        service_account: proxy.service_account.clone(),
        ports: BTreeMap::new(),
        istio_mtls: proxy.sds,
    })
}

/// Scalar metadata as strings; `LABELS` as a map.
fn flatten(metadata: &Struct) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut scalars = BTreeMap::new();
    let mut labels = BTreeMap::new();
    for (key, value) in &metadata.fields {
        match &value.kind {
            Some(Kind::StructValue(s)) if key == "LABELS" => {
                labels = s
                    .fields
                    .iter()
                    .filter_map(|(k, v)| scalar(v).map(|v| (k.clone(), v)))
                    .collect();
            }
            _ => {
                if let Some(v) = scalar(value) {
                    scalars.insert(key.clone(), v);
                }
            }
        }
    }
    (scalars, labels)
}

fn scalar(value: &Value) -> Option<String> {
    match &value.kind {
        Some(Kind::StringValue(s)) => Some(s.clone()),
        Some(Kind::BoolValue(b)) => Some(b.to_string()),
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 1e15 => {
            Some(format!("{}", *n as i64))
        }
        Some(Kind::NumberValue(n)) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn string(s: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(s.to_string())),
        }
    }

    fn node(id: &str, fields: &[(&str, Value)]) -> Node {
        Node {
            id: id.to_string(),
            metadata: Some(Struct {
                fields: fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_sidecar_with_agent_metadata_registers_its_workload() {
        let labels = Value {
            kind: Some(Kind::StructValue(Struct {
                fields: HashMap::from([("app".to_string(), string("reviews"))]),
            })),
        };
        let n = node(
            "sidecar~10.0.0.7~reviews-v1.shop~shop.svc.cluster.local",
            &[
                ("NAMESPACE", string("shop")),
                ("INSTANCE_IPS", string("10.0.0.7")),
                ("SERVICE_ACCOUNT", string("bookinfo-reviews")),
                ("LABELS", labels),
            ],
        );
        let (proxy, workload) = parse(&n).unwrap();
        assert_eq!(proxy.labels["app"], "reviews");
        let w = workload.expect("registers");
        assert_eq!(w.ip.to_string(), "10.0.0.7");
        assert_eq!(w.namespace, "shop");
        assert_eq!(w.service_account, "bookinfo-reviews");
        assert_eq!(w.name, "reviews-v1");
    }

    #[test]
    fn the_agents_name_table_node_proxies_dns_and_registers_nothing() {
        // What `trellis agent --dns-address` sends beside Envoy's own stream.
        let n = trellis_dns::client::node(
            "sidecar~10.0.0.7~reviews-v1.shop~shop.svc.cluster.local",
            "reviews.shop",
        );
        let (proxy, workload) = parse(&n).unwrap();
        assert!(proxy.dns_capture);
        assert_eq!(proxy.namespace, "shop");
        assert!(workload.is_none(), "a second registration of the workload");
    }

    #[test]
    fn a_bare_node_is_a_client_only_and_a_bad_id_an_error() {
        let (_, workload) = parse(&node("sidecar~1.2.3.4~a.b~b.svc.cluster.local", &[])).unwrap();
        assert!(workload.is_none());
        assert!(parse(&node("garbage", &[])).is_err());
        assert!(parse(&Node::default()).is_err());
    }
}
