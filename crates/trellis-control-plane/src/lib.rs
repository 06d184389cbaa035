//! The control plane: it turns Istio configuration plus the running workloads into Envoy
//! xDS for every proxy, and serves it over ADS.
//!
//! - [`registry`]: services and their endpoints, from Kubernetes Services, ServiceEntries,
//!   WorkloadEntries and proxies that registered themselves by connecting.
//! - [`proxy`]: who is asking — a proxy's identity parsed from its xDS node.
//! - [`mesh`]: the immutable push context, a config snapshot plus registry and indexes,
//!   shared by every proxy's translation.
//! - [`translate`]: the pure function `(mesh, proxy) → xDS resources`.
//! - [`xds`]: the ADS server.

pub mod mesh;
pub mod protocol;
pub mod proxy;
pub mod registry;
pub mod translate;

#[cfg(test)]
pub(crate) mod testing;
