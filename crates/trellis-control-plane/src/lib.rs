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
//! - [`runtime`]: the `trellis control-plane` process: store → debounce → mesh → ADS, and
//!   the [`debug`] HTTP server with [`metrics`].
//! - [`ca`]: the certificate authority (workload certificates for SPIFFE ids).
//! - [`bootstrap`]: Envoy bootstrap configuration that makes a stock Envoy a mesh proxy.

pub mod bootstrap;
pub mod ca;
pub mod debug;
pub mod jwks;
pub mod mesh;
pub mod metrics;
pub mod protocol;
pub mod proxy;
pub mod registry;
pub mod runtime;
pub mod translate;
pub mod xds;

#[cfg(test)]
pub(crate) mod testing;
