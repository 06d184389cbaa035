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

#[cfg(test)]
mod tests {
    use trellis_api::istio::mesh::MeshConfig;

    use super::super::{Input, Level, analyze_input};

    #[test]
    fn objects_that_do_not_decode_are_schema_errors() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs, namespace: ns}\nspec: {hostz: [a]}\n";
        let decoded = trellis_api::decode_bytes("t.yaml", yaml.as_bytes(), "default");
        assert_eq!(decoded.errors.len(), 1);
        let mesh = MeshConfig::default();
        let input = Input {
            resources: &decoded.resources,
            mesh: &mesh,
            decode_errors: &decoded.errors,
        };
        let got = analyze_input(&input, |n| n == "schema.ValidationAnalyzer");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].code, "IST0106");
        assert_eq!(got[0].level, Level::Error);
        assert_eq!(got[0].origin, "VirtualService ns/vs");
        assert!(
            got[0].message.starts_with("Schema validation error: "),
            "{}",
            got[0].message
        );
    }
}
