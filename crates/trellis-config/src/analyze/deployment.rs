//! Deployment analyzers.

use super::{Context, Message};

pub fn service_association(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}

pub fn deprecated_fields(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}
