//! Gateway analyzers.

use super::{Context, Message};

pub fn conflicting(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}

pub fn secrets(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}

pub fn duplicate_certificates(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}

pub fn ingress_ports(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}
