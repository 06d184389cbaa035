//! The mesh on one machine (Istio's VM/WorkloadEntry model, made local): pods as network
//! namespaces on one bridge, Istio's transparent capture inside each pod, a sidecar (Envoy
//! or the Trellis proxy) beside each workload, and the control plane as a local process.
//!
//! - [`capture`]: the `istio-iptables` rule set as a pure function of its options;
//! - [`network`]: the bridge, the pod subnet and the host's guard rules (nothing leaves the
//!   bridge: `FORWARD` from it to anywhere else is dropped, nothing is NATed);
//! - [`pod`]: one network namespace per workload with a veth into the bridge, and its
//!   resolv.conf ([`resolv`]: names go to the sidecar's DNS proxy through capture);
//! - [`sidecar`], [`workload`]: `trellis run` — pod, sidecar as uid 1337, readiness, then
//!   capture, then the app; teardown in the reverse order;
//! - [`identity`]: each sidecar's bootstrap token for its certificate from the CA;
//! - [`control_plane`], [`config_dir`]: `trellis up`/`down`/`apply`/`delete`;
//! - [`demo`]: `trellis demo`, Istio's Bookinfo on the local mesh with live traffic, and its
//!   scripted tour of Istio's routing and fault-injection tasks;
//! - [`state`]: every object made is recorded before it is made, so `trellis down` and the
//!   next start remove what a crash left behind;
//! - [`netns`]: sockets opened inside a pod's namespace, and the small HTTP client the
//!   readiness checks (and tests) use through them.
//!
//! Everything here needs root (network namespaces, iptables). Without root, workloads join
//! in explicit mode instead: a Sidecar resource with `captureMode: NONE` listeners bound on
//! loopback, and the app calls its sidecar's port (see `docs/local-runtime.md`).

pub mod capture;
pub mod config_dir;
pub mod control_plane;
pub mod demo;
mod error;
pub mod exec;
pub mod identity;
pub mod netns;
pub mod network;
pub mod pod;
pub mod process;
pub mod proxy_binary;
pub mod resolv;
pub mod sidecar;
pub mod state;
pub mod workload;

pub use error::Error;
