//! ServiceEntries with a TCP port but no address (IST0134), and ServiceEntries that give
//! one host and port different protocols in overlapping exportTo scopes (IST0177).

use std::collections::{BTreeMap, BTreeSet};

use trellis_api::Resource;

use super::context::full_name;
use super::hosts;
use super::messages as m;
use super::{Context, Message};

/// Whether proxies allocate addresses for ServiceEntries themselves (DNS capture with
/// auto-allocation in the mesh's default proxy metadata).
fn auto_allocated(ctx: &Context<'_>) -> bool {
    let Some(md) = ctx.mesh.default_config.as_ref().map(|c| &c.proxy_metadata) else {
        return false;
    };
    let on = |k: &str| md.get(k).is_some_and(|v| v == "true");
    on("ISTIO_META_DNS_CAPTURE")
        && (on("ISTIO_META_DNS_AUTO_ALLOCATE") || on("PILOT_ENABLE_IP_AUTOALLOCATE"))
}

pub fn protocol_addresses(ctx: &Context<'_>, out: &mut Vec<Message>) {
    if auto_allocated(ctx) {
        return;
    }
    for (r, se) in ctx.service_entries() {
        if !se.addresses.is_empty() {
            continue;
        }
        for p in &se.ports {
            if p.protocol.is_empty() || p.protocol.eq_ignore_ascii_case("TCP") {
                out.push(m::service_entry_addresses_required(r));
            }
        }
    }
}

pub fn conflicting_protocols(ctx: &Context<'_>, out: &mut Vec<Message>) {
    type Key = (String, String, u32);
    let mut index: BTreeMap<Key, Vec<(String, &Resource)>> = BTreeMap::new();
    for (r, se) in ctx.service_entries() {
        for scope in hosts::export_scopes(&se.export_to, &r.meta.namespace) {
            for h in &se.hosts {
                for p in &se.ports {
                    index
                        .entry((scope.clone(), h.clone(), p.number))
                        .or_default()
                        .push((p.protocol.to_uppercase(), r));
                }
            }
        }
    }
    let mut reported: BTreeSet<String> = BTreeSet::new();
    for ((scope, host, port), entries) in &index {
        let mut entries = entries.clone();
        if scope != hosts::ALL_NAMESPACES {
            let star = (hosts::ALL_NAMESPACES.to_string(), host.clone(), *port);
            entries.extend(index.get(&star).into_iter().flatten().cloned());
        }
        let protocols: BTreeSet<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
        if protocols.len() < 2 {
            continue;
        }
        let names: BTreeSet<String> = entries.iter().map(|(_, r)| full_name(r)).collect();
        let names = names.into_iter().collect::<Vec<_>>().join(", ");
        let protocols = protocols.into_iter().collect::<Vec<_>>().join(", ");
        for (_, r) in &entries {
            if reported.insert(full_name(r)) {
                out.push(m::conflicting_service_entry_protocol(
                    r, &names, host, *port, &protocols,
                ));
            }
        }
    }
}
