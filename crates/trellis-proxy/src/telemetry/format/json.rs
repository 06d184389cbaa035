//! `json_format`: a `google.protobuf.Struct` whose string values are format strings,
//! rendered as one JSON object per line with Envoy's typing: a value that is exactly one
//! operator keeps its type (a number, or `null` when missing); other strings are text.

use envoy_types::pb::google::protobuf::{Struct, Value as PbValue, value::Kind as PbKind};

use super::context::Value;
use super::{Context, FormatError, Part, Template};

/// One node of the JSON template.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Keys sorted, each already JSON-encoded with its quotes.
    Object(Vec<(String, Node)>),
    List(Vec<Node>),
    /// A non-string value, JSON-encoded once.
    Literal(String),
    Template(Template),
}

impl Node {
    /// The template of a `json_format` struct.
    pub fn from_struct(s: &Struct) -> Result<Node, FormatError> {
        let mut fields: Vec<(&String, &PbValue)> = s.fields.iter().collect();
        fields.sort_by(|a, b| a.0.cmp(b.0));
        let nodes = fields
            .into_iter()
            .map(|(k, v)| Ok((quoted(k), Node::from_value(v)?)))
            .collect::<Result<Vec<_>, FormatError>>()?;
        Ok(Node::Object(nodes))
    }

    fn from_value(v: &PbValue) -> Result<Node, FormatError> {
        Ok(match &v.kind {
            None | Some(PbKind::NullValue(_)) => Node::Literal("null".into()),
            Some(PbKind::NumberValue(n)) => Node::Literal(
                serde_json::Number::from_f64(*n)
                    .ok_or_else(|| FormatError::Json(format!("{n} is not a JSON number")))?
                    .to_string(),
            ),
            Some(PbKind::BoolValue(b)) => Node::Literal(b.to_string()),
            Some(PbKind::StringValue(s)) => Node::Template(Template::parse(s)?),
            Some(PbKind::StructValue(s)) => Node::from_struct(s)?,
            Some(PbKind::ListValue(l)) => Node::List(
                l.values
                    .iter()
                    .map(Node::from_value)
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// The operators the proxy renders as `-` (or `null`).
    pub fn unimplemented(&self) -> Vec<String> {
        match self {
            Node::Object(fields) => fields.iter().flat_map(|(_, n)| n.unimplemented()).collect(),
            Node::List(nodes) => nodes.iter().flat_map(Node::unimplemented).collect(),
            Node::Literal(_) => Vec::new(),
            Node::Template(t) => t.unimplemented().map(str::to_string).collect(),
        }
    }

    /// Appends the JSON value.
    pub fn render(&self, ctx: &Context<'_>, omit_empty: bool, out: &mut String) {
        match self {
            Node::Object(fields) => {
                out.push('{');
                let mut first = true;
                for (key, node) in fields {
                    if omit_empty && node.is_missing(ctx) {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(key);
                    out.push(':');
                    node.render(ctx, omit_empty, out);
                }
                out.push('}');
            }
            Node::List(nodes) => {
                out.push('[');
                for (i, node) in nodes.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    node.render(ctx, omit_empty, out);
                }
                out.push(']');
            }
            Node::Literal(s) => out.push_str(s),
            Node::Template(t) => render_template(t, ctx, omit_empty, out),
        }
    }

    /// A single operator without a value (dropped under `omit_empty_values`).
    fn is_missing(&self, ctx: &Context<'_>) -> bool {
        match self {
            Node::Template(Template(parts)) => match parts.as_slice() {
                [Part::Command { op, .. }] => matches!(ctx.value(op), Value::Missing),
                _ => false,
            },
            _ => false,
        }
    }
}

fn render_template(t: &Template, ctx: &Context<'_>, omit_empty: bool, out: &mut String) {
    if let [Part::Command { op, max_len }] = t.0.as_slice() {
        match ctx.value(op) {
            Value::Missing => return out.push_str("null"),
            Value::Num(n) if op.is_numeric() && max_len.is_none() => {
                return Value::Num(n).write(out);
            }
            _ => {}
        }
    }
    let start = out.len();
    t.render(ctx, omit_empty, out);
    escape_tail(out, start);
}

/// Turns what was appended after `start` into a JSON string literal.
fn escape_tail(out: &mut String, start: usize) {
    let plain = out
        .get(start..)
        .is_some_and(|raw| !raw.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
    if plain {
        // The common case needs only its quotes: no allocation.
        out.insert(start, '"');
        out.push('"');
    } else {
        let raw = out.split_off(start);
        out.push_str(&quoted(&raw));
    }
}

fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}
