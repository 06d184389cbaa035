//! Telemetry `accessLogging` providers the translation configures no logger for: names of
//! extension providers of another kind than `envoyFileAccessLog` (gRPC or OpenTelemetry
//! log services, tracers...), and names no provider has (Istio skips both silently).

use trellis_api::istio::mesh::MeshConfig;

use super::super::context::origin;
use super::super::messages as m;
use super::super::{Context, Message};

/// The built-in file provider every mesh has.
const BUILTIN: &str = "envoy";

/// Why the provider `name` gets no logger, if it gets none.
fn unconfigured(mesh: &MeshConfig, name: &str) -> Option<&'static str> {
    match mesh
        .extension_providers
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
    {
        Some(p) if p.envoy_file_access_log.is_some() => None,
        Some(_) => Some("only envoyFileAccessLog providers write access logs"),
        None if name.eq_ignore_ascii_case(BUILTIN) => None,
        None => Some("no extension provider has this name"),
    }
}

pub(super) fn access_log_providers(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, t) in ctx.telemetries() {
        for (i, logging) in t.access_logging.iter().enumerate() {
            for (j, p) in logging.providers.iter().enumerate() {
                if let Some(reason) = unconfigured(ctx.mesh, &p.name) {
                    let field = format!("spec.accessLogging[{i}].providers[{j}]");
                    out.push(m::unsupported_field(
                        origin(r),
                        &field,
                        &format!("provider {:?}: {reason}", p.name),
                    ));
                }
            }
        }
    }
}
