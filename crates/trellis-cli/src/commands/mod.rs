//! One module per subcommand.

pub mod analyze;
pub mod bootstrap;
pub mod control_plane;
pub mod proxy;
pub mod validate;
