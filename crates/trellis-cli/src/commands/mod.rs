//! One module per subcommand.

pub mod agent;
pub mod analyze;
pub mod apply;
pub mod bootstrap;
pub mod ca;
pub mod ca_args;
pub mod control_plane;
pub mod demo;
pub mod down;
pub mod local;
pub mod log_level;
pub mod node;
pub mod proxy;
pub mod proxy_config;
pub mod proxy_status;
pub mod run;
pub mod token;
pub mod up;
pub mod validate;
