//! EnvoyFilter patches that are fragile or ignored: relative operations without a priority
//! (IST0151, IST0155 when a proxyVersion match makes them upgrade-sensitive), and ADD,
//! REMOVE or REPLACE where Istio ignores them (IST0152-IST0154).

use trellis_api::istio::networking::{
    EnvoyFilterApplyTo as ApplyTo, EnvoyFilterEnvoyConfigObjectPatch,
    EnvoyFilterPatchOperation as Op,
};

use super::messages as m;
use super::{Context, Message};

/// The name a patch acts on: its value's `name`, else the filter its listener match names.
fn instance_name(p: &EnvoyFilterEnvoyConfigObjectPatch) -> String {
    let value = p.patch.as_ref().and_then(|p| p.value.as_ref());
    if let Some(serde_json::Value::Object(map)) = value {
        if let Some(name) = map.get("name") {
            return name.to_string();
        }
        return p
            .r#match
            .as_ref()
            .and_then(|m| m.listener.as_ref())
            .and_then(|l| l.filter_chain.as_ref())
            .and_then(|fc| fc.filter.as_ref())
            .map(|f| f.name.clone())
            .unwrap_or_default();
    }
    String::new()
}

pub fn patches(ctx: &Context<'_>, out: &mut Vec<Message>) {
    // Names patched by earlier filters under a proxyVersion match, across all EnvoyFilters.
    let mut versioned: Vec<String> = Vec::new();
    for (r, ef) in ctx.envoy_filters() {
        for p in &ef.config_patches {
            let Some(patch) = &p.patch else {
                break;
            };
            let name = instance_name(p);
            let route_level =
                matches!(p.apply_to, ApplyTo::RouteConfiguration | ApplyTo::HttpRoute);
            let relative = match patch.operation {
                Op::Add => {
                    if route_level {
                        out.push(m::envoy_filter_add_incorrect(r));
                    }
                    false
                }
                Op::Remove if route_level => {
                    out.push(m::envoy_filter_remove_incorrect(r));
                    false
                }
                Op::Replace
                    if !matches!(
                        p.apply_to,
                        ApplyTo::NetworkFilter | ApplyTo::HttpFilter | ApplyTo::VirtualHost
                    ) =>
                {
                    out.push(m::envoy_filter_replace_incorrect(r));
                    false
                }
                Op::Remove | Op::Replace | Op::InsertBefore | Op::InsertAfter => true,
                _ => false,
            };
            if relative && ef.priority == 0 {
                if versioned.contains(&name) {
                    out.push(m::envoy_filter_relative_with_proxy_version(r));
                } else {
                    out.push(m::envoy_filter_relative_operation(r));
                }
            }
            let has_version = p
                .r#match
                .as_ref()
                .and_then(|m| m.proxy.as_ref())
                .is_some_and(|px| !px.proxy_version.is_empty());
            if has_version {
                versioned.push(name);
            }
        }
    }
}
