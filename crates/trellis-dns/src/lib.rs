//! Istio's DNS proxying for both data planes: the Trellis proxy serves it itself, and
//! `trellis agent` serves it beside a stock Envoy. Apps in the mesh call services by name
//! (`http://reviews:9080/`) with no DNS server of the cluster behind them: capture sends
//! the pod's port 53 to this server, which answers from the name table the control plane
//! pushes over xDS (NDS).
//!
//! - [`nds`]: the `NameTable` message (Istio's proto, by hand) and its type URL;
//! - [`table`]: the table expanded with Istio's aliases for the asking proxy (pure);
//! - [`answer`]: one DNS message in, one answer out (pure, hickory-proto's wire format);
//! - [`server`]: UDP and TCP sockets, and the [`Names`] they answer from;
//! - [`client`]: an ADS stream for the name table alone (the agent's).
//!
//! A crate of its own, not a module of `trellis-proxy` or `trellis-identity`, because both
//! need it and neither should depend on the other; the control plane uses only [`nds`].

pub mod answer;
pub mod client;
pub mod nds;
pub mod server;
pub mod table;

use std::io;
use std::net::SocketAddr;

pub use server::{DnsServer, Names};
pub use table::ProxyScope;

/// Binds a DNS server on `address` and serves it in the background, answering from
/// `names`. Returns the bound address.
pub async fn spawn(address: SocketAddr, names: std::sync::Arc<Names>) -> io::Result<SocketAddr> {
    let server = DnsServer::bind(address).await?;
    let bound = server.local_addr()?;
    tokio::spawn(server.run(names));
    Ok(bound)
}
