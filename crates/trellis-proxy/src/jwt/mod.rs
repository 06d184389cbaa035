//! Envoy's JWT authentication filter (`envoy.filters.http.jwt_authn`), as Istio's
//! RequestAuthentication uses it: [`config`] (converted by [`convert`]), [`jwks`] (key sets),
//! [`token`] (parse and verify one token), [`authn`] (the filter's decision for a request,
//! pure) and [`status`] (Envoy's failure texts). Request I/O is in [`crate::authz`].

pub mod authn;
pub mod config;
pub mod convert;
pub mod jwks;
pub mod status;
pub mod token;

#[cfg(test)]
mod tests;
