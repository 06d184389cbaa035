//! Workload identity, shared by the control plane's CA, the Trellis proxy and
//! `trellis agent` (so the proxy needs nothing from the control plane):
//!
//! - [`spiffe`]: `spiffe://td/ns/NS/sa/SA`, the name a workload certificate carries;
//! - [`token`]: short-lived bootstrap tokens of the local mode (HMAC, key in the state dir);
//! - [`pb`]: Istio's `IstioCertificateService` (messages, client call, server plumbing);
//! - [`pem`]: PEM and X.509 helpers both sides share;
//! - [`client`]: key + CSR → `CreateCertificate` → a [`client::WorkloadIdentity`];
//! - [`manager`]: keeps an identity fresh (renews at half-life with jitter) and publishes
//!   each one through a `tokio::sync::watch`;
//! - [`sds`]: Envoy's SDS on a Unix socket (`default`, `ROOTCA`), fed by the manager;
//! - [`agent`]: `trellis agent`, Istio's pilot-agent for a stock Envoy.

pub mod agent;
pub mod client;
pub mod files;
pub mod manager;
pub mod pb;
pub mod pem;
pub mod sds;
pub mod spiffe;
pub mod token;
