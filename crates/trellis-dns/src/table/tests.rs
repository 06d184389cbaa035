use std::collections::BTreeMap;

use super::*;
use crate::nds::NameInfo;

fn kube(name: &str, ns: &str, ip: &str) -> (String, NameInfo) {
    (
        format!("{name}.{ns}.svc.cluster.local"),
        NameInfo {
            ips: vec![ip.to_string()],
            registry: KUBERNETES.to_string(),
            shortname: name.to_string(),
            namespace: ns.to_string(),
        },
    )
}

fn entry(host: &str, ips: &[&str]) -> (String, NameInfo) {
    (
        host.to_string(),
        NameInfo {
            ips: ips.iter().map(|s| s.to_string()).collect(),
            registry: "External".to_string(),
            ..Default::default()
        },
    )
}

fn lookup(entries: Vec<(String, NameInfo)>, scope: &ProxyScope) -> Lookup {
    Lookup::new(
        &NameTable {
            table: BTreeMap::from_iter(entries),
        },
        scope,
    )
}

fn v4(l: &Lookup, name: &str) -> Option<Vec<String>> {
    l.get(name)
        .map(|a| a.v4.iter().map(|ip| ip.to_string()).collect())
}

#[test]
fn scope_comes_from_the_node_id_without_the_namespace_label() {
    let s = ProxyScope::from_node_id("sidecar~10.0.0.1~reviews-v1.shop~shop.svc.cluster.local")
        .unwrap();
    assert_eq!(s, ProxyScope::new("shop", "svc.cluster.local"));
    assert_eq!(s.domain(), "svc.cluster.local");
    assert!(ProxyScope::from_node_id("garbage").is_none());
    assert!(ProxyScope::from_node_id("a~b~c~d").is_none());
}

#[test]
fn kubernetes_services_get_istios_aliases() {
    let scope = ProxyScope::new("default", "default.svc.cluster.local");
    let l = lookup(
        vec![
            kube("reviews", "default", "240.240.90.3"),
            kube("db", "other", "240.240.1.1"),
        ],
        &scope,
    );
    let vip = Some(vec!["240.240.90.3".to_string()]);
    for name in [
        "reviews",
        "reviews.default",
        "reviews.default.svc",
        "reviews.default.svc.cluster.local",
        "REVIEWS.Default.svc.cluster.local.",
    ] {
        assert_eq!(v4(&l, name), vip, "{name}");
    }
    // Another namespace's service: not by its short name alone.
    assert!(l.get("db").is_none());
    assert!(l.get("db.other").is_some());
    assert!(l.get("db.other.svc").is_some());
    // Nothing else: no search-path expansions, no partial domains.
    for name in [
        "reviews.default.svc.cluster",
        "reviews.svc.cluster.local",
        "reviews.default.default.svc.cluster.local",
        "ratings",
    ] {
        assert!(l.get(name).is_none(), "{name}");
    }
    assert_eq!(l.len(), 4 + 3);
}

#[test]
fn other_hosts_resolve_by_their_name_only_and_wildcards_cover_subdomains() {
    let scope = ProxyScope::new("default", "default.svc.cluster.local");
    let l = lookup(
        vec![
            entry(
                "api.example.com",
                &["240.240.2.1", "240.240.2.2", "2001:db8::1"],
            ),
            entry("*.wild.example.com", &["240.240.3.1"]),
            entry("bad.example.com", &["not-an-ip", "10.0.0.0/8"]),
        ],
        &scope,
    );
    let api = l.get("api.example.com").unwrap();
    assert_eq!(api.v4.len(), 2);
    assert_eq!(api.v6, vec!["2001:db8::1".parse::<Ipv6Addr>().unwrap()]);
    assert!(l.get("api").is_none());
    assert!(l.get("a.b.wild.example.com").is_some());
    assert!(l.get("wild.example.com").is_none());
    assert!(l.get("bad.example.com").is_none(), "no usable address");
}

#[test]
fn a_kubernetes_host_outside_the_proxy_domain_gets_no_aliases() {
    let scope = ProxyScope::new("default", "default.svc.cluster.local");
    let mut other = kube("reviews", "default", "240.240.90.3");
    other.0 = "reviews.default.svc.other.domain".into();
    let l = lookup(vec![other], &scope);
    assert!(l.get("reviews.default.svc.other.domain").is_some());
    assert!(l.get("reviews").is_none());
    assert!(l.get("reviews.default").is_none());
}

#[test]
fn the_first_host_in_name_order_keeps_a_shared_alias() {
    let scope = ProxyScope::new("default", "default.svc.cluster.local");
    let mut clash = entry("reviews.default", &["240.240.9.9"]);
    clash.1.registry = "External".into();
    let l = lookup(
        vec![kube("reviews", "default", "240.240.90.3"), clash],
        &scope,
    );
    assert_eq!(
        v4(&l, "reviews.default"),
        Some(vec!["240.240.9.9".to_string()])
    );
}
