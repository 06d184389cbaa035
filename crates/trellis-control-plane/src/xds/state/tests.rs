use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LocalityLbEndpoints};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::google::rpc::Status;

use super::*;
use crate::translate::Resources;
use crate::xds::resources::{Cached, XdsResource};

/// Clusters `names`, each with a load assignment of `endpoints` localities.
fn resources(names: &[&str], endpoints: usize) -> Arc<ProxyResources> {
    Arc::new(ProxyResources::from(Resources {
        clusters: names
            .iter()
            .map(|n| Cluster {
                name: n.to_string(),
                ..Default::default()
            })
            .collect(),
        endpoints: names
            .iter()
            .map(|n| ClusterLoadAssignment {
                cluster_name: n.to_string(),
                endpoints: vec![LocalityLbEndpoints::default(); endpoints],
                ..Default::default()
            })
            .collect(),
        listeners: vec![Listener {
            name: "virtualOutbound".into(),
            ..Default::default()
        }],
        routes: vec![],
        name_table: None,
    }))
}

fn request(t: XdsType, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: t.url().to_string(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        version_info: version.to_string(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

fn nack(mut req: DiscoveryRequest, detail: &str) -> DiscoveryRequest {
    req.error_detail = Some(Status {
        code: 3,
        message: detail.to_string(),
        ..Default::default()
    });
    req
}

/// The one response, read back as the proxy reads it.
fn only(responses: Vec<(XdsType, Wire)>) -> DiscoveryResponse {
    assert_eq!(responses.len(), 1, "{responses:?}");
    responses.into_iter().next().unwrap().1.decode().unwrap()
}

/// Delta responses, read back as the proxy reads them.
fn decoded(responses: Vec<(XdsType, Wire)>) -> Vec<(XdsType, DeltaDiscoveryResponse)> {
    responses
        .into_iter()
        .map(|(t, wire)| (t, wire.decode().unwrap()))
        .collect()
}

#[test]
fn sotw_first_request_gets_everything_then_ack_is_recorded() {
    let mut s = Sotw::new(resources(&["a", "b"], 1));
    let out = s.on_request(&request(XdsType::Cluster, &[], "", ""));
    assert_eq!(out.event, Event::Subscribed(XdsType::Cluster));
    let r = only(out.responses);
    assert_eq!(r.resources.len(), 2);
    assert_eq!(r.type_url, XdsType::Cluster.url());
    let ack = s.on_request(&request(XdsType::Cluster, &[], &r.version_info, &r.nonce));
    assert_eq!(
        ack.event,
        Event::Ack(XdsType::Cluster, r.version_info.clone())
    );
    assert!(ack.responses.is_empty());
    let status = &s.status()[&XdsType::Cluster];
    assert_eq!(status.version_acked, r.version_info);
    assert_eq!(status.version_sent, r.version_info);
}

#[test]
fn sotw_stale_nonce_is_ignored() {
    let mut s = Sotw::new(resources(&["a"], 1));
    let first = only(
        s.on_request(&request(XdsType::Cluster, &[], "", ""))
            .responses,
    );
    s.on_push(resources(&["a", "b"], 1));
    let out = s.on_request(&request(
        XdsType::Cluster,
        &[],
        &first.version_info,
        &first.nonce,
    ));
    assert_eq!(out.event, Event::Stale(XdsType::Cluster));
    assert!(out.responses.is_empty());
    assert_eq!(s.status()[&XdsType::Cluster].version_acked, "");
}

#[test]
fn sotw_nack_keeps_last_good_and_is_not_resent() {
    let mut s = Sotw::new(resources(&["a"], 1));
    let v1 = only(
        s.on_request(&request(XdsType::Cluster, &[], "", ""))
            .responses,
    );
    s.on_request(&request(XdsType::Cluster, &[], &v1.version_info, &v1.nonce));
    let v2 = only(s.on_push(resources(&["a", "bad"], 1)));
    let out = s.on_request(&nack(
        request(XdsType::Cluster, &[], &v1.version_info, &v2.nonce),
        "cluster bad: invalid",
    ));
    let Event::Nack(XdsType::Cluster, n) = out.event else {
        panic!("{:?}", out.event)
    };
    assert_eq!(n.detail, "cluster bad: invalid");
    assert_eq!(n.version, v1.version_info);
    assert!(out.responses.is_empty());
    let status = &s.status()[&XdsType::Cluster];
    assert_eq!(status.version_acked, v1.version_info);
    assert_eq!(status.last_nack.as_ref(), Some(&n));
    // The same content again: nothing to send. New content: sent.
    assert!(s.on_push(resources(&["a", "bad"], 1)).is_empty());
    let v3 = only(s.on_push(resources(&["a"], 1)));
    assert_eq!(v3.resources.len(), 1);
}

#[test]
fn sotw_named_types_send_what_is_asked() {
    let mut s = Sotw::new(resources(&["a", "b", "c"], 1));
    let r = only(
        s.on_request(&request(XdsType::Endpoint, &["a"], "", ""))
            .responses,
    );
    assert_eq!(r.resources.len(), 1);
    // The ACK widens the subscription: answered at once with both.
    let out = s.on_request(&request(
        XdsType::Endpoint,
        &["a", "b"],
        &r.version_info,
        &r.nonce,
    ));
    assert!(matches!(out.event, Event::Ack(..)));
    assert_eq!(only(out.responses).resources.len(), 2);
    // A name that does not exist is simply absent.
    let st = s.status()[&XdsType::Endpoint].clone();
    let out = s.on_request(&request(
        XdsType::Endpoint,
        &["zz"],
        &st.version_sent,
        &st.nonce_sent,
    ));
    assert_eq!(only(out.responses).resources.len(), 0);
}

#[test]
fn sotw_push_sends_only_changed_types_in_order() {
    let mut s = Sotw::new(resources(&["a"], 1));
    for t in [XdsType::Cluster, XdsType::Listener] {
        s.on_request(&request(t, &[], "", ""));
    }
    s.on_request(&request(XdsType::Endpoint, &["a"], "", ""));
    assert!(s.on_push(resources(&["a"], 1)).is_empty());
    // Endpoints only.
    let types: Vec<XdsType> = s
        .on_push(resources(&["a"], 2))
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(types, [XdsType::Endpoint]);
    // A new cluster: clusters, then endpoints (Envoy re-warms), never listeners.
    let types: Vec<XdsType> = s
        .on_push(resources(&["a", "b"], 2))
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(types, [XdsType::Cluster, XdsType::Endpoint]);
}

#[test]
fn sotw_endpoint_push_carries_only_changed_assignments() {
    let mut s = Sotw::new(resources(&["a", "b"], 1));
    s.on_request(&request(XdsType::Cluster, &[], "", ""));
    s.on_request(&request(XdsType::Endpoint, &["a", "b"], "", ""));
    let mut endpoints = s.resources.of_type(XdsType::Endpoint).clone();
    let changed = ClusterLoadAssignment {
        cluster_name: "b".into(),
        endpoints: vec![LocalityLbEndpoints::default(); 3],
        ..Default::default()
    };
    endpoints.insert(
        "b".into(),
        Arc::new(Cached::new(XdsResource::Endpoint(changed))),
    );
    let next = s.resources.with_endpoints(endpoints);
    let r = only(s.on_push(Arc::new(next)));
    assert_eq!(r.type_url, XdsType::Endpoint.url());
    assert_eq!(r.resources.len(), 1, "only b changed");
}

#[test]
fn sotw_unknown_types_are_ignored() {
    let mut s = Sotw::new(resources(&["a"], 1));
    let mut req = request(XdsType::Cluster, &[], "", "");
    req.type_url = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret".into();
    let out = s.on_request(&req);
    assert!(matches!(out.event, Event::UnknownType(_)));
    assert!(out.responses.is_empty());
}

fn delta_request(t: XdsType, subscribe: &[&str], nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: t.url().to_string(),
        resource_names_subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

fn names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
    r.resources.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn delta_wildcard_then_only_changes_and_removals() {
    let mut d = Delta::new(resources(&["a", "b"], 1));
    let out = d.on_request(&delta_request(XdsType::Cluster, &[], ""));
    let (_, r) = decoded(out.responses).into_iter().next().unwrap();
    assert_eq!(names(&r), ["a", "b"]);
    let ack = d.on_request(&delta_request(XdsType::Cluster, &[], &r.nonce));
    assert!(matches!(ack.event, Event::Ack(..)));
    let out = d.on_request(&delta_request(XdsType::Endpoint, &["a", "b"], ""));
    assert_eq!(names(&decoded(out.responses)[0].1), ["a", "b"]);

    // Removing cluster b: cluster removed, its endpoints removed too.
    let pushed = decoded(d.on_push(resources(&["a"], 1)));
    assert_eq!(pushed.len(), 2);
    assert_eq!(pushed[0].1.removed_resources, ["b"]);
    assert!(pushed[0].1.resources.is_empty());
    assert_eq!(pushed[1].1.removed_resources, ["b"]);
    // Changing only a's endpoints: one ClusterLoadAssignment, nothing else.
    let pushed = decoded(d.on_push(resources(&["a"], 3)));
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].0, XdsType::Endpoint);
    assert_eq!(names(&pushed[0].1), ["a"]);
    assert!(d.on_push(resources(&["a"], 3)).is_empty());
}

#[test]
fn delta_changed_cluster_resends_its_endpoints_only() {
    let mut d = Delta::new(resources(&["a", "b"], 1));
    d.on_request(&delta_request(XdsType::Cluster, &[], ""));
    d.on_request(&delta_request(XdsType::Endpoint, &["a", "b"], ""));
    let mut changed = (*resources(&["a", "b"], 1)).clone();
    let mut res = Resources::default();
    for r in changed.of_type(XdsType::Cluster).values() {
        if let XdsResource::Cluster(c) = &***r {
            let mut c = c.clone();
            if c.name == "a" {
                c.alt_stat_name = "changed".into();
            }
            res.clusters.push(c);
        }
    }
    for r in changed.of_type(XdsType::Endpoint).values() {
        if let XdsResource::Endpoint(e) = &***r {
            res.endpoints.push(e.clone());
        }
    }
    changed = ProxyResources::from(res);
    let pushed = decoded(d.on_push(Arc::new(changed)));
    let summary: Vec<(XdsType, Vec<&str>)> = pushed.iter().map(|(t, r)| (*t, names(r))).collect();
    assert_eq!(
        summary,
        [
            (XdsType::Cluster, vec!["a"]),
            (XdsType::Endpoint, vec!["a"])
        ]
    );
}

#[test]
fn delta_nack_is_recorded_and_content_not_resent() {
    let mut d = Delta::new(resources(&["a"], 1));
    let r = decoded(
        d.on_request(&delta_request(XdsType::Cluster, &[], ""))
            .responses,
    )[0]
    .1
    .clone();
    d.on_request(&delta_request(XdsType::Cluster, &[], &r.nonce));
    let pushed = decoded(d.on_push(resources(&["a", "bad"], 1)));
    let nonce = pushed[0].1.nonce.clone();
    let mut req = delta_request(XdsType::Cluster, &[], &nonce);
    req.error_detail = Some(Status {
        code: 3,
        message: "bad".into(),
        ..Default::default()
    });
    let out = d.on_request(&req);
    let Event::Nack(_, n) = out.event else {
        panic!()
    };
    assert_eq!(n.detail, "bad");
    assert_eq!(n.version, r.system_version_info);
    assert!(d.on_push(resources(&["a", "bad"], 1)).is_empty());
}

#[test]
fn delta_reconnect_skips_what_the_proxy_already_has() {
    let current = resources(&["a", "b"], 1);
    let version_a = current.of_type(XdsType::Cluster)["a"].version().to_string();
    let mut d = Delta::new(current);
    let mut req = delta_request(XdsType::Cluster, &[], "");
    req.initial_resource_versions.insert("a".into(), version_a);
    req.initial_resource_versions
        .insert("gone".into(), "1".into());
    let out = decoded(d.on_request(&req).responses);
    let r = &out[0].1;
    assert_eq!(names(r), ["b"]);
    assert_eq!(r.removed_resources, ["gone"]);
}

#[test]
fn delta_subscribing_to_a_missing_name_reports_it_removed() {
    let mut d = Delta::new(resources(&["a"], 1));
    let first = d.on_request(&delta_request(XdsType::Endpoint, &["a"], ""));
    let nonce = decoded(first.responses)[0].1.nonce.clone();
    let out = d.on_request(&delta_request(XdsType::Endpoint, &["missing"], &nonce));
    assert_eq!(decoded(out.responses)[0].1.removed_resources, ["missing"]);
}
