//! WasmPlugin, TrafficExtension and the ProxyConfig resource: extensions loaded into the
//! proxy, and per-workload proxy settings.

use trellis_api::istio::extensions::{
    EnvValueSource, TrafficExtension, TrafficSelector, VmConfig, WasmPlugin,
    WasmPluginTrafficSelector,
};
use trellis_api::istio::networking_v1beta1::ProxyConfig;

use super::Report;
use super::common;

pub(crate) fn validate_proxy_config(r: &mut Report, pc: &ProxyConfig) {
    common::check_workload_selector(r, "spec.selector", pc.selector.as_ref());
    if pc.concurrency.unwrap_or(0) < 0 {
        r.error(
            "spec.concurrency",
            "concurrency must be greater than or equal to 0",
        );
    }
}

pub(crate) fn validate_wasm_plugin(r: &mut Report, w: &WasmPlugin) {
    common::check_one_selector_type(
        r,
        w.selector.is_some(),
        w.target_ref.is_some(),
        !w.target_refs.is_empty(),
    );
    common::check_workload_selector(r, "spec.selector", w.selector.as_ref());
    if let Some(t) = &w.target_ref {
        common::check_target_ref(r, "spec.targetRef", t);
    }
    common::check_target_refs(r, "spec.targetRefs", &w.target_refs);
    r.check("spec.url", validate_plugin_url(&w.url));
    r.check("spec.sha256", validate_sha256(&w.sha256));
    if w.image_pull_secret.len() > 253 {
        r.error(
            "spec.imagePullSecret",
            "imagePullSecret field must be less than 253 characters long",
        );
    }
    if w.plugin_name.len() > 256 {
        r.error(
            "spec.pluginName",
            "pluginName field must be less than 255 characters long",
        );
    }
    if let Some(vm) = &w.vm_config {
        r.check("spec.vmConfig", validate_vm_config(vm));
    }
    check_match_ports(r, w.r#match.iter().map(ports_of_wasm));
}

fn ports_of_wasm(s: &WasmPluginTrafficSelector) -> Vec<u32> {
    s.ports.iter().map(|p| p.number).collect()
}

fn ports_of_traffic(s: &TrafficSelector) -> Vec<u32> {
    s.ports.iter().map(|p| p.number).collect()
}

fn check_match_ports(r: &mut Report, selectors: impl Iterator<Item = Vec<u32>>) {
    for (i, ports) in selectors.enumerate() {
        for (j, n) in ports.into_iter().enumerate() {
            if n == 0 || n > 65535 {
                r.error(
                    &format!("spec.match[{i}].ports[{j}]"),
                    format!("spec.Match[{i}].Ports[{j}] is out of range: {n}"),
                );
            }
        }
    }
}

pub(crate) fn validate_traffic_extension(r: &mut Report, t: &TrafficExtension) {
    if t.wasm.is_some() == t.lua.is_some() {
        r.error("spec", "exactly one of wasm or lua must be set");
    }
    common::check_one_selector_type(r, t.selector.is_some(), false, !t.target_refs.is_empty());
    common::check_workload_selector(r, "spec.selector", t.selector.as_ref());
    common::check_target_refs(r, "spec.targetRefs", &t.target_refs);
    if let Some(lua) = &t.lua {
        if lua.inline_code.is_empty() {
            r.error("spec.lua.inlineCode", "lua.inlineCode cannot be empty");
        } else if lua.inline_code.len() > 65536 {
            r.error(
                "spec.lua.inlineCode",
                "lua.inlineCode exceeds maximum size of 64KB",
            );
        }
    }
    if let Some(w) = &t.wasm {
        r.check("spec.wasm.url", validate_plugin_url(&w.url));
        r.check("spec.wasm.sha256", validate_sha256(&w.sha256));
        if w.image_pull_secret.len() > 253 {
            r.error(
                "spec.wasm.imagePullSecret",
                "imagePullSecret field must be less than 253 characters long",
            );
        }
        if w.plugin_name.len() > 256 {
            r.error(
                "spec.wasm.pluginName",
                "pluginName field must be less than 256 characters long",
            );
        }
        if let Some(vm) = &w.vm_config {
            r.check("spec.wasm.vmConfig", validate_vm_config(vm));
        }
    }
    check_match_ports(r, t.r#match.iter().map(ports_of_traffic));
}

/// A plugin URL: `oci://`, `http(s)://`, `file://` or a bare image reference.
fn validate_plugin_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("url field needs to be set".to_string());
    }
    let parsed = parse_request_uri(url).or_else(|_| parse_request_uri(&format!("http://{url}")));
    let scheme = parsed.map_err(|e| format!("failed to parse url: {e}"))?;
    if !matches!(scheme.as_str(), "" | "file" | "http" | "https" | "oci") {
        return Err(format!("url contains unsupported scheme: {scheme}"));
    }
    Ok(())
}

/// Go's `url.ParseRequestURI` reduced to what decides validity here: an absolute URL with
/// a scheme, or an absolute path; no invalid characters or percent escapes. Returns the
/// (lowercased) scheme.
fn parse_request_uri(u: &str) -> Result<String, String> {
    if u.bytes().any(|b| b < 0x20 || b == 0x7f || b == b' ') {
        return Err("invalid control character in URL".to_string());
    }
    // A request URI has no fragment: `#` is part of the path, and so are its escapes.
    let head = u;
    if !percent_escapes_ok(head) {
        return Err(format!("invalid URL escape in {u:?}"));
    }
    if head.starts_with('/') {
        return Ok(String::new());
    }
    match head.split_once(':') {
        Some((s, _))
            if s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Ok(s.to_ascii_lowercase())
        }
        _ => Err(format!("parse {u:?}: invalid URI for request")),
    }
}

fn percent_escapes_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn validate_sha256(sha: &str) -> Result<(), String> {
    if sha.is_empty() {
        return Ok(());
    }
    if sha.len() != 64 {
        return Err("sha256 field must be 64 characters long".to_string());
    }
    if !sha
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("sha256 field must match [a-f0-9]{64} pattern".to_string());
    }
    Ok(())
}

/// Environment of the plugin VM: named, unique, values only for INLINE.
fn validate_vm_config(vm: &VmConfig) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    for env in &vm.env {
        if env.name.is_empty() {
            return Err("spec.vmConfig.env invalid".to_string());
        }
        if env.name.len() > 256 {
            return Err("env.name field must be less than 255 characters long".to_string());
        }
        if seen.contains(&env.name.as_str()) {
            return Err("duplicate env".to_string());
        }
        seen.push(&env.name);
        if env.value_from != EnvValueSource::Inline && !env.value.is_empty() {
            return Err("value may only be set when valueFrom is INLINE".to_string());
        }
    }
    Ok(())
}
