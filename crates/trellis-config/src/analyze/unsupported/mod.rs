//! What the translation does not honour yet (TRL0001, Trellis's own code): every field and
//! every kind in [`UNSUPPORTED`] that an object sets is reported once per exact field path,
//! so that nothing a user wrote is dropped silently (DESIGN.md, principle 1).
//!
//! The table is the single list: each entry was confirmed by reading the control plane's
//! translation (`crates/trellis-control-plane/src/translate`), and the entry goes away in
//! the commit that makes the translation honour it.
//!
//! Patterns are written with Istio's YAML names and matched against the object's proto3
//! JSON (which leaves unset fields out): `a.b` names fields, `[]` any item of a list,
//! `[x.y=V]` the items whose `x.y` is `V` (ASCII case ignored), `**` any depth (zero or
//! more fields or items). An empty pattern means the whole object: the kind itself is not
//! implemented. Telemetry access-log providers that depend on the mesh config are checked
//! apart ([`providers`]).

use serde_json::Value;
use trellis_api::Kind;

use super::context::origin;
use super::messages as m;
use super::{Context, Message};

mod providers;
mod table;
#[cfg(test)]
mod tests;

pub use table::UNSUPPORTED;

/// Where an entry looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Kind(Kind),
    /// The mesh config given to the control plane (`--mesh-config`).
    MeshConfig,
}

/// When a field found at an entry's pattern is reported.
#[derive(Debug, Clone, Copy)]
pub enum When {
    /// Whenever it is set.
    Set,
    /// When its value is one of these (an enum name, a string, `true`...).
    OneOf(&'static [&'static str]),
    /// When it is a string starting with this.
    StartsWith(&'static str),
    /// When it is a list of more than one item.
    Several,
}

/// One thing the translation does not honour.
#[derive(Debug, Clone, Copy)]
pub struct Unsupported {
    pub target: Target,
    /// The field's pattern ([module docs](self)); empty for the whole kind.
    pub field: &'static str,
    pub when: When,
    /// What happens instead, for the message.
    pub reason: &'static str,
}

pub(super) const fn kind(kind: Kind, reason: &'static str) -> Unsupported {
    Unsupported {
        target: Target::Kind(kind),
        field: "",
        when: When::Set,
        reason,
    }
}

pub(super) const fn field(
    kind: Kind,
    field: &'static str,
    when: When,
    reason: &'static str,
) -> Unsupported {
    Unsupported {
        target: Target::Kind(kind),
        field,
        when,
        reason,
    }
}

pub(super) const fn mesh(field: &'static str, reason: &'static str) -> Unsupported {
    Unsupported {
        target: Target::MeshConfig,
        field,
        when: When::Set,
        reason,
    }
}

/// The analyzer's name, to run it alone.
pub const NAME: &str = "trellis.UnsupportedFieldAnalyzer";

pub fn unsupported_fields(ctx: &Context<'_>, out: &mut Vec<Message>) {
    providers::access_log_providers(ctx, out);
    let mesh = serde_json::to_value(ctx.mesh).unwrap_or(Value::Null);
    for entry in UNSUPPORTED
        .iter()
        .filter(|e| e.target == Target::MeshConfig)
    {
        for field in find(&mesh, entry) {
            out.push(m::unsupported_field(
                "MeshConfig".to_string(),
                &field,
                entry.reason,
            ));
        }
    }
    for r in &ctx.resources {
        let target = Target::Kind(r.kind());
        let mut entries = UNSUPPORTED.iter().filter(|e| e.target == target).peekable();
        if entries.peek().is_none() {
            continue;
        }
        // Serialized once per object, only for the kinds the table names.
        let Ok(spec) = serde_json::to_value(&r.spec) else {
            continue;
        };
        let root = Value::Object([("spec".to_string(), spec)].into_iter().collect());
        for entry in entries {
            if entry.field.is_empty() {
                out.push(m::unsupported_kind(r, entry.reason));
                continue;
            }
            for field in find(&root, entry) {
                out.push(m::unsupported_field(origin(r), &field, entry.reason));
            }
        }
    }
}

/// One step of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step<'p> {
    Field(&'p str),
    /// Every item of a list whose `path` (if any) equals the value.
    Items(Option<(Vec<&'p str>, &'p str)>),
    /// Zero or more fields or items.
    AnyDepth,
}

fn parse(pattern: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let name = &rest[..end];
        match name {
            "" => {}
            "**" => steps.push(Step::AnyDepth),
            name => steps.push(Step::Field(name)),
        }
        rest = &rest[end..];
        if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']').unwrap_or(after.len());
            let filter = &after[..close];
            steps.push(Step::Items(
                filter
                    .split_once('=')
                    .map(|(path, value)| (path.split('.').collect(), value)),
            ));
            rest = after.get(close + 1..).unwrap_or("");
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    steps
}

/// The paths of the fields `entry` reports in `root`, in document order.
fn find(root: &Value, entry: &Unsupported) -> Vec<String> {
    let steps = parse(entry.field);
    let mut found = Vec::new();
    walk(root, &steps, String::new(), &mut found);
    let mut out = Vec::new();
    for (path, value) in found {
        match entry.when {
            When::Set => out.push(path),
            When::OneOf(values) => {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if values.contains(&text.as_str()) {
                    out.push(path);
                }
            }
            When::StartsWith(prefix) => {
                if value.as_str().is_some_and(|s| s.starts_with(prefix)) {
                    out.push(path);
                }
            }
            When::Several => {
                if value.as_array().is_some_and(|a| a.len() > 1) {
                    out.push(path);
                }
            }
        }
    }
    out
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn walk<'v>(
    value: &'v Value,
    steps: &[Step<'_>],
    path: String,
    out: &mut Vec<(String, &'v Value)>,
) {
    let Some((step, rest)) = steps.split_first() else {
        if !value.is_null() {
            out.push((path, value));
        }
        return;
    };
    match step {
        Step::Field(name) => {
            if let Some(v) = value.get(*name) {
                walk(v, rest, join(&path, name), out);
            }
        }
        Step::Items(filter) => {
            for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                let admitted = filter.as_ref().is_none_or(|(at, expected)| {
                    at.iter()
                        .try_fold(item, |v, k| v.get(*k))
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case(expected))
                });
                if admitted {
                    walk(item, rest, format!("{path}[{i}]"), out);
                }
            }
        }
        Step::AnyDepth => {
            walk(value, rest, path.clone(), out);
            match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        walk(v, steps, join(&path, k), out);
                    }
                }
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        walk(v, steps, format!("{path}[{i}]"), out);
                    }
                }
                _ => {}
            }
        }
    }
}
