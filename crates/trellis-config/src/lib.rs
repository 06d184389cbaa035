//! What Trellis does with Istio configuration before any proxy sees it: validation of each
//! object by Istio's rules ([`validate`]), analysis of the objects together for mistakes
//! that break traffic ([`analyze`]), and the file-backed store that publishes revisioned
//! snapshots to the control plane ([`store`]).
//!
//! Validation and analysis are pure functions over decoded objects; only the store does I/O.

pub mod analyze;
pub mod store;
pub mod validate;
