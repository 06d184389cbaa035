//! Helpers shared by integration tests.

pub mod rbac_json;
