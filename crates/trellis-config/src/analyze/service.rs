//! Service analyzers.

use super::{Context, Message};

pub fn port_names(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}
