#!/usr/bin/env python3
"""Generate Trellis's Rust types for Istio's configuration API from Istio's .proto files.

Usage: tools/gen_istio_types.py PROTO_DIR OUT_FILE [SCHEMA_OUT_FILE]

SCHEMA_OUT_FILE defaults to `istio_schema.rs` beside OUT_FILE: the table of CRD schema
constraints (kubebuilder markers in the proto comments) that `trellis_api::schema` enforces.

The output follows proto3 JSON mapping, which is how Istio reads YAML:
  * field names in lowerCamelCase, the original snake_case accepted as an alias;
  * scalars default to their zero value (proto3: zero means unset);
  * singular messages, wrapper types, oneof members and `optional` fields are `Option`;
  * each oneof's members are plain fields of the parent, and `ONEOFS` lists them so that
    validation can reject more than one being set;
  * unknown fields are rejected (serde `deny_unknown_fields`), unknown enum names too.
The generated file is committed; re-run this script when the .proto files change.
"""
import json
import re
import sys
from pathlib import Path

KEYWORDS = set("""as break const continue crate else enum extern false fn for if impl in let loop
match mod move mut pub ref return self Self static struct super trait true type unsafe use where
while async await dyn abstract become box do final macro override priv typeof unsized virtual yield
try gen""".split())

SCALARS = {
    "string": "String", "bytes": "String", "bool": "bool",
    "int32": "i32", "sint32": "i32", "sfixed32": "i32",
    "uint32": "u32", "fixed32": "u32",
    "int64": "i64", "sint64": "i64", "sfixed64": "i64",
    "uint64": "u64", "fixed64": "u64",
    "double": "f64", "float": "f32",
}
WRAPPERS = {
    "google.protobuf.BoolValue": "bool", "google.protobuf.StringValue": "String",
    "google.protobuf.UInt32Value": "u32", "google.protobuf.Int32Value": "i32",
    "google.protobuf.UInt64Value": "u64", "google.protobuf.Int64Value": "i64",
    "google.protobuf.DoubleValue": "f64", "google.protobuf.FloatValue": "f32",
}
EXTERNAL = {
    "google.protobuf.Duration": "crate::Duration",
    "google.protobuf.Struct": "serde_json::Value",
    "google.protobuf.Value": "serde_json::Value",
    "google.protobuf.ListValue": "serde_json::Value",
    "google.protobuf.Any": "serde_json::Value",
    "google.protobuf.Empty": "serde_json::Value",
    "google.protobuf.Timestamp": "String",
    "istio.analysis.v1alpha1.AnalysisMessageBase": "serde_json::Value",
}
MODULES = {
    "istio.networking.v1alpha3": "networking",
    "istio.networking.v1beta1": "networking_v1beta1",
    "istio.security.v1beta1": "security",
    "istio.security.v1alpha1": "security_ca",
    "istio.v1.auth": "security_ca",
    "istio.telemetry.v1alpha1": "telemetry",
    "istio.extensions.v1alpha1": "extensions",
    "istio.mesh.v1alpha1": "mesh",
    "istio.meta.v1alpha1": "meta",
    "istio.type.v1beta1": "type_v1beta1",
}

TOKEN = re.compile(r'\s+|//[^\n]*|/\*.*?\*/|"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_.]*|-?\d+|.', re.S)


def tokenize(text):
    """Yields (token, leading comment lines). Leading comments are those protoc attaches to
    the next element: the `//` lines right above it, not separated from it by a blank line,
    and not trailing the previous token on its line."""
    leading = []
    line_start = True  # no token yet on the current line
    for m in TOKEN.finditer(text):
        t = m.group(0)
        if t.isspace():
            if t.count("\n") >= 2:
                leading = []
            if "\n" in t:
                line_start = True
            continue
        if t.startswith("//") or t.startswith("/*"):
            if line_start:
                leading.append(t[2:].strip() if t.startswith("//") else "")
            continue
        yield t, leading
        leading = []
        line_start = False


class Parser:
    def __init__(self, tokens):
        pairs = list(tokens)
        self.toks = [t for t, _ in pairs]
        self.comments = [c for _, c in pairs]
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self):
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, t):
        got = self.next()
        if got != t:
            raise SystemExit(f"expected {t!r}, got {got!r} at token {self.i}")

    def skip_statement(self):
        depth = 0
        while True:
            t = self.next()
            if t == "{":
                depth += 1
            elif t == "}":
                depth -= 1
                if depth == 0:
                    return
            elif t == ";" and depth == 0:
                return

    def skip_options(self):
        if self.peek() == "[":
            depth = 0
            while True:
                t = self.next()
                if t == "[":
                    depth += 1
                elif t == "]":
                    depth -= 1
                    if depth == 0:
                        return

    def file(self):
        package, items = None, []
        while self.peek() is not None:
            t = self.peek()
            if t == "package":
                self.next()
                package = self.next()
                self.expect(";")
            elif t == "message":
                items.append(self.message())
            elif t == "enum":
                items.append(self.enum())
            else:
                self.skip_statement()
        return package, items

    def message(self):
        rules = parse_markers(self.comments[self.i])
        self.expect("message")
        name = self.next()
        self.expect("{")
        msg = {"kind": "message", "name": name, "fields": [], "nested": [], "oneofs": [],
               "rules": rules}
        while self.peek() != "}":
            t = self.peek()
            if t == "message":
                msg["nested"].append(self.message())
            elif t == "enum":
                msg["nested"].append(self.enum())
            elif t == "oneof":
                self.next()
                oname = self.next()
                self.expect("{")
                members = []
                while self.peek() != "}":
                    if self.peek() == "option":
                        self.skip_statement()
                        continue
                    f = self.field()
                    f["oneof"] = oname
                    members.append(f["name"])
                    msg["fields"].append(f)
                self.expect("}")
                msg["oneofs"].append((oname, members))
            elif t in ("reserved", "option", "extensions"):
                self.skip_statement()
            elif t == ";":
                self.next()
            else:
                msg["fields"].append(self.field())
        self.expect("}")
        return msg

    def field(self):
        markers = parse_markers(self.comments[self.i])
        label = None
        if self.peek() in ("repeated", "optional"):
            label = self.next()
        if self.peek() == "map":
            self.next()
            self.expect("<")
            key = self.next()
            self.expect(",")
            value = self.next()
            self.expect(">")
            ftype = ("map", key, value)
        else:
            ftype = self.next()
        name = self.next()
        self.expect("=")
        self.next()
        deprecated = False
        if self.peek() == "[":
            start = self.i
            self.skip_options()
            deprecated = "deprecated" in self.toks[start:self.i]
        self.expect(";")
        return {"label": label, "type": ftype, "name": name, "oneof": None, "deprecated": deprecated,
                "rules": markers}

    def enum(self):
        self.expect("enum")
        name = self.next()
        self.expect("{")
        values = []
        while self.peek() != "}":
            if self.peek() in ("option", "reserved"):
                self.skip_statement()
                continue
            vname = self.next()
            self.expect("=")
            num = int(self.next())
            self.skip_options()
            self.expect(";")
            values.append((vname, num))
        self.expect("}")
        return {"kind": "enum", "name": name, "values": values}


# CRD schema markers (`+kubebuilder:validation:X=V` on the field or message itself, and
# `+protoc-gen-crd:list-value-validation:X=V` / `map-value-validation:X=V` on the items of a
# list or the values of a map) that the generated schema table enforces. Kubernetes applies
# them (as OpenAPI checks) before Istio's webhook sees an object.
RULES = ("MinLength", "MaxLength", "MinItems", "MaxItems", "MinProperties", "MaxProperties",
         "Minimum", "Maximum", "Pattern")
# Markers knowingly left out: CEL rules, and markers that only shape the CRD's types.
IGNORED_MARKERS = ("XValidation", "IgnoreSubValidation", "XIntOrString")
MARKER = re.compile(r"\+(kubebuilder:validation|protoc-gen-crd:(?:list-value-|map-value-)?validation)"
                    r":([A-Za-z]+)(.*)")


def marker_value(name, raw):
    """The value of `=V`: an integer, a number, or (for Pattern) a string that is
    double-quoted (Go escapes), back-quoted (raw) or bare (the rest of the line)."""
    if not raw.startswith("="):
        raise SystemExit(f"marker {name} without a value: {raw!r}")
    raw = raw[1:].strip()
    if name == "Pattern":
        if raw.startswith("`") and raw.endswith("`") and len(raw) >= 2:
            return raw[1:-1]
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            return json.loads(raw)
        return raw
    if name in ("Minimum", "Maximum"):
        value = float(raw)
        return int(value) if value.is_integer() else value
    return int(raw)


def parse_markers(comments):
    """The schema rules in a comment block: {"self": [(name, value)], "items": [...]}.
    Fails on a validation marker it does not know, so new kinds of constraint in the
    protos are noticed instead of silently dropped."""
    out = {"self": [], "items": []}
    for line in comments:
        m = MARKER.search(line)
        if not m:
            continue
        where, name, rest = m.groups()
        if name in IGNORED_MARKERS:
            continue
        if name not in RULES:
            raise SystemExit(f"unknown schema marker {m.group(0)!r}")
        target = "items" if "-value-" in where else "self"
        out[target].append((name, marker_value(name, rest)))
    return out


RENAMES = {"TLSmode": "TlsMode"}


def camel(name):
    """snake_case or SCREAMING_CASE or HTTPRoute → UpperCamelCase, as prost does."""
    out = []
    for part in re.split(r"_+", name):
        part = RENAMES.get(part, part)
        if not part:
            continue
        # split acronym runs: HTTPRoute -> HTTP Route -> Http Route
        for w in re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z]+|\d+", part):
            out.append(w[0].upper() + w[1:].lower())
    return "".join(out)


def json_name(name):
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def rust_ident(name):
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    if name in ("self", "Self", "super", "crate"):
        return name + "_"
    return "r#" + name if name in KEYWORDS else name


class Registry:
    """Full proto name → (module, Rust type name, definition)."""

    def __init__(self):
        self.types = {}

    def add(self, package, items, prefix=""):
        for it in items:
            full = f"{package}.{prefix}{it['name']}"
            rust = camel(prefix.replace(".", "_") + it["name"]) if prefix else camel(it["name"])
            self.types[full] = (MODULES[package], rust, it)
            if it["kind"] == "message":
                self.add(package, it["nested"], prefix + it["name"] + ".")

    def resolve(self, name, scope):
        if name.startswith("."):
            return name[1:]
        parts = scope.split(".")
        while parts:
            cand = ".".join(parts + [name])
            if cand in self.types or cand in EXTERNAL or cand in WRAPPERS:
                return cand
            parts.pop()
        if name in self.types or name in EXTERNAL or name in WRAPPERS:
            return name
        raise SystemExit(f"cannot resolve {name} in {scope}")


def rust_type_of(reg, module, full):
    if full in EXTERNAL:
        return EXTERNAL[full]
    mod, rust, _ = reg.types[full]
    return rust if mod == module else f"super::{mod}::{rust}"


def field_rust(reg, module, scope, f):
    """Returns (rust type, is_option)."""
    t = f["type"]
    if isinstance(t, tuple):
        _, k, v = t
        kt = SCALARS[k]
        vt = SCALARS[v] if v in SCALARS else rust_type_of(reg, module, reg.resolve(v, scope))
        return f"BTreeMap<{kt}, {vt}>", False
    if t in SCALARS:
        base, is_msg = SCALARS[t], False
    else:
        full = reg.resolve(t, scope)
        if full in WRAPPERS:
            if f["label"] == "repeated":
                return f"Vec<{WRAPPERS[full]}>", False
            return f"Option<{WRAPPERS[full]}>", True
        base = rust_type_of(reg, module, full)
        is_msg = full in EXTERNAL and EXTERNAL[full] != "String" or (
            full in reg.types and reg.types[full][2]["kind"] == "message")
        if base == "serde_json::Value" and f["label"] != "repeated":
            return "Option<serde_json::Value>", True
    if f["label"] == "repeated":
        return f"Vec<{base}>", False
    if f["label"] == "optional" or f["oneof"] or is_msg:
        return f"Option<{base}>", True
    return base, False


def emit_message(reg, module, full, msg, out):
    _, rust, _ = reg.types[full]
    out.append("#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]")
    out.append("#[serde(default, deny_unknown_fields)]")
    out.append(f"pub struct {rust} {{")
    for f in msg["fields"]:
        ty, is_opt = field_rust(reg, module, full, f)
        jn = json_name(f["name"])
        attrs = [f'rename = "{jn}"']
        if jn != f["name"]:
            attrs.append(f'alias = "{f["name"]}"')
        if is_opt:
            attrs.append('skip_serializing_if = "Option::is_none"')
        else:
            attrs.append('skip_serializing_if = "crate::serde_util::is_default"')
            attrs.append('deserialize_with = "crate::serde_util::null_as_default"')
        if f["deprecated"]:
            out.append("    /// Deprecated in Istio's API.")
        out.append(f"    #[serde({', '.join(attrs)})]")
        out.append(f"    pub {rust_ident(f['name'])}: {ty},")
    out.append("}")
    if msg["oneofs"]:
        out.append(f"impl crate::OneofGroups for {rust} {{")
        out.append("    fn oneof_groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {")
        out.append("        vec![")
        for oname, members in msg["oneofs"]:
            checks = ", ".join(
                f'(self.{rust_ident(m)}.is_some(), "{json_name(m)}")' for m in members)
            out.append(f'            ("{json_name(oname)}", crate::serde_util::set_members(&[{checks}])),')
        out.append("        ]")
        out.append("    }")
        out.append("}")
    out.append("")


def emit_enum(reg, full, en, out):
    _, rust, _ = reg.types[full]
    out.append("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]")
    out.append(f"pub enum {rust} {{")
    seen = set()
    for i, (vname, _) in enumerate(en["values"]):
        variant = camel(vname)
        if variant in seen:
            continue
        seen.add(variant)
        if i == 0:
            out.append("    #[default]")
        out.append(f'    #[serde(rename = "{vname}")]')
        out.append(f"    {variant},")
    out.append("}")
    out.append(f"impl {rust} {{")
    out.append("    /// The enum value's name as written in YAML.")
    out.append("    pub fn as_str(self) -> &'static str {")
    out.append("        match self {")
    seen = set()
    for vname, _ in en["values"]:
        variant = camel(vname)
        if variant in seen:
            continue
        seen.add(variant)
        out.append(f'            Self::{variant} => "{vname}",')
    out.append("        }")
    out.append("    }")
    out.append("}")
    out.append("")


def rust_rule(name, value):
    if name == "Pattern":
        return None  # emitted by index into PATTERNS
    if name in ("Minimum", "Maximum"):
        return f"Rule::{name}({float(value)!r})"
    return f"Rule::{name}({value})"


def emit_schema(reg):
    """The CRD schema table: for every message whose fields carry constraints (or lead to
    messages that do), its fields by JSON name with the message they lead to and their
    rules. Messages are sorted by full proto name, so the output is deterministic and
    `schema::message` can binary-search it."""
    messages = {full: it for full, (_, _, it) in reg.types.items() if it["kind"] == "message"}

    def target(full, f):
        t = f["type"]
        name = t[2] if isinstance(t, tuple) else t
        if name in SCALARS:
            return None
        resolved = reg.resolve(name, full)
        return resolved if resolved in messages else None

    def has_rules(r):
        return bool(r["self"] or r["items"])

    relevant = {full for full, m in messages.items()
                if has_rules(m["rules"]) or any(has_rules(f["rules"]) for f in m["fields"])}
    changed = True
    while changed:
        changed = False
        for full, m in messages.items():
            if full not in relevant and any(target(full, f) in relevant for f in m["fields"]):
                relevant.add(full)
                changed = True
    order = sorted(relevant)
    index = {full: i for i, full in enumerate(order)}
    patterns = sorted({v for full in order for r in
                       [messages[full]["rules"]] + [f["rules"] for f in messages[full]["fields"]]
                       for k in ("self", "items") for n, v in r[k] if n == "Pattern"})

    def rules(rs):
        out = []
        for name, value in rs:
            if name == "Pattern":
                out.append(f"Rule::Pattern({patterns.index(value)})")
            else:
                out.append(rust_rule(name, value))
        return "&[" + ", ".join(out) + "]"

    out = [
        "// @generated by tools/gen_istio_types.py from Istio's API definitions (Apache-2.0).",
        "// Do not edit by hand: change the generator and re-run it.",
        "//",
        "// The CRD schema constraints (kubebuilder markers) of Istio's messages, walked by",
        "// `crate::schema`. Only messages that carry constraints, or lead to one that does, are",
        "// listed; only such fields of theirs too.",
        "",
        "use crate::schema::{Field, Message, Rule, Shape};",
        "",
        "/// Regular expressions of `Pattern` rules, referred to by index.",
        "pub(crate) static PATTERNS: &[&str] = &[",
    ]
    for pat in patterns:
        out.append(f"    {json.dumps(pat)},")
    out.append("];")
    out.append("")
    out.append("/// Messages by full proto name, sorted.")
    out.append("pub(crate) static MESSAGES: &[Message] = &[")
    for i, full in enumerate(order):
        m = messages[full]
        out.append(f"    // {i}")
        out.append(f'    Message {{ name: "{full}", rules: {rules(m["rules"]["self"])}, fields: &[')
        for f in m["fields"]:
            tgt = target(full, f)
            tgt = tgt if tgt in relevant else None
            if not has_rules(f["rules"]) and tgt is None:
                continue
            t = f["type"]
            shape = "Map" if isinstance(t, tuple) else "List" if f["label"] == "repeated" else "Single"
            msg = f"Some({index[tgt]})" if tgt else "None"
            out.append(
                f'        Field {{ json: "{json_name(f["name"])}", proto: "{f["name"]}", '
                f"shape: Shape::{shape}, message: {msg}, "
                f'rules: {rules(f["rules"]["self"])}, items: {rules(f["rules"]["items"])} }},')
        out.append("    ] },")
    out.append("];")
    out.append("")
    return "\n".join(out)


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit("usage: gen_istio_types.py PROTO_DIR OUT_FILE [SCHEMA_OUT_FILE]")
    proto_dir, out_file = Path(sys.argv[1]), Path(sys.argv[2])
    schema_file = Path(sys.argv[3]) if len(sys.argv) == 4 else out_file.with_name("istio_schema.rs")
    reg = Registry()
    for p in sorted(proto_dir.glob("*.proto")):
        package, items = Parser(tokenize(p.read_text())).file()
        reg.add(package, items)
    by_module = {}
    for full, (mod, rust, it) in sorted(reg.types.items()):
        by_module.setdefault(mod, []).append((full, rust, it))
    out = [
        "// @generated by tools/gen_istio_types.py from Istio's API definitions (Apache-2.0).",
        "// Do not edit by hand: change the generator and re-run it.",
        "",
    ]
    for mod in sorted(by_module):
        names = {}
        for full, rust, _ in by_module[mod]:
            if rust in names:
                raise SystemExit(f"name clash in {mod}: {rust} for {full} and {names[rust]}")
            names[rust] = full
        out.append(f"/// Types of `{sorted({f.rsplit('.', 1)[0] for f, _, _ in by_module[mod]})[0]}` and nested messages.")
        out.append(f"pub mod {mod} {{")
        out.append("    #![allow(missing_docs, clippy::large_enum_variant)]")
        out.append("    use serde::{Deserialize, Serialize};")
        out.append("    #[allow(unused_imports)]")
        out.append("    use std::collections::BTreeMap;")
        out.append("")
        body = []
        for full, rust, it in by_module[mod]:
            if it["kind"] == "message":
                emit_message(reg, mod, full, it, body)
            else:
                emit_enum(reg, full, it, body)
        out.extend(("    " + line) if line else "" for line in body)
        out.append("}")
        out.append("")
    out_file.write_text("\n".join(out))
    schema_file.write_text(emit_schema(reg))


if __name__ == "__main__":
    main()
