//! Arbitrary bytes as an xDS resource for the Trellis proxy: the first byte picks the type
//! (Listener, RouteConfiguration, Cluster, ClusterLoadAssignment), the rest is decoded as
//! that protobuf and converted to the proxy's configuration. A decode error is fine, and
//! conversion must end in a configuration or a NACK reason: any panic is a bug.
//! Seeds: `fuzz/corpus/proxy_xds_decode` (the control plane's bookinfo translation).
#![no_main]

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use trellis_proxy::convert;

fuzz_target!(|data: &[u8]| {
    let Some((kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        0 => {
            if let Ok(l) = Listener::decode(bytes) {
                let _ = convert::listener::listener(&l);
            }
        }
        1 => {
            if let Ok(rc) = RouteConfiguration::decode(bytes) {
                let _ = convert::route::route_configuration(&rc);
            }
        }
        2 => {
            if let Ok(c) = Cluster::decode(bytes) {
                let _ = convert::cluster::cluster(&c);
            }
        }
        _ => {
            if let Ok(la) = ClusterLoadAssignment::decode(bytes) {
                let _ = convert::cluster::hosts(&la, "fuzz");
            }
        }
    }
});
