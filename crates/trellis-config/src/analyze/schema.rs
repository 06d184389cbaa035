//! IST0106 SchemaValidationError (and IST0133 SchemaWarning): objects that fail Istio's
//! per-object validation rules, and objects that could not be decoded at all.

use super::messages as m;
use super::{Context, Level, Message};
use crate::validate::{self, Level as VLevel};

pub fn validation(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for r in ctx.resources.iter().copied() {
        for f in validate::validate(r) {
            let text = if f.path.is_empty() {
                f.message.clone()
            } else {
                format!("{}: {}", f.path, f.message)
            };
            out.push(match f.level {
                VLevel::Error => m::schema_validation_error(r, &text),
                VLevel::Warning => m::schema_warning(r, &text),
            });
        }
    }
    for e in ctx.decode_errors {
        out.push(decode_error(e));
    }
}

/// A decode error as IST0106 on the object it names (or on the file when the object is
/// unknown).
fn decode_error(e: &trellis_api::DecodeError) -> Message {
    let text = match &e.path {
        Some(p) => format!("{p}: {}", e.message),
        None => e.message.clone(),
    };
    Message {
        code: "IST0106",
        level: Level::Error,
        origin: e.object.clone().unwrap_or_else(|| e.origin.to_string()),
        message: format!("Schema validation error: {text}"),
    }
}
