//! The demo applications the local mesh runs, as a library so that tests and `trellis demo`
//! can start them in-process, and as the `trellis-app` binary for workloads in their own
//! network namespaces.
//!
//! - [`bookinfo`]: Istio's Bookinfo (productpage, details, reviews v1/v2/v3, ratings) with
//!   its topology, host names, port, JSON shapes, forwarded headers and timeouts, so that
//!   Istio's Bookinfo routing samples apply unchanged;
//! - [`httpbin`]: an httpbin-like server (`/status`, `/delay`, `/headers`, `/anything`...);
//! - [`tcp_echo`]: Istio's tcp-echo sample (a prefix before every line);
//! - [`client`]: a client that sends a fixed number of requests and counts what came back,
//!   per status, per value of a response header and per transport error;
//! - [`cli`]: the command line of `trellis-app` and of `trellis app`;
//! - [`server`]: the HTTP server every app shares; it stamps each response with
//!   [`APP_HEADER`] so versions can be counted without parsing bodies.
//!
//! This crate depends on no other Trellis crate: the apps know nothing of the mesh.

pub mod bookinfo;
pub mod cli;
pub mod client;
pub mod http;
pub mod httpbin;
pub mod server;
pub mod tcp_echo;
pub mod upstream;

pub use server::{App, Running, serve, start};

/// The response header naming the app and version that answered, e.g. `reviews-v2`.
pub const APP_HEADER: &str = "x-trellis-app";
