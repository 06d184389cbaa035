//! Envoy's substitution format strings (`SubstitutionFormatString`): parsed once when the
//! config is converted into a list of literal text and command operators (`%OP%`,
//! `%OP(arg)%`, `%OP(arg):maxlen%`, `%%` for a `%`), then rendered per request or
//! connection from a [`Context`] into a caller's reusable buffer.
//!
//! Text: a missing value is `-`. JSON (`json_format`): keys sorted, a value that is exactly
//! one operator keeps its type (numbers as numbers, missing as `null`), any other string is
//! rendered as text; non-string values are written as given. `omit_empty_values` drops
//! missing values (text: empty instead of `-`; JSON: the key is left out).

pub mod context;
pub mod json;
pub mod operator;
pub mod time;

pub use context::{Context, Request};
pub use operator::Operator;

/// Why a format string is rejected (Envoy rejects the same).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error(
        "Incorrect configuration: {format}. Couldn't find valid command at position {position}"
    )]
    NoCommand { format: String, position: usize },
    #[error("Not supported field in StreamInfo: {0}")]
    Unsupported(String),
    #[error("{operator} {why}")]
    Argument { operator: String, why: &'static str },
    #[error("json_format: {0}")]
    Json(String),
}

/// One piece of a format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Command {
        op: Operator,
        max_len: Option<usize>,
    },
}

/// A parsed format string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template(pub Vec<Part>);

impl Template {
    /// Parses `format` as Envoy does.
    pub fn parse(format: &str) -> Result<Template, FormatError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(at) = rest.find('%') {
            text.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("%%") {
                text.push('%');
                rest = after;
                continue;
            }
            let position = format.len() - tail.len();
            let (name, arg, max_len, used) =
                command(tail).ok_or_else(|| FormatError::NoCommand {
                    format: format.to_string(),
                    position,
                })?;
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Command {
                op: Operator::parse(name, arg)?,
                max_len,
            });
            rest = &tail[used..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template(parts))
    }

    /// The operators Envoy has that this template uses and the proxy renders as `-`.
    pub fn unimplemented(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Part::Command {
                op: Operator::Unimplemented(name),
                ..
            } => Some(name.as_str()),
            _ => None,
        })
    }

    /// Appends the rendered text; missing values as `-` (or nothing with `omit_empty`).
    pub fn render(&self, ctx: &Context<'_>, omit_empty: bool, out: &mut String) {
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Command { op, max_len } => {
                    let start = out.len();
                    if !ctx.write(op, out) && !omit_empty {
                        out.push('-');
                    }
                    truncate(out, start, *max_len);
                }
            }
        }
    }
}

/// Cuts what was appended after `start` to `max_len` bytes, on a character boundary.
fn truncate(out: &mut String, start: usize, max_len: Option<usize>) {
    if let Some(max) = max_len {
        let mut end = start.saturating_add(max).min(out.len());
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
}

/// `%NAME(arg):N%` at the start of `s` (which starts with `%`): Envoy's
/// `^%([A-Z]|[0-9]|_)+(\([^\)]*\))?(:[0-9]+)?%`. Returns the parts and the bytes used.
fn command(s: &str) -> Option<(&str, Option<&str>, Option<usize>, usize)> {
    let body = s.strip_prefix('%')?;
    let name_len = body
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(body.len());
    if name_len == 0 {
        return None;
    }
    let (name, mut rest) = body.split_at(name_len);
    let mut arg = None;
    if let Some(open) = rest.strip_prefix('(') {
        let close = open.find(')')?;
        arg = Some(&open[..close]);
        rest = &open[close + 1..];
    }
    let mut max_len = None;
    if let Some(colon) = rest.strip_prefix(':') {
        let digits = colon
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(colon.len());
        if digits == 0 {
            return None;
        }
        // Beyond usize, no line is that long: no limit.
        max_len = colon[..digits].parse().ok().or(Some(usize::MAX));
        rest = &colon[digits..];
    }
    let rest = rest.strip_prefix('%')?;
    Some((name, arg, max_len, s.len() - rest.len()))
}

/// A compiled log format: Envoy's text or JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Format {
    pub kind: Kind,
    /// `omit_empty_values`.
    pub omit_empty: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Text(Template),
    Json(json::Node),
}

impl Format {
    /// Envoy's default format, when a file access log names none.
    pub fn envoy_default() -> Format {
        Format {
            kind: Kind::Text(Template::parse(ENVOY_DEFAULT).unwrap_or_default()),
            omit_empty: false,
        }
    }

    /// Appends one line (with its newline).
    pub fn render(&self, ctx: &Context<'_>, out: &mut String) {
        match &self.kind {
            Kind::Text(t) => t.render(ctx, self.omit_empty, out),
            Kind::Json(node) => {
                node.render(ctx, self.omit_empty, out);
                out.push('\n');
            }
        }
    }

    /// The operators the proxy renders as `-`, for a warning at config time.
    pub fn unimplemented(&self) -> Vec<String> {
        let mut names: Vec<String> = match &self.kind {
            Kind::Text(t) => t.unimplemented().map(str::to_string).collect(),
            Kind::Json(node) => node.unimplemented(),
        };
        names.sort();
        names.dedup();
        names
    }
}

/// Envoy's default access log format.
pub const ENVOY_DEFAULT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

#[cfg(test)]
mod tests;
