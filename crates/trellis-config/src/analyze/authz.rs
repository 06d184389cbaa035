//! Authorization analyzers.

use super::{Context, Message};

pub fn authorization_policies(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}

pub fn blocked_cidrs(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}
