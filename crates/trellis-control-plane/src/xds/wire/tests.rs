use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::service::discovery::v3::Resource;
use envoy_types::pb::google::protobuf::Any;

use super::*;
use crate::xds::resources::XdsResource;

/// A cluster whose encoding is about `size` bytes.
fn cluster(name: &str, size: usize) -> Arc<Cached> {
    Arc::new(Cached::new(XdsResource::Cluster(Cluster {
        name: name.to_string(),
        alt_stat_name: "x".repeat(size),
        ..Default::default()
    })))
}

/// Small and large resources, so that some are copied into chunks and some shared.
fn mixed() -> Vec<Arc<Cached>> {
    let mut all: Vec<Arc<Cached>> = (0..200).map(|i| cluster(&format!("c{i}"), 300)).collect();
    all.insert(50, cluster("large", 3 * SHARE_FROM));
    all.push(cluster("last", SHARE_FROM));
    all
}

fn any(r: &Cached) -> Any {
    Any::decode(r.encoded().clone()).unwrap()
}

/// The chunks joined, checked as one gRPC message and returned without its prefix.
fn framed(wire: Wire) -> (Vec<Bytes>, Bytes) {
    let len = wire.len();
    let chunks: Vec<Bytes> = wire.chunks().unwrap().collect();
    let mut all = BytesMut::new();
    for c in &chunks {
        all.put_slice(c);
    }
    assert_eq!(all[0], 0, "not compressed");
    let declared = u32::from_be_bytes([all[1], all[2], all[3], all[4]]) as usize;
    assert_eq!(declared, len);
    assert_eq!(all.len(), GRPC_PREFIX + len);
    (chunks, all.freeze().slice(GRPC_PREFIX..))
}

#[test]
fn sotw_response_reads_back_as_prost_encodes_it() {
    let resources = mixed();
    let head = DiscoveryResponse {
        version_info: "7".into(),
        type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster".into(),
        nonce: "8".into(),
        ..Default::default()
    };
    let expected = DiscoveryResponse {
        resources: resources.iter().map(|r| any(r)).collect(),
        ..head.clone()
    };
    let wire = Wire::sotw(head, resources.clone());
    assert_eq!(wire.count(), resources.len());
    assert_eq!(wire.len(), expected.encoded_len());
    assert_eq!(wire.decode::<DiscoveryResponse>().unwrap(), expected);
    let (chunks, message) = framed(wire);
    assert_eq!(DiscoveryResponse::decode(message).unwrap(), expected);
    // Chunks stay small, except large resources, which are their shared bytes.
    let large = resources.iter().find(|r| r.name() == "large").unwrap();
    for c in &chunks {
        assert!(
            c.len() <= CHUNK + SHARE_FROM || c.as_ptr() == large.encoded().as_ptr(),
            "a chunk of {} bytes",
            c.len()
        );
    }
    assert!(
        chunks
            .iter()
            .any(|c| c.as_ptr() == large.encoded().as_ptr()),
        "the large resource is not copied"
    );
    assert!(chunks.len() > 2, "{} chunks", chunks.len());
}

#[test]
fn delta_response_reads_back_with_names_versions_and_removals() {
    let resources = mixed();
    let head = DeltaDiscoveryResponse {
        system_version_info: "3".into(),
        type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster".into(),
        removed_resources: vec!["gone".into(), "also-gone".into()],
        nonce: "4".into(),
        ..Default::default()
    };
    let expected = DeltaDiscoveryResponse {
        resources: resources
            .iter()
            .map(|r| Resource {
                name: r.name().to_string(),
                version: r.version().to_string(),
                resource: Some(any(r)),
                ..Default::default()
            })
            .collect(),
        ..head.clone()
    };
    let wire = Wire::delta(head, resources.clone());
    assert_eq!(wire.count(), resources.len() + 2);
    assert_eq!(wire.len(), expected.encoded_len());
    let (_, message) = framed(wire);
    assert_eq!(DeltaDiscoveryResponse::decode(message).unwrap(), expected);
}

#[test]
fn a_response_without_resources_is_one_chunk() {
    let head = DeltaDiscoveryResponse {
        nonce: "1".into(),
        ..Default::default()
    };
    let expected = head.clone();
    let (chunks, message) = framed(Wire::delta(head, Vec::new()));
    assert_eq!(chunks.len(), 1);
    assert_eq!(DeltaDiscoveryResponse::decode(message).unwrap(), expected);
    let (chunks, message) = framed(Wire::sotw(DiscoveryResponse::default(), Vec::new()));
    assert_eq!((chunks.len(), message.len()), (1, 0));
}
