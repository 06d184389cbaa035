//! EnvoyFilter analyzers.

use super::{Context, Message};

pub fn patches(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}
