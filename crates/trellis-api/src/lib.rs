//! Istio's configuration API as Rust data, and the decoding of YAML and JSON into it.
//!
//! Everything here is pure data: the typed Istio resources (generated from Istio's API
//! definitions, so field names, defaults and enums are Istio's own), the few Kubernetes
//! objects a mesh reads, and [`decode`], which turns a file's bytes into typed objects with
//! errors that name the file, the line and the field path. Validation and analysis live in
//! `trellis-config`; nothing here knows about Envoy.

pub mod decode;
mod duration;
pub mod host;
#[allow(clippy::all)]
pub mod istio;
#[allow(clippy::all)]
#[rustfmt::skip]
mod istio_schema;
pub mod kube;
pub mod meta;
pub mod resource;
pub mod schema;
pub mod serde_util;

pub use decode::{DecodeError, Decoded, Origin, Skipped, decode_bytes, decode_mesh_config};
pub use duration::{Duration, DurationError};
pub use meta::ObjectMeta;
pub use resource::{Kind, Resource, Spec};

/// A message with proto `oneof` groups: each group lists which of its members are set, so
/// that validation can reject more than one.
pub trait OneofGroups {
    /// `(group name, members that are set)` for every oneof of the message.
    fn oneof_groups(&self) -> Vec<(&'static str, Vec<&'static str>)>;
}
