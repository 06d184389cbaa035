//! Telemetry analyzers.

use super::{Context, Message};

pub fn selectors(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}

pub fn default_selectors(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}

pub fn providers(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}

pub fn lightstep(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}
