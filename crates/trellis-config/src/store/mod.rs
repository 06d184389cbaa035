//! The file-backed configuration store.
