use super::*;
use crate::testing::snapshot;

const MESH: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 8080}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop}
spec:
  address: 127.0.0.11
  labels: {app: reviews, version: v1}
  serviceAccount: reviews
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: shop}
spec:
  address: 127.0.0.12
  labels: {app: reviews, version: v2, security.istio.io/tlsMode: disabled}
  ports: {http: 9999}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: elsewhere, namespace: other}
spec:
  address: 127.0.0.13
  labels: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payments, namespace: shop}
spec:
  hosts: [payments.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 443, name: tls, protocol: TLS}
";

#[test]
fn kubernetes_service_with_workload_entries() {
    let registry = build::build(&snapshot(MESH), &[], "cluster.local");
    let reviews = registry
        .service("reviews.shop.svc.cluster.local")
        .expect("reviews");
    assert_eq!(reviews.ports[0].protocol, Protocol::Http);
    let vip = reviews.address.expect("a VIP");
    assert_eq!(vip.octets()[..2], [240, 240]);
    let endpoints = registry.endpoints("reviews.shop.svc.cluster.local", 9080);
    let got: Vec<(&str, u32, bool)> = endpoints
        .iter()
        .map(|e| (e.address.as_str(), e.port, e.has_sidecar))
        .collect();
    // Same namespace only; targetPort unless the entry names the port; a sidecar when the
    // tlsMode label says so or, without the label, when a service account is named.
    assert_eq!(
        got,
        vec![("127.0.0.11", 8080, true), ("127.0.0.12", 9999, false)]
    );
}

#[test]
fn dns_service_entry_resolves_its_host() {
    let registry = build::build(&snapshot(MESH), &[], "cluster.local");
    let payments = registry.service("payments.example.com").expect("payments");
    assert!(payments.mesh_external);
    assert_eq!(payments.resolution, Resolution::Dns);
    let endpoints = registry.endpoints("payments.example.com", 443);
    assert_eq!(endpoints[0].address, "payments.example.com");
}

#[test]
fn registered_workloads_become_endpoints_with_sidecars() {
    let workload = Workload {
        name: "reviews-v3".into(),
        namespace: "shop".into(),
        ip: "127.0.0.14".parse().unwrap(),
        labels: [("app".to_string(), "reviews".to_string())].into(),
        service_account: "reviews".into(),
        ports: BTreeMap::new(),
        istio_mtls: true,
    };
    let registry = build::build(&snapshot(MESH), &[workload], "cluster.local");
    let endpoints = registry.endpoints("reviews.shop.svc.cluster.local", 9080);
    assert!(
        endpoints
            .iter()
            .any(|e| e.address == "127.0.0.14" && e.has_sidecar && e.service_account == "reviews")
    );
}
