//! Sidecar analyzers.

use super::{Context, Message};

pub fn selectors(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}
