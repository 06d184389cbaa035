//! Turns the bytes of a file (YAML with any number of documents, JSON, `kind: List`) into
//! typed [`Resource`]s.
//!
//! Decoding never stops at the first problem: each document and each object is decoded on
//! its own, so one broken object is reported (file, line, object, field path, reason) while
//! every other object of the file still comes through.

use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;

use crate::resource::KindLookup;
use crate::{Kind, ObjectMeta, Resource, Spec, kube};

/// Files larger than this are refused whole: no mesh configuration is that large, and a
/// bound keeps a stray file from exhausting memory.
pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;

/// Where an object or an error comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// The file (or `-` for standard input).
    pub file: Arc<str>,
    /// 1-based line where the object's document starts (or the error is).
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Why an object (or a whole document) could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub origin: Origin,
    /// `Kind namespace/name` once known.
    pub object: Option<String>,
    /// Field path such as `spec.http[0].route[0].weight`, when the error is in a field.
    pub path: Option<String>,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

/// Objects of a kind Trellis does not read (a ServiceAccount, an Ingress...), noted so that
/// tools can say they were skipped rather than silently dropping them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub origin: Origin,
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// Everything read from one file.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    pub resources: Vec<Resource>,
    pub skipped: Vec<Skipped>,
    pub errors: Vec<DecodeError>,
}

/// Decodes a file's bytes. Objects without `metadata.namespace` are placed in
/// `default_namespace`, as `kubectl apply -n` would.
pub fn decode_bytes(file: &str, bytes: &[u8], default_namespace: &str) -> Decoded {
    let mut out = Decoded::default();
    let file: Arc<str> = Arc::from(file);
    let at = |line| Origin {
        file: file.clone(),
        line,
    };
    if bytes.len() > MAX_FILE_BYTES {
        out.errors.push(plain_error(
            at(1),
            format!(
                "file is {} bytes, more than the {MAX_FILE_BYTES} allowed",
                bytes.len()
            ),
        ));
        return out;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let line = line_of_offset(bytes, e.valid_up_to());
            out.errors
                .push(plain_error(at(line), format!("invalid UTF-8: {e}")));
            return out;
        }
    };
    let reader = ObjectReader {
        default_namespace,
        out: &mut out,
    };
    if looks_like_json(text) {
        reader.read_json(text, at);
    } else {
        reader.read_yaml(text, at);
    }
    out
}

struct ObjectReader<'a> {
    default_namespace: &'a str,
    out: &'a mut Decoded,
}

impl ObjectReader<'_> {
    fn read_json(mut self, text: &str, at: impl Fn(usize) -> Origin) {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        loop {
            let start = stream.byte_offset();
            let Some(item) = stream.next() else { return };
            match item {
                Ok(value) => {
                    let skipped = text[start..].len() - text[start..].trim_start().len();
                    let line = line_of_offset(text.as_bytes(), start + skipped);
                    self.read_value(value, at(line));
                }
                Err(e) => {
                    let message = format!("invalid JSON: {e}");
                    self.out
                        .errors
                        .push(plain_error(at(e.line().max(1)), message));
                    return;
                }
            }
        }
    }

    fn read_yaml(mut self, text: &str, at: impl Fn(usize) -> Origin) {
        for doc in split_documents(text) {
            match serde_saphyr::from_str::<Value>(doc.text) {
                Ok(value) => {
                    let first_error = self.out.errors.len();
                    self.read_value(value, at(doc.first_line));
                    for error in &mut self.out.errors[first_error..] {
                        if let Some(line) =
                            error.path.as_deref().and_then(|p| line_of_key(doc.text, p))
                        {
                            error.origin.line = doc.first_line + line - 1;
                        }
                    }
                }
                Err(e) => {
                    let line = e.location().map(|l| l.line() as usize).unwrap_or(1);
                    let message = format!("invalid YAML: {}", e.without_snippet());
                    self.out.errors.push(plain_error(
                        at(doc.first_line + line.saturating_sub(1)),
                        strip_location(&message),
                    ));
                }
            }
        }
    }

    fn read_value(&mut self, value: Value, origin: Origin) {
        match value {
            Value::Null => {}
            Value::Object(map) => self.read_object(map, origin),
            Value::Array(items) => items
                .into_iter()
                .for_each(|v| self.read_value(v, origin.clone())),
            other => self.out.errors.push(plain_error(
                origin,
                format!(
                    "expected an object with apiVersion and kind, found {}",
                    type_name(&other)
                ),
            )),
        }
    }

    fn read_object(&mut self, mut map: Map<String, Value>, origin: Origin) {
        let api_version = string_field(&map, "apiVersion");
        let kind = string_field(&map, "kind");
        if kind == "List" && map.contains_key("items") {
            match map.remove("items") {
                Some(Value::Array(items)) => items
                    .into_iter()
                    .for_each(|v| self.read_value(v, origin.clone())),
                _ => self.out.errors.push(field_error(
                    origin,
                    None,
                    "items",
                    "a List's items must be a list",
                )),
            }
            return;
        }
        if api_version.is_empty() || kind.is_empty() {
            let missing = if kind.is_empty() {
                "kind"
            } else {
                "apiVersion"
            };
            self.out.errors.push(field_error(
                origin,
                None,
                missing,
                "required field is missing",
            ));
            return;
        }
        let meta = match read_meta(map.remove("metadata")) {
            Ok(meta) => meta,
            Err(message) => {
                let object = Some(format!("{kind} <unnamed>"));
                self.out
                    .errors
                    .push(field_error(origin, object, "metadata", &message));
                return;
            }
        };
        match Kind::resolve(&api_version, &kind) {
            KindLookup::Found(k) => self.read_typed(k, api_version, meta, map, origin),
            KindLookup::NotMeshKind => self.out.skipped.push(Skipped {
                origin,
                api_version,
                kind,
                name: meta.name,
            }),
            KindLookup::UnknownIstioKind => self.out.errors.push(plain_error_for(
                origin,
                format!("{kind} {}", meta.name),
                format!(
                    "unknown kind {kind:?} in {api_version:?}{}",
                    suggest_kind(&kind)
                ),
            )),
            KindLookup::UnservedVersion(k) => self.out.errors.push(plain_error_for(
                origin,
                format!("{kind} {}", meta.name),
                format!(
                    "apiVersion {api_version:?} does not serve {kind}; use one of {}",
                    k.versions()
                        .iter()
                        .map(|v| format!("{}/{v}", k.group()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    fn read_typed(
        &mut self,
        kind: Kind,
        api_version: String,
        mut meta: ObjectMeta,
        mut map: Map<String, Value>,
        origin: Origin,
    ) {
        let object = |meta: &ObjectMeta| format!("{kind} {}/{}", meta.namespace, meta.name);
        if meta.namespace.is_empty() && kind != Kind::Namespace {
            meta.namespace = self.default_namespace.to_string();
        }
        if meta.name.is_empty() {
            let e = field_error(
                origin,
                Some(format!("{kind} <unnamed>")),
                "metadata.name",
                "required field is missing",
            );
            self.out.errors.push(e);
            return;
        }
        map.remove("apiVersion");
        map.remove("kind");
        let status = map.remove("status");
        let spec_value = match kind {
            Kind::ConfigMap | Kind::Secret => Value::Object(map),
            _ => {
                let spec = map.remove("spec").unwrap_or(Value::Object(Map::new()));
                if kind.is_strict()
                    && let Some(extra) = map.keys().next()
                {
                    let message = unknown_field_message(
                        extra,
                        &["apiVersion", "kind", "metadata", "spec", "status"],
                    );
                    self.out
                        .errors
                        .push(field_error(origin, Some(object(&meta)), extra, &message));
                    return;
                }
                spec
            }
        };
        let spec_root = if matches!(kind, Kind::ConfigMap | Kind::Secret) {
            ""
        } else {
            "spec"
        };
        // The CRD schema's constraints, which the API server checks before anything else
        // and which typed decoding cannot see (proto3 reads `""` and `{}` as unset). Every
        // violation is listed, then the typed decoding's own complaint if it has one.
        let violations = crate::schema::check(kind, &spec_value);
        let rejected = !violations.is_empty();
        for (path, message) in violations {
            self.out.errors.push(DecodeError {
                origin: origin.clone(),
                object: Some(object(&meta)),
                path: Some(path),
                message,
            });
        }
        let spec = match Spec::decode(kind, spec_value) {
            Ok(_) if rejected => return,
            Ok(spec) => spec,
            Err(e) => {
                let (path, message) = describe_serde_error(spec_root, &e);
                self.out.errors.push(DecodeError {
                    origin,
                    object: Some(object(&meta)),
                    path: Some(path),
                    message,
                });
                return;
            }
        };
        let pod_status = match (kind, status) {
            (Kind::Pod, Some(status)) => serde_json::from_value::<kube::PodStatus>(status).ok(),
            _ => None,
        };
        self.out.resources.push(Resource {
            api_version,
            meta,
            spec,
            pod_status,
            origin,
        });
    }
}

fn read_meta(value: Option<Value>) -> Result<ObjectMeta, String> {
    match value {
        None | Some(Value::Null) => Ok(ObjectMeta::default()),
        Some(v) => serde_path_to_error::deserialize::<_, ObjectMeta>(v).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                e.inner().to_string()
            } else {
                format!("{path}: {}", e.inner())
            }
        }),
    }
}

fn string_field(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn plain_error(origin: Origin, message: String) -> DecodeError {
    DecodeError {
        origin,
        object: None,
        path: None,
        message,
    }
}

fn plain_error_for(origin: Origin, object: String, message: String) -> DecodeError {
    DecodeError {
        origin,
        object: Some(object),
        path: None,
        message,
    }
}

fn field_error(origin: Origin, object: Option<String>, path: &str, message: &str) -> DecodeError {
    DecodeError {
        origin,
        object,
        path: Some(path.to_string()),
        message: message.to_string(),
    }
}

fn suggest_kind(kind: &str) -> String {
    nearest(kind, Kind::ALL.iter().map(|k| k.as_str()))
        .map(|k| format!(", did you mean {k:?}?"))
        .unwrap_or_default()
}

/// Splits a serde error into the full field path and a message; unknown fields and enum
/// values get the nearest known name as a suggestion.
fn describe_serde_error(
    root: &str,
    error: &serde_path_to_error::Error<serde_json::Error>,
) -> (String, String) {
    let inner = error.inner().to_string();
    let mut path = error.path().to_string();
    if path == "." {
        path.clear();
    }
    let joined = match (root.is_empty(), path.is_empty()) {
        (true, _) => path,
        (false, true) => root.to_string(),
        (false, false) if path.starts_with('[') => format!("{root}{path}"),
        (false, false) => format!("{root}.{path}"),
    };
    (joined, suggest_in_message(&inner))
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" into a suggestion of the
/// nearest known name, keeping the original when nothing is close.
fn suggest_in_message(message: &str) -> String {
    for what in ["field", "variant"] {
        let prefix = format!("unknown {what} `");
        let Some(rest) = message.strip_prefix(&prefix) else {
            continue;
        };
        let Some((name, tail)) = rest.split_once('`') else {
            continue;
        };
        let listed: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        // Proto's snake_case aliases are accepted but not worth listing next to the camelCase names.
        let known: Vec<&str> = listed
            .iter()
            .copied()
            .filter(|k| !k.contains('_') || !listed.contains(&snake_to_camel(k).as_str()))
            .collect();
        return match nearest(name, known.iter().copied()) {
            Some(best) => format!("unknown {what}, did you mean `{best}`?"),
            None if known.is_empty() => format!("unknown {what} `{name}`"),
            None => format!(
                "unknown {what} `{name}`, expected one of {}",
                known.join(", ")
            ),
        };
    }
    message.to_string()
}

fn snake_to_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        match (c, upper) {
            ('_', _) => upper = true,
            (c, true) => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            (c, false) => out.push(c),
        }
    }
    out
}

fn unknown_field_message(name: &str, known: &[&str]) -> String {
    match nearest(name, known.iter().copied()) {
        Some(best) => format!("unknown field, did you mean `{best}`?"),
        None => format!("unknown field, expected one of {}", known.join(", ")),
    }
}

/// The known name closest to `name`, if any is close enough to be a plausible typo.
pub fn nearest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase().replace('_', "");
    known
        .map(|k| {
            let candidate = k.to_ascii_lowercase().replace('_', "");
            (strsim::damerau_levenshtein(&lower, &candidate), k)
        })
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

/// One YAML document of a stream and the line it starts on.
struct Document<'a> {
    text: &'a str,
    first_line: usize,
}

/// Splits a YAML stream at `---` / `...` markers so that each document is parsed (and can
/// fail) on its own.
fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        let is_marker =
            bare == "..." || bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        if is_marker {
            docs.push(Document {
                text: &text[start..offset],
                first_line,
            });
            // Content after `--- ` on the marker line belongs to the next document.
            let content_start = if bare.starts_with("---") && bare.len() > 3 {
                offset + 4
            } else {
                offset + line.len()
            };
            start = content_start.min(text.len());
            first_line = if content_start < offset + line.len() {
                index + 1
            } else {
                index + 2
            };
        }
        offset += line.len();
    }
    docs.push(Document {
        text: &text[start..],
        first_line,
    });
    docs.retain(|d| !d.text.trim().is_empty());
    docs
}

/// The 1-based line in `doc` where the last key of a field path is written, found by
/// following the path's keys in order through the text. A best effort for pointing at the
/// line: the path in the message is the exact location.
fn line_of_key(doc: &str, path: &str) -> Option<usize> {
    let keys: Vec<&str> = path
        .split(['.', '['])
        .filter(|k| !k.is_empty() && !k.ends_with(']'))
        .collect();
    let mut line = 0;
    for key in keys {
        let found = doc.lines().enumerate().skip(line).find(|(_, text)| {
            let text = text.trim_start().trim_start_matches("- ");
            text.starts_with(&format!("{key}:"))
                || text.contains(&format!("{{{key}:"))
                || text.contains(&format!(", {key}:"))
                || text.contains(&format!("\"{key}\":"))
        })?;
        line = found.0;
    }
    Some(line + 1)
}

fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start().chars().next(), Some('{') | Some('['))
}

fn line_of_offset(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// saphyr appends " at line L column C" relative to the document; the caller reports the
/// absolute line, so the relative one is dropped.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests;

/// Reads a MeshConfig file (the `mesh` key of Istio's `istio` ConfigMap, as YAML or JSON).
/// Unknown fields are errors, as for every Istio type.
pub fn decode_mesh_config(
    file: &str,
    bytes: &[u8],
) -> Result<crate::istio::mesh::MeshConfig, DecodeError> {
    let origin = Origin {
        file: Arc::from(file),
        line: 1,
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|e| plain_error(origin.clone(), format!("invalid UTF-8: {e}")))?;
    let value: Value = if looks_like_json(text) {
        serde_json::from_str(text)
            .map_err(|e| plain_error(origin.clone(), format!("invalid JSON: {e}")))?
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            plain_error(
                origin.clone(),
                format!("invalid YAML: {}", e.without_snippet()),
            )
        })?
    };
    let value = if value.is_null() {
        Value::Object(Map::new())
    } else {
        value
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let (path, message) = describe_serde_error("", &e);
        DecodeError {
            origin,
            object: Some("MeshConfig".to_string()),
            path: (!path.is_empty()).then_some(path),
            message,
        }
    })
}
