//! Request authentication: RequestAuthentication → Envoy's `jwt_authn` HTTP filter
//! ([`jwt`]), with JWKS inline as Istio sends them.

pub mod jwt;
