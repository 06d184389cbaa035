//! The ADS server: Envoy's aggregated discovery service, state of the world and delta.
//!
//! - [`resources`]: type URLs in push order; a proxy's resources by type and name.
//! - [`state`]: the protocol state of one stream (versions, nonces, ACK/NACK, what to send),
//!   pure and tested without sockets.
//! - [`service`]: the gRPC service (requests decoded by tonic, responses sent as [`wire`]
//!   chunks).
//! - [`ads`]: one task per stream moves messages between the proxy and its state, and
//!   re-translates when a new [`MeshUpdate`] is published.
//! - [`wire`]: responses assembled from shared resource encodings, framed lazily.
//! - [`node`]: a proxy's identity and registered workload from its xDS node.
//! - [`registration`]: connected sidecars as registry workloads, with a grace period.
//! - [`push`]: what an update changed, and how little a proxy needs recomputed for it.
//! - [`views`]: one translation per distinct proxy view and update, shared by the
//!   connections of that view.
//! - [`dump`]: a proxy's resources summarised for `/debug/config_dump` and
//!   `trellis proxy-config`, from translation or from Envoy's own config dump.
//! - [`debounce`]: bursts of changes become one push.
//! - [`status`]: what each proxy was sent and accepted, for `/debug/syncz`.

pub mod ads;
pub mod debounce;
pub mod dump;
pub mod node;
pub mod push;
pub mod registration;
pub mod resources;
pub mod service;
pub mod state;
pub mod status;
pub mod views;
pub mod wire;

use std::sync::Arc;

use tokio::time::Instant;
use trellis_config::store::Problem;

use crate::mesh::MeshSnapshot;

/// One published state of the mesh, shared by every connection.
#[derive(Debug, Clone)]
pub struct MeshUpdate {
    pub mesh: Arc<MeshSnapshot>,
    /// Grows by one with every update.
    pub generation: u64,
    /// When the first change that led to this update happened.
    pub changed_at: Instant,
    /// Configuration that is not in force, and why.
    pub problems: Arc<Vec<Problem>>,
    /// What changed since the update of the previous generation.
    pub scope: push::PushScope,
    /// The translations of this update, by view, made as connections need them.
    pub views: Arc<views::Views>,
}

pub use ads::{Ads, AdsContext};
pub use service::AdsService;
