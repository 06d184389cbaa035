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

/// Endpoints come from an index by namespace and label: a selector of several labels, one
/// whose first label few instances carry, an empty workload selector and inline endpoints
/// of two ServiceEntries for one host (a third, in a later namespace, does not own the
/// service) must still find exactly what a scan would.
#[test]
fn selectors_find_exactly_the_matching_instances_of_their_namespace() {
    let entry = |name: &str, ns: &str, address: &str, labels: &str| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{address: {address}, labels: {labels}}}\n"
        )
    };
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: shop}\nspec:\n  selector: {app: a, version: v2}\n  ports: [{name: http, port: 80}]\n\
         ---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: v2s, namespace: shop}\nspec: {hosts: [v2.example.com], resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}], workloadSelector: {labels: {version: v2}}}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: all, namespace: other}\nspec: {hosts: [all.example.com], resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}], workloadSelector: {labels: {}}}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x1, namespace: shop}\nspec: {hosts: [x.example.com], resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}], endpoints: [{address: 10.9.0.1}]}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x2, namespace: shop}\nspec: {hosts: [x.example.com, z.example.com], resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}], endpoints: [{address: 10.9.0.2}]}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x3, namespace: zz}\nspec: {hosts: [x.example.com], resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}], endpoints: [{address: 10.9.0.3}]}\n",
    );
    yaml += &entry("a1", "shop", "10.0.0.1", "{app: a, version: v1}");
    yaml += &entry("a2", "shop", "10.0.0.2", "{app: a, version: v2}");
    yaml += &entry("a2-other", "other", "10.0.0.3", "{app: a, version: v2}");
    yaml += &entry("b2", "shop", "10.0.0.4", "{app: b, version: v2}");
    yaml += &entry("bare", "shop", "10.0.0.5", "{version: v2}");
    yaml += &entry("o1", "other", "10.0.0.6", "{app: c}");
    let registry = build::build(&snapshot(&yaml), &[], "cluster.local");
    let addresses = |host: &str| -> Vec<String> {
        registry
            .endpoints(host, 80)
            .iter()
            .map(|e| e.address.clone())
            .collect()
    };
    assert_eq!(addresses("a.shop.svc.cluster.local"), ["10.0.0.2"]);
    assert_eq!(
        addresses("v2.example.com"),
        ["10.0.0.2", "10.0.0.4", "10.0.0.5"]
    );
    assert_eq!(addresses("all.example.com"), ["10.0.0.3", "10.0.0.6"]);
    assert_eq!(addresses("x.example.com"), ["10.9.0.1", "10.9.0.2"]);
    assert_eq!(addresses("z.example.com"), ["10.9.0.2"]);
}
