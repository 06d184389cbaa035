//! Bookinfo as the demo runs it: the Services (Bookinfo's names, port and labels, with the
//! cluster IPs Kubernetes would have assigned), the pods (labels `app`/`version`, service
//! accounts `bookinfo-<app>`, port 9080).
//!
//! The apps call `details`, `reviews` and `ratings` by name, as in Kubernetes; their
//! sidecar's DNS proxy answers with the cluster IPs. A pod whose sidecar is a bare Envoy
//! (no agent, so no DNS proxy) reads the same names from a hosts file ([`hosts_file`]).
//! The client's traffic dials productpage's fixed cluster IP directly.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Bookinfo's port, on every service.
pub const PORT: u16 = 9080;

/// The namespace of every object and pod.
pub const NAMESPACE: &str = "default";

/// Bookinfo's services and the cluster IP each is given (in 240.240.0.0/16, where Trellis
/// keeps service addresses).
pub const SERVICES: [(&str, Ipv4Addr); 4] = [
    ("details", Ipv4Addr::new(240, 240, 90, 1)),
    ("ratings", Ipv4Addr::new(240, 240, 90, 2)),
    ("reviews", Ipv4Addr::new(240, 240, 90, 3)),
    ("productpage", Ipv4Addr::new(240, 240, 90, 4)),
];

/// The name of the pod that sends the demo's traffic.
pub const CLIENT: &str = "client";

/// The cluster IP of `service`.
pub fn vip(service: &str) -> Option<Ipv4Addr> {
    SERVICES
        .iter()
        .find(|(s, _)| *s == service)
        .map(|(_, ip)| *ip)
}

/// The Services of Istio's `bookinfo.yaml` (same names, port, port name, labels and
/// selectors), with fixed cluster IPs, which the client's traffic and the hosts file use.
pub fn services_yaml() -> String {
    SERVICES
        .iter()
        .map(|(name, ip)| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\n  labels:\n    app: {name}\n    service: {name}\nspec:\n  clusterIP: {ip}\n  ports:\n  - port: {PORT}\n    name: http\n  selector:\n    app: {name}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// `/etc/hosts` of a pod whose sidecar serves no DNS: each service by its short name,
/// `name.namespace`, `name.namespace.svc` and its full name.
pub fn hosts_file() -> String {
    let mut out = String::from("127.0.0.1 localhost\n");
    for (name, ip) in SERVICES {
        out.push_str(&format!(
            "{ip} {name} {name}.{NAMESPACE} {name}.{NAMESPACE}.svc {name}.{NAMESPACE}.svc.cluster.local\n"
        ));
    }
    out
}

/// One pod of the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    /// The ports the app serves.
    pub ports: Vec<u16>,
    /// The arguments of `trellis app` (the client pod's app is `sleep`, given as `None`).
    pub app: Option<Vec<String>>,
}

/// The six Bookinfo workloads and the client, in start order (the callees first).
pub fn pods() -> Vec<PodSpec> {
    let app = |name: &str, version: &str, args: &[&str]| PodSpec {
        name: format!("{name}-{version}"),
        labels: BTreeMap::from([
            ("app".to_string(), name.to_string()),
            ("version".to_string(), version.to_string()),
        ]),
        service_account: format!("bookinfo-{name}"),
        ports: vec![PORT],
        app: Some(args.iter().map(|a| a.to_string()).collect()),
    };
    vec![
        app("details", "v1", &["details", "--version", "v1"]),
        app("ratings", "v1", &["ratings", "--version", "v1"]),
        app("reviews", "v1", &["reviews", "--version", "v1"]),
        app("reviews", "v2", &["reviews", "--version", "v2"]),
        app("reviews", "v3", &["reviews", "--version", "v3"]),
        app("productpage", "v1", &["productpage", "--version", "v1"]),
        PodSpec {
            name: CLIENT.to_string(),
            labels: BTreeMap::from([("app".to_string(), CLIENT.to_string())]),
            service_account: CLIENT.to_string(),
            ports: Vec::new(),
            app: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_validate_as_bookinfo_services_with_their_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bookinfo-services.yaml");
        std::fs::write(&file, services_yaml()).unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        let (objects, warnings) = crate::config_dir::apply(&config, &file, NAMESPACE).unwrap();
        assert_eq!(objects.len(), 4, "{objects:?}");
        assert!(warnings.is_empty(), "{warnings:?}");
        let yaml = services_yaml();
        assert!(yaml.contains("name: reviews\n  namespace: default"));
        assert!(yaml.contains("clusterIP: 240.240.90.3"));
    }

    #[test]
    fn hosts_name_every_service_in_every_form() {
        let hosts = hosts_file();
        assert!(hosts.contains(
            "240.240.90.1 details details.default details.default.svc details.default.svc.cluster.local\n"
        ));
        assert_eq!(hosts.lines().count(), 5);
    }

    #[test]
    fn pods_carry_bookinfo_labels_and_accounts() {
        let pods = pods();
        assert_eq!(pods.len(), 7);
        let v3 = pods.iter().find(|p| p.name == "reviews-v3").unwrap();
        assert_eq!(v3.labels["app"], "reviews");
        assert_eq!(v3.labels["version"], "v3");
        assert_eq!(v3.service_account, "bookinfo-reviews");
        assert_eq!(vip("reviews"), Some(Ipv4Addr::new(240, 240, 90, 3)));
        assert!(pods.iter().all(|p| p.labels.contains_key("app")));
    }
}
