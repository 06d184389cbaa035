//! DestinationRule analyzers.

use super::{Context, Message};

pub fn ca_certificates(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}

pub fn subsets_select_pods(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}
