//! Envoy's role-based access control, for the HTTP filter (`envoy.filters.http.rbac`) and the
//! network filter (`envoy.filters.network.rbac`): [`config`] (the converted policy, built by
//! [`convert`]) and [`matcher`] (pure evaluation over request or connection attributes).
//! Enforcement, counters and replies are in [`crate::authz`].

pub mod config;
pub mod convert;
pub mod matcher;

#[cfg(test)]
mod tests;
