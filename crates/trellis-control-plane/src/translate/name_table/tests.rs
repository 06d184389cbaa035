use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::mesh::MeshSnapshot;
use crate::proxy::{DNS_CAPTURE_METADATA, ProxyKind, ProxyNode};
use crate::testing::snapshot;
use crate::translate::translate;

const MESH: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 240.240.90.3
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  selector: {app: db}
  ports:
  - {name: tcp, port: 5432}
---
apiVersion: v1
kind: Service
metadata:
  name: private
  namespace: shop
  annotations: {networking.istio.io/exportTo: .}
spec:
  clusterIP: 240.240.90.9
  ports:
  - {name: http, port: 80}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  addresses: [240.240.50.1]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 443, name: https, protocol: TLS}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: default}
spec:
  hosts: ['*.wild.example.com']
  location: MESH_EXTERNAL
  resolution: NONE
  ports:
  - {number: 80, name: http, protocol: HTTP}
";

fn proxy(namespace: &str, dns_capture: bool) -> ProxyNode {
    let id = ProxyNode::node_id(ProxyKind::Sidecar, "10.241.0.2", "client", namespace);
    let metadata = if dns_capture {
        BTreeMap::from([(DNS_CAPTURE_METADATA.to_string(), "true".to_string())])
    } else {
        BTreeMap::new()
    };
    ProxyNode::from_parts(&id, &metadata, Default::default()).unwrap()
}

fn mesh(extra: &str) -> MeshSnapshot {
    MeshSnapshot::new(
        snapshot(&format!("{MESH}{extra}")),
        &[],
        Arc::new(Default::default()),
    )
}

#[test]
fn visible_services_with_addresses_by_host_name() {
    let out = translate(&mesh(""), &proxy("default", true));
    let table = out
        .name_table
        .expect("a DNS-capturing proxy gets a name table")
        .table;
    let hosts: Vec<&str> = table.keys().map(String::as_str).collect();
    // No wildcard without addresses; `private` is exported to its own namespace only.
    assert_eq!(
        hosts,
        [
            "api.example.com",
            "db.shop.svc.cluster.local",
            "reviews.default.svc.cluster.local"
        ]
    );
    assert_eq!(
        table["reviews.default.svc.cluster.local"],
        NameInfo {
            ips: vec!["240.240.90.3".into()],
            registry: KUBERNETES.into(),
            shortname: "reviews".into(),
            namespace: "default".into(),
        }
    );
    // A Service without a clusterIP gets the allocated VIP its listeners use.
    let db = &table["db.shop.svc.cluster.local"];
    assert!(db.ips[0].starts_with("240.240."), "{db:?}");
    assert_eq!(
        (db.shortname.as_str(), db.namespace.as_str()),
        ("db", "shop")
    );
    assert_eq!(
        table["api.example.com"],
        NameInfo {
            ips: vec!["240.240.50.1".into()],
            registry: EXTERNAL.into(),
            ..Default::default()
        }
    );
}

#[test]
fn the_proxys_namespace_and_sidecar_scope_decide_what_it_sees() {
    let out = translate(&mesh(""), &proxy("shop", true));
    assert!(
        out.name_table
            .unwrap()
            .table
            .contains_key("private.shop.svc.cluster.local")
    );
    let sidecar = "---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - hosts: [./*]
";
    let table = translate(&mesh(sidecar), &proxy("default", true))
        .name_table
        .unwrap()
        .table;
    let hosts: Vec<&str> = table.keys().map(String::as_str).collect();
    assert_eq!(
        hosts,
        ["api.example.com", "reviews.default.svc.cluster.local"]
    );
}

#[test]
fn proxies_that_do_not_proxy_dns_get_none() {
    assert!(
        translate(&mesh(""), &proxy("default", false))
            .name_table
            .is_none()
    );
}

#[test]
fn wildcard_hosts_with_addresses_are_listed() {
    let extra = "---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild2, namespace: default}
spec:
  hosts: ['*.other.example.com']
  addresses: [240.240.51.1]
  location: MESH_EXTERNAL
  resolution: NONE
  ports:
  - {number: 80, name: http, protocol: HTTP}
";
    let table = translate(&mesh(extra), &proxy("default", true))
        .name_table
        .unwrap()
        .table;
    assert_eq!(table["*.other.example.com"].ips, ["240.240.51.1"]);
}
