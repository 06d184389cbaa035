//! ServiceEntry analyzers.

use super::{Context, Message};

pub fn protocol_addresses(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}

pub fn conflicting_protocols(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}
