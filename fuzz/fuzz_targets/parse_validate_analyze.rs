//! Arbitrary bytes through the whole configuration path: decode as a file, validate every
//! object, analyze them together. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trellis_api::istio::mesh::MeshConfig;

fuzz_target!(|data: &[u8]| {
    let decoded = trellis_api::decode_bytes("fuzz.yaml", data, "default");
    for resource in &decoded.resources {
        let _ = trellis_config::validate::validate(resource);
    }
    let _ = trellis_config::analyze::analyze(&decoded.resources, &MeshConfig::default());
    let _ = trellis_api::decode_mesh_config("mesh.yaml", data);
});
