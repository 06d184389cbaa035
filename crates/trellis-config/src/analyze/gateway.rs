//! Gateway analyzers: conflicting servers (IST0145), credentials (IST0101/IST0161),
//! certificates shared between gateways (IST0138) and ports missing from the gateway's
//! Service (IST0162).

use std::collections::BTreeMap;

use trellis_api::Resource;
use trellis_api::istio::networking::{Gateway, Server, ServerTlsSettings};
use trellis_api::kube::IntOrString;

use super::context::full_name;
use super::messages as m;
use super::{Context, Message, selector};

/// Gateways by `(selector text, port)`, each with its hosts and their bind address.
type ServersByKey<'a> = BTreeMap<(String, u32), Vec<(String, &'a Server)>>;

pub fn conflicting(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let mut by_key: ServersByKey<'_> = BTreeMap::new();
    for (r, gw) in ctx.gateways() {
        for s in &gw.servers {
            let port = s.port.as_ref().map_or(0, |p| p.number);
            by_key
                .entry((selector::to_string(&gw.selector), port))
                .or_default()
                .push((full_name(r), s));
        }
    }
    for (r, gw) in ctx.gateways() {
        analyze_gateway(ctx, r, gw, &by_key, out);
    }
}

fn parse_selector(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn analyze_gateway(
    ctx: &Context<'_>,
    r: &Resource,
    gw: &Gateway,
    by_key: &ServersByKey<'_>,
    out: &mut Vec<Message>,
) {
    let name = full_name(r);
    let sel = selector::to_string(&gw.selector);
    let mut same: Vec<(u32, &[(String, &Server)])> = Vec::new();
    for (key, servers) in by_key {
        let other = &key.0;
        let hit = if *other == sel {
            true
        } else if other.contains(sel.as_str()) || sel.contains(other.as_str()) {
            let other_sel = parse_selector(other);
            ctx.pods().any(|(p, _)| {
                selector::matches(&gw.selector, &p.meta.labels)
                    && selector::matches(&other_sel, &p.meta.labels)
            })
        } else {
            false
        };
        if hit {
            same.push((key.1, servers.as_slice()));
        }
    }
    if !sel.is_empty() && same.is_empty() {
        out.push(m::referenced_resource_not_found(r, "selector", &sel));
        return;
    }
    for s in &gw.servers {
        let port = s.port.as_ref().map_or(0, |p| p.number);
        let mut conflicts: Vec<String> = Vec::new();
        for (p, servers) in &same {
            if *p != port {
                continue;
            }
            for (other, os) in servers.iter() {
                let dup = s
                    .hosts
                    .iter()
                    .any(|h| os.hosts.contains(h) && os.bind == s.bind);
                if *other != name && dup {
                    conflicts.push(other.clone());
                }
            }
        }
        if !conflicts.is_empty() {
            conflicts.sort();
            out.push(m::conflicting_gateways(
                r,
                &conflicts.join(","),
                &sel,
                port,
                &s.hosts.join(","),
            ));
        }
    }
}

/// The namespace of the first pod the gateway selects: where its credentials live.
fn gateway_namespace<'a>(ctx: &Context<'a>, gw: &Gateway) -> Option<&'a str> {
    ctx.pods()
        .find(|(p, _)| selector::matches(&gw.selector, &p.meta.labels))
        .map(|(p, _)| p.meta.namespace.as_str())
}

/// Minimal standard base64 decoding (padding and whitespace tolerated).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Whether a TLS secret holds a certificate and a key Istio can read: `tls.crt`/`tls.key`
/// (or `cert`/`key`), the certificate PEM-encoded. Expiry is not checked (no X.509 parser).
fn secret_usable(secret: &trellis_api::kube::DataSpec) -> bool {
    let get = |k: &str| {
        secret
            .data
            .get(k)
            .and_then(|v| base64_decode(v))
            .or_else(|| secret.string_data.get(k).map(|v| v.as_bytes().to_vec()))
    };
    let pair = [("tls.crt", "tls.key"), ("cert", "key")]
        .into_iter()
        .find_map(|(c, k)| Some((get(c)?, get(k)?)));
    let Some((cert, key)) = pair else {
        return false;
    };
    let cert = String::from_utf8_lossy(&cert);
    !key.is_empty()
        && cert.contains("-----BEGIN CERTIFICATE-----")
        && cert.contains("-----END CERTIFICATE-----")
}

pub fn secrets(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, gw) in ctx.gateways() {
        let Some(ns) = gateway_namespace(ctx, gw) else {
            out.push(m::referenced_resource_not_found(
                r,
                "selector",
                &selector::to_string(&gw.selector),
            ));
            continue;
        };
        for s in &gw.servers {
            let Some(cn) = s
                .tls
                .as_ref()
                .map(|t| &t.credential_name)
                .filter(|c| !c.is_empty())
            else {
                continue;
            };
            let (sns, sname) = cn.split_once('/').unwrap_or((ns, cn));
            match ctx
                .find(trellis_api::Kind::Secret, sns, sname)
                .map(|r| &r.spec)
            {
                None => out.push(m::referenced_resource_not_found(r, "credentialName", cn)),
                Some(trellis_api::Spec::Secret(secret)) if !secret_usable(secret) => {
                    let mut msg = m::invalid_gateway_credential(r);
                    msg.message = msg.message.replace(
                        &format!("in namespace {} ", r.meta.namespace),
                        &format!("in namespace {ns} "),
                    );
                    out.push(msg);
                }
                Some(_) => {}
            }
        }
    }
}

fn same_certificate(a: &ServerTlsSettings, b: &ServerTlsSettings) -> bool {
    if !a.credential_name.is_empty() && !b.credential_name.is_empty() {
        return a.credential_name == b.credential_name;
    }
    a.credential_name.is_empty()
        && b.credential_name.is_empty()
        && !a.server_certificate.is_empty()
        && a.server_certificate == b.server_certificate
        && !a.private_key.is_empty()
        && a.private_key == b.private_key
}

/// Whether every label of `x` that `y` also has agrees, and `y` has all of `x`'s keys.
fn selector_subset(x: &BTreeMap<String, String>, y: &BTreeMap<String, String>) -> bool {
    x.iter().all(|(k, v)| y.get(k) == Some(v))
}

pub fn duplicate_certificates(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, gw) in ctx.gateways() {
        for (or, ogw) in ctx.gateways() {
            if std::ptr::eq(r, or) || !selector_subset(&gw.selector, &ogw.selector) {
                continue;
            }
            let dup = gw.servers.iter().filter_map(|s| s.tls.as_ref()).any(|a| {
                ogw.servers
                    .iter()
                    .filter_map(|s| s.tls.as_ref())
                    .any(|b| same_certificate(a, b))
            });
            if dup {
                out.push(m::gateway_duplicate_certificate(
                    r,
                    &[full_name(r), full_name(or)],
                ));
            }
        }
    }
}

pub fn ingress_ports(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, gw) in ctx.gateways() {
        let mut target_ports: Vec<u32> = Vec::new();
        let mut service_ports: Vec<u32> = Vec::new();
        let mut selected = 0;
        for (pod, _) in ctx.pods() {
            if !selector::matches(&gw.selector, &pod.meta.labels) {
                continue;
            }
            selected += 1;
            for (svc_r, svc) in ctx.services() {
                if svc_r.meta.namespace != pod.meta.namespace
                    || !selector::matches(&svc.selector, &pod.meta.labels)
                {
                    continue;
                }
                for p in &svc.ports {
                    if p.protocol.as_deref().unwrap_or("TCP") != "TCP" {
                        continue;
                    }
                    match &p.target_port {
                        Some(IntOrString::Int(tp)) if *tp != 0 => {
                            target_ports.push(*tp);
                            service_ports.push(p.port);
                        }
                        _ => target_ports.push(p.port),
                    }
                }
            }
        }
        let sel = selector::to_string(&gw.selector);
        if selected == 0 {
            out.push(m::referenced_resource_not_found(r, "selector", &sel));
            continue;
        }
        for s in &gw.servers {
            let Some(port) = &s.port else { continue };
            if !target_ports.contains(&port.number) && !service_ports.contains(&port.number) {
                out.push(m::gateway_port_not_on_service(r, port.number, &sel));
            }
        }
    }
}
