//! A proxy's identity as it introduces itself in the xDS `Node`: Istio's node id
//! `sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local` and the metadata Istio's agent sends
//! (`NAMESPACE`, `SERVICE_ACCOUNT`, `LABELS`, `INSTANCE_IPS`, `WORKLOAD_NAME`...).

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Sidecars sit beside one workload; routers are gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    Sidecar,
    Router,
}

/// Everything translation needs to know about the proxy it translates for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyNode {
    pub id: String,
    pub kind: ProxyKind,
    pub ips: Vec<IpAddr>,
    pub namespace: String,
    pub service_account: String,
    pub labels: BTreeMap<String, String>,
    pub workload_name: String,
    /// Ports the workload listens on (from `--ports` / auto-registration), if declared.
    pub ports: Vec<u32>,
    /// The proxy gets its workload certificate and the mesh root over SDS from its node
    /// agent (`sds-grpc` in its bootstrap), so it can take part in Istio mTLS. Node
    /// metadata `SDS: "true"`, Istio's old name for the same fact.
    pub sds: bool,
    /// The proxy (or its agent) answers the workload's DNS from a name table, so it is
    /// sent one (NDS). Node metadata `DNS_CAPTURE: "true"`, as Istio's agent sets it.
    pub dns_capture: bool,
}

/// The node metadata key saying the proxy has SDS ([`ProxyNode::sds`]).
pub const SDS_METADATA: &str = "SDS";

/// The node metadata key saying the proxy proxies DNS ([`ProxyNode::dns_capture`]).
pub const DNS_CAPTURE_METADATA: &str = "DNS_CAPTURE";

/// Why a node cannot be accepted as a mesh proxy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error("node id {0:?} is not of the form TYPE~IP~NAME.NAMESPACE~DOMAIN")]
    BadId(String),
    #[error("node id {0:?}: proxy type must be sidecar or router")]
    BadType(String),
}

impl ProxyNode {
    /// Builds a node from its id and metadata (string values; `LABELS` as a map).
    pub fn from_parts(
        id: &str,
        metadata: &BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
    ) -> Result<ProxyNode, NodeError> {
        let parts: Vec<&str> = id.split('~').collect();
        let [kind, ip, name, _domain] = parts.as_slice() else {
            return Err(NodeError::BadId(id.to_string()));
        };
        let kind = match *kind {
            "sidecar" => ProxyKind::Sidecar,
            "router" => ProxyKind::Router,
            _ => return Err(NodeError::BadType(id.to_string())),
        };
        let (workload, id_namespace) = name.split_once('.').unwrap_or((name, "default"));
        let namespace = metadata
            .get("NAMESPACE")
            .cloned()
            .unwrap_or_else(|| id_namespace.to_string());
        let mut ips: Vec<IpAddr> = metadata
            .get("INSTANCE_IPS")
            .map(|s| {
                s.split(',')
                    .filter_map(|ip| ip.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if ips.is_empty()
            && let Ok(ip) = ip.parse()
        {
            ips.push(ip);
        }
        let ports = metadata
            .get("APP_CONTAINERS_PORTS")
            .or_else(|| metadata.get("PORTS"))
            .map(|s| s.split(',').filter_map(|p| p.trim().parse().ok()).collect())
            .unwrap_or_default();
        Ok(ProxyNode {
            id: id.to_string(),
            kind,
            ips,
            service_account: metadata
                .get("SERVICE_ACCOUNT")
                .cloned()
                .unwrap_or_else(|| "default".to_string()),
            workload_name: metadata
                .get("WORKLOAD_NAME")
                .cloned()
                .unwrap_or_else(|| workload.to_string()),
            namespace,
            labels,
            ports,
            sds: metadata.get(SDS_METADATA).is_some_and(|v| v == "true"),
            dns_capture: metadata
                .get(DNS_CAPTURE_METADATA)
                .is_some_and(|v| v == "true"),
        })
    }

    /// Istio's node id for a proxy of this kind, address, name and namespace.
    pub fn node_id(kind: ProxyKind, ip: &str, name: &str, namespace: &str) -> String {
        let kind = match kind {
            ProxyKind::Sidecar => "sidecar",
            ProxyKind::Router => "router",
        };
        format!("{kind}~{ip}~{name}.{namespace}~{namespace}.svc.cluster.local")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_istio_node_ids() {
        let id = ProxyNode::node_id(ProxyKind::Sidecar, "10.1.0.5", "reviews-v1", "shop");
        assert_eq!(
            id,
            "sidecar~10.1.0.5~reviews-v1.shop~shop.svc.cluster.local"
        );
        let node = ProxyNode::from_parts(&id, &BTreeMap::new(), BTreeMap::new()).unwrap();
        assert_eq!(node.kind, ProxyKind::Sidecar);
        assert_eq!(node.namespace, "shop");
        assert_eq!(node.ips, vec!["10.1.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(node.workload_name, "reviews-v1");
    }

    #[test]
    fn rejects_malformed_ids() {
        let none = BTreeMap::new();
        assert!(ProxyNode::from_parts("envoy-1", &none, BTreeMap::new()).is_err());
        assert!(
            ProxyNode::from_parts("waypoint~1.2.3.4~a.b~b.svc", &none, BTreeMap::new()).is_err()
        );
    }
}
