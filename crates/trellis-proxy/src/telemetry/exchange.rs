//! Istio's HTTP metadata exchange: a sidecar sends who it is in `x-envoy-peer-metadata-id`
//! (its node id) and `x-envoy-peer-metadata` (base64 of a serialized
//! `google.protobuf.Struct` of its exchanged node metadata) on requests to mesh endpoints,
//! and the server's sidecar answers with its own on the response. The receiving side reads
//! and strips both headers. Anything malformed (bad base64, too large, not a `Struct`) is
//! ignored: the peer stays unknown, the request goes on.
//!
//! Decoding costs a base64 pass and a protobuf parse, so decoded peers are cached by the
//! header value (bounded; emptied when full, so hostile headers cannot grow memory).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use envoy_types::pb::google::protobuf::Struct;
use hyper::HeaderMap;
use hyper::header::HeaderValue;
use prost::Message;

use super::peer::{self, Peer};

pub const ID_HEADER: &str = "x-envoy-peer-metadata-id";
pub const METADATA_HEADER: &str = "x-envoy-peer-metadata";

/// Larger metadata headers are ignored (Istio's own are a few hundred bytes).
pub const MAX_HEADER: usize = 8 * 1024;
/// Decoded peers kept at most.
const CACHE_LIMIT: usize = 1024;

/// Standard alphabet, padding optional: Envoy pads, Istio's Go tests do not.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// This proxy's two headers, built once.
#[derive(Debug, Clone)]
pub struct Own {
    pub id: HeaderValue,
    pub metadata: HeaderValue,
}

impl Own {
    pub fn new(node_id: &str, metadata: &serde_json::Map<String, serde_json::Value>) -> Own {
        Own {
            id: HeaderValue::from_str(node_id).unwrap_or(HeaderValue::from_static("unknown")),
            metadata: HeaderValue::from_str(&encode(&peer::exchange_struct(metadata)))
                .unwrap_or(HeaderValue::from_static("")),
        }
    }

    /// Adds both headers (replacing any the application sent).
    pub fn insert(&self, headers: &mut HeaderMap) {
        headers.insert(ID_HEADER, self.id.clone());
        headers.insert(METADATA_HEADER, self.metadata.clone());
    }
}

/// The header value for a metadata `Struct`.
pub fn encode(s: &Struct) -> String {
    general_purpose::STANDARD.encode(s.encode_to_vec())
}

/// The peer a metadata header describes, or `None` when it is malformed.
pub fn decode(value: &[u8]) -> Option<Peer> {
    if value.len() > MAX_HEADER {
        return None;
    }
    let bytes = LENIENT.decode(value).ok()?;
    let s = Struct::decode(bytes.as_slice()).ok()?;
    let p = Peer::from_struct(&s);
    (p != Peer::from_struct(&Struct::default())).then_some(p)
}

/// Decoded peers by header value.
#[derive(Debug, Default)]
pub struct PeerCache {
    peers: Mutex<HashMap<Box<[u8]>, Arc<Peer>>>,
}

impl PeerCache {
    /// Removes both exchange headers and returns the peer they describe, if any.
    pub fn take(&self, headers: &mut HeaderMap) -> Option<Arc<Peer>> {
        headers.remove(ID_HEADER);
        let value = headers.remove(METADATA_HEADER)?;
        let key = value.as_bytes();
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = peers.get(key) {
            return Some(p.clone());
        }
        let p = Arc::new(decode(key)?);
        if peers.len() >= CACHE_LIMIT {
            peers.clear();
        }
        peers.insert(key.into(), p.clone());
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metadata() -> serde_json::Map<String, serde_json::Value> {
        json!({
            "NAME": "productpage-v1-0", "NAMESPACE": "default", "WORKLOAD_NAME": "productpage-v1",
            "CLUSTER_ID": "Kubernetes", "APP_CONTAINERS": "productpage",
            "LABELS": {"app": "productpage", "version": "v1"}, "PROXY_CONFIG": {"big": true},
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn round_trip_through_headers() {
        let own = Own::new(
            "sidecar~127.0.0.1~productpage-v1-0.default~default.svc.cluster.local",
            &metadata(),
        );
        let mut headers = HeaderMap::new();
        own.insert(&mut headers);
        let cache = PeerCache::default();
        let peer = cache.take(&mut headers).expect("a peer");
        assert!(headers.is_empty(), "both headers stripped");
        assert_eq!(peer.workload, "productpage-v1");
        assert_eq!(peer.namespace, "default");
        assert_eq!(peer.cluster, "Kubernetes");
        assert_eq!(
            (peer.app.as_str(), peer.version.as_str()),
            ("productpage", "v1")
        );
        assert_eq!(peer.canonical_service, "productpage");
        // The same header again comes from the cache, the same peer.
        own.insert(&mut headers);
        assert!(Arc::ptr_eq(&peer, &cache.take(&mut headers).unwrap()));
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        let encoded = encode(&peer::exchange_struct(&metadata()));
        let unpadded = encoded.trim_end_matches('=');
        assert_eq!(
            decode(unpadded.as_bytes()).unwrap().workload,
            "productpage-v1"
        );
    }

    #[test]
    fn malformed_headers_are_ignored_and_stripped() {
        let cache = PeerCache::default();
        let huge = "A".repeat(MAX_HEADER + 4);
        let not_a_struct = general_purpose::STANDARD.encode([0xff, 0xff, 0xff, 0x0f, 0x01]);
        let empty_struct = general_purpose::STANDARD.encode(Struct::default().encode_to_vec());
        for bad in [
            "%%% not base64",
            huge.as_str(),
            not_a_struct.as_str(),
            empty_struct.as_str(),
            "",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(ID_HEADER, HeaderValue::from_static("x"));
            headers.insert(METADATA_HEADER, HeaderValue::from_str(bad).unwrap());
            assert_eq!(cache.take(&mut headers), None, "{bad:.20}");
            assert!(headers.is_empty());
        }
        // Arbitrary bytes never panic.
        let mut rng = fastrand::Rng::with_seed(7);
        for n in 0..2000 {
            let bytes: Vec<u8> = (0..n % 300).map(|_| rng.u8(..)).collect();
            let _ = decode(general_purpose::STANDARD.encode(&bytes).as_bytes());
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = PeerCache::default();
        for i in 0..(CACHE_LIMIT + 10) {
            let mut m = metadata();
            m.insert("WORKLOAD_NAME".into(), json!(format!("w{i}")));
            let mut headers = HeaderMap::new();
            Own::new("id", &m).insert(&mut headers);
            assert!(cache.take(&mut headers).is_some());
        }
        assert!(cache.peers.lock().unwrap().len() <= CACHE_LIMIT);
    }
}
