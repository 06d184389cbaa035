//! A workload as Istio's telemetry names it: the proxy's own (from its node metadata), a
//! destination endpoint's (from the `istio.workload` endpoint metadata the control plane
//! puts on each `LbEndpoint`), or a peer's (from metadata exchange). All three reduce to
//! the same few fields, so labels are derived the same way whatever the source.

use envoy_types::pb::google::protobuf::{Struct, value::Kind};

/// The label value Istio reports for anything it does not know.
pub const UNKNOWN: &str = "unknown";

/// Istio's canonical-service labels, in the order Istio looks them up.
const NAME_LABELS: [&str; 3] = [
    "service.istio.io/canonical-name",
    "app.kubernetes.io/name",
    "app",
];
const REVISION_LABELS: [&str; 3] = [
    "service.istio.io/canonical-revision",
    "app.kubernetes.io/version",
    "version",
];
/// `app` and `version` labels, for `*_app` / `*_version`.
const APP_LABEL: &str = "app";
const VERSION_LABEL: &str = "version";

/// What telemetry knows about one workload; empty strings are unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Peer {
    pub workload: String,
    pub namespace: String,
    pub app: String,
    pub version: String,
    pub canonical_service: String,
    pub canonical_revision: String,
    pub cluster: String,
}

impl Peer {
    /// A workload from its name, namespace, labels and cluster id, with Istio's defaults:
    /// the canonical service falls back to the workload name, the revision to `latest`.
    pub fn from_labels<'a>(
        workload: &str,
        namespace: &str,
        cluster: &str,
        label: impl Fn(&str) -> Option<&'a str>,
    ) -> Peer {
        let first = |keys: &[&str]| keys.iter().find_map(|k| label(k)).map(str::to_string);
        Peer {
            workload: workload.to_string(),
            namespace: namespace.to_string(),
            app: label(APP_LABEL).unwrap_or_default().to_string(),
            version: label(VERSION_LABEL).unwrap_or_default().to_string(),
            canonical_service: first(&NAME_LABELS).unwrap_or_else(|| workload.to_string()),
            canonical_revision: first(&REVISION_LABELS).unwrap_or_else(|| "latest".into()),
            cluster: cluster.to_string(),
        }
    }

    /// The proxy itself, from its node metadata (`WORKLOAD_NAME`, `NAMESPACE`, `LABELS`,
    /// `CLUSTER_ID`).
    pub fn from_node(metadata: &serde_json::Map<String, serde_json::Value>) -> Peer {
        let text = |k: &str| metadata.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let labels = metadata.get("LABELS").and_then(|l| l.as_object());
        Peer::from_labels(
            text("WORKLOAD_NAME"),
            text("NAMESPACE"),
            text("CLUSTER_ID"),
            |k| labels.and_then(|l| l.get(k)).and_then(|v| v.as_str()),
        )
    }

    /// Istio's endpoint metadata `istio.workload`:
    /// `workload;namespace;canonical name;canonical revision;cluster` (an empty revision
    /// is Istio's `latest`, omitted from config). App and version are not carried.
    pub fn from_endpoint_metadata(value: &str) -> Option<Peer> {
        let mut parts = value.split(';');
        let mut next = || parts.next().unwrap_or_default().to_string();
        let (workload, namespace, service, revision, cluster) =
            (next(), next(), next(), next(), next());
        if workload.is_empty() && namespace.is_empty() {
            return None;
        }
        Some(Peer {
            workload,
            namespace,
            app: String::new(),
            version: String::new(),
            canonical_service: service,
            canonical_revision: if revision.is_empty() {
                "latest".into()
            } else {
                revision
            },
            cluster,
        })
    }

    /// A peer from the `google.protobuf.Struct` of metadata exchange (node metadata keys).
    pub fn from_struct(s: &Struct) -> Peer {
        let text = |k: &str| match s.fields.get(k).and_then(|v| v.kind.as_ref()) {
            Some(Kind::StringValue(v)) => v.as_str(),
            _ => "",
        };
        let labels = match s.fields.get("LABELS").and_then(|v| v.kind.as_ref()) {
            Some(Kind::StructValue(l)) => Some(l),
            _ => None,
        };
        let workload = match text("WORKLOAD_NAME") {
            "" => text("NAME"),
            w => w,
        };
        Peer::from_labels(
            workload,
            text("NAMESPACE"),
            text("CLUSTER_ID"),
            |k| match labels?.fields.get(k)?.kind.as_ref()? {
                Kind::StringValue(v) => Some(v.as_str()),
                _ => None,
            },
        )
    }
}

/// The node metadata keys metadata exchange carries (Istio's exchange keys).
pub const EXCHANGE_KEYS: [&str; 10] = [
    "NAME",
    "NAMESPACE",
    "LABELS",
    "WORKLOAD_NAME",
    "CLUSTER_ID",
    "SERVICE_ACCOUNT",
    "MESH_ID",
    "INSTANCE_IPS",
    "APP_CONTAINERS",
    "OWNER",
];

/// The exchanged part of the node metadata as a `google.protobuf.Struct`.
pub fn exchange_struct(metadata: &serde_json::Map<String, serde_json::Value>) -> Struct {
    let exchanged: serde_json::Map<String, serde_json::Value> = EXCHANGE_KEYS
        .iter()
        .filter_map(|k| Some((k.to_string(), metadata.get(*k)?.clone())))
        .collect();
    crate::xds::json_struct(&exchanged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn canonical_service_follows_istios_label_order() {
        let p = Peer::from_node(&node(json!({
            "WORKLOAD_NAME": "productpage-v1", "NAMESPACE": "default", "CLUSTER_ID": "Kubernetes",
            "LABELS": {"app": "productpage", "version": "v1",
                       "service.istio.io/canonical-name": "pp", "app.kubernetes.io/name": "x"},
        })));
        assert_eq!(p.canonical_service, "pp");
        assert_eq!(p.canonical_revision, "v1");
        assert_eq!((p.app.as_str(), p.version.as_str()), ("productpage", "v1"));
        let bare = Peer::from_node(&node(json!({"WORKLOAD_NAME": "w", "NAMESPACE": "ns"})));
        assert_eq!(bare.canonical_service, "w");
        assert_eq!(bare.canonical_revision, "latest");
        let k8s = Peer::from_node(&node(json!({"WORKLOAD_NAME": "w",
            "LABELS": {"app.kubernetes.io/name": "n", "app": "a", "app.kubernetes.io/version": "3"}})));
        assert_eq!(
            (
                k8s.canonical_service.as_str(),
                k8s.canonical_revision.as_str()
            ),
            ("n", "3")
        );
    }

    #[test]
    fn endpoint_metadata_is_istios_compressed_string() {
        let p = Peer::from_endpoint_metadata("ratings-v1;default;ratings;version-1;server-cluster")
            .unwrap();
        assert_eq!(p.workload, "ratings-v1");
        assert_eq!(p.namespace, "default");
        assert_eq!(p.canonical_service, "ratings");
        assert_eq!(p.canonical_revision, "version-1");
        assert_eq!(p.cluster, "server-cluster");
        assert_eq!(p.app, "");
        let latest = Peer::from_endpoint_metadata("w;ns;svc;;c").unwrap();
        assert_eq!(latest.canonical_revision, "latest");
        assert_eq!(Peer::from_endpoint_metadata(""), None);
        assert_eq!(Peer::from_endpoint_metadata(";;;;"), None);
        // Too few parts: what is there is kept, the rest empty (never a panic).
        assert_eq!(Peer::from_endpoint_metadata("w").unwrap().namespace, "");
    }

    #[test]
    fn the_exchange_struct_carries_only_exchange_keys() {
        let s = exchange_struct(&node(json!({
            "NAME": "p-0", "NAMESPACE": "ns", "LABELS": {"app": "a"}, "PROXY_CONFIG": {"x": 1},
        })));
        let mut keys: Vec<&str> = s.fields.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["LABELS", "NAME", "NAMESPACE"]);
        let p = Peer::from_struct(&s);
        assert_eq!((p.workload.as_str(), p.app.as_str()), ("p-0", "a"));
    }
}
