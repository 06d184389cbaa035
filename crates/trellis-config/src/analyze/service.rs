//! Service ports whose name (or appProtocol) does not tell Istio the protocol (IST0118),
//! and ExternalName services whose port names keep TCP traffic from flowing (IST0150).

use trellis_api::kube::{IntOrString, ServicePort};

use super::messages as m;
use super::{Context, Message};

/// Protocols Istio recognises in a port name prefix or appProtocol (case-insensitive).
const PROTOCOLS: &[&str] = &[
    "grpc",
    "grpc-web",
    "http",
    "http_proxy",
    "http2",
    "https",
    "tcp",
    "tls",
    "udp",
    "mongo",
    "redis",
    "mysql",
    "hbone",
    "double-hbone",
];

const SYSTEM_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
    "istio-system",
];

fn known(p: &str) -> bool {
    PROTOCOLS.iter().any(|k| k.eq_ignore_ascii_case(p))
}

/// Whether Istio can tell the protocol of a port from its protocol, appProtocol or name.
fn protocol_known(p: &ServicePort) -> bool {
    if p.protocol
        .as_deref()
        .is_some_and(|pr| pr.eq_ignore_ascii_case("UDP"))
    {
        return true;
    }
    if let Some(app) = p.app_protocol.as_deref().filter(|a| !a.is_empty()) {
        let app = app.strip_prefix("kubernetes.io/").unwrap_or(app);
        if known(app)
            || app.eq_ignore_ascii_case("h2c")
            || app.eq_ignore_ascii_case("ws")
            || app.eq_ignore_ascii_case("wss")
        {
            return true;
        }
    }
    let prefix = p.name.split('-').next().unwrap_or("");
    known(&p.name) || known(prefix)
}

fn target_text(p: &ServicePort) -> String {
    match &p.target_port {
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => "0".to_string(),
    }
}

pub fn port_names(ctx: &Context<'_>, out: &mut Vec<Message>) {
    for (r, svc) in ctx.services() {
        // System namespaces (Kubernetes' own and the control plane's) are not the mesh's.
        if SYSTEM_NAMESPACES.contains(&r.meta.namespace.as_str()) {
            continue;
        }
        let managed = r
            .meta
            .labels
            .get("gateway.istio.io/managed")
            .is_some_and(|v| {
                matches!(
                    v.as_str(),
                    "istio.io-gateway-controller"
                        | "istio.io-mesh-controller"
                        | "istio.io-eastwest-controller"
                )
            });
        if managed {
            continue;
        }
        let external = svc.service_type.as_deref() == Some("ExternalName");
        for p in &svc.ports {
            if !protocol_known(p) || (p.name == "tcp" && external) {
                out.push(if external {
                    m::external_name_invalid_port_name(r)
                } else {
                    m::port_name_convention(r, &p.name, p.port, &target_text(p))
                });
            }
        }
    }
}
