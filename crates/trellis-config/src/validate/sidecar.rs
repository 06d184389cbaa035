//! Sidecar: which inbound ports a workload's proxy opens, which hosts it can reach, and
//! its outbound policy.
//!
//! Egress hosts are `namespace/host`; at most one egress listener without a port, and it
//! must be last; ports of IP-bound listeners are unique; port 0 means a Unix socket bind.

use trellis_api::istio::networking::{
    CaptureMode, IstioEgressListener, IstioIngressListener, OutboundTrafficPolicyMode,
    ServerTlsSettingsTlsMode, Sidecar, SidecarPort,
};

use super::Report;
use super::common::{self, Protocol, UNIX_ADDRESS_PREFIX, validate_port};
use super::destination_rule::validate_connection_pool;
use super::gateway::validate_server_tls;
use super::report::{at, idx};
use super::virtual_service::validate_destination;

pub(crate) fn validate_sidecar(r: &mut Report, namespace: &str, sc: &Sidecar) {
    if let Some(sel) = &sc.workload_selector
        && !common::check_selector_labels(r, &sel.labels, "sidecar")
    {
        return;
    }
    if sc.egress.is_empty()
        && sc.ingress.is_empty()
        && sc.outbound_traffic_policy.is_none()
        && sc.inbound_connection_pool.is_none()
    {
        r.error("spec", "sidecar: empty configuration provided");
        return;
    }
    let mut ports: Vec<u32> = Vec::new();
    for (i, ing) in sc.ingress.iter().enumerate() {
        validate_ingress(r, &idx("spec", "ingress", i), ing, &mut ports);
    }
    if let Some(cp) = &sc.inbound_connection_pool {
        validate_connection_pool(r, "spec.inboundConnectionPool", cp);
    }

    let mut ports: Vec<u32> = Vec::new();
    let mut uds: Vec<&str> = Vec::new();
    let mut catch_all = false;
    for (i, eg) in sc.egress.iter().enumerate() {
        let p = idx("spec", "egress", i);
        match &eg.port {
            None => {
                if catch_all {
                    r.error(
                        &p,
                        "sidecar: egress can have only one listener with empty port",
                    );
                    continue;
                }
                if i == sc.egress.len() - 1 {
                    catch_all = true;
                } else {
                    r.error(
                        &p,
                        "sidecar: the egress listener with empty port should be the last listener in the list",
                    );
                }
            }
            Some(port) => {
                if port.target_port > 0 {
                    r.error(&at(&p, "port"), "targetPort has no impact on Sidecars");
                }
                validate_egress_port(r, &p, port, eg);
                if port.number == 0 {
                    if uds.contains(&eg.bind.as_str()) {
                        r.error(
                            &at(&p, "bind"),
                            "sidecar: unix domain socket values for listeners must be unique",
                        );
                    }
                    uds.push(&eg.bind);
                } else {
                    if ports.contains(&port.number) {
                        r.error(
                            &at(&p, "port"),
                            "sidecar: ports on IP bound listeners must be unique",
                        );
                    }
                    ports.push(port.number);
                }
            }
        }
        check_egress_hosts(r, &p, namespace, eg);
    }

    if let Some(otp) = &sc.outbound_traffic_policy {
        let p = "spec.outboundTrafficPolicy";
        if let Some(proxy) = &otp.egress_proxy {
            if otp.mode != OutboundTrafficPolicyMode::AllowAny {
                r.error(
                    p,
                    "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
                );
                return;
            }
            r.check(
                &at(p, "egressProxy.host"),
                common::validate_fqdn(&proxy.host),
            );
            if proxy.port.is_none() {
                r.error(
                    &at(p, "egressProxy"),
                    "sidecar: egress_proxy port must be non-nil",
                );
                return;
            }
            validate_destination(r, &at(p, "egressProxy"), proxy);
        }
    }
}

fn validate_ingress(r: &mut Report, p: &str, ing: &IstioIngressListener, ports: &mut Vec<u32>) {
    let Some(port) = &ing.port else {
        r.error(p, "sidecar: port is required for ingress listeners");
        return;
    };
    let pp = at(p, "port");
    if port.target_port > 0 {
        r.error(&pp, "targetPort has no impact on Sidecars");
    }
    if !port.name.is_empty() {
        r.check(&pp, common::validate_port_name(&port.name));
    }
    r.check(&pp, common::validate_protocol(&port.protocol));
    r.check(&pp, validate_port(i64::from(port.number)));
    if !ing.bind.is_empty() {
        r.check(&at(p, "bind"), common::validate_ip_address(&ing.bind));
    }
    if ports.contains(&port.number) {
        r.error(&pp, "sidecar: ports on IP bound listeners must be unique");
    }
    ports.push(port.number);
    if !ing.default_endpoint.is_empty() {
        check_default_endpoint(r, &at(p, "defaultEndpoint"), &ing.default_endpoint);
    }
    if let Some(tls) = &ing.tls {
        let tp = at(p, "tls");
        if !tls.subject_alt_names.is_empty() {
            r.error(
                &tp,
                "sidecar: subjectAltNames is not supported in ingress tls",
            );
        }
        if tls.https_redirect {
            r.error(&tp, "sidecar: httpsRedirect is not supported");
        }
        if !tls.credential_name.is_empty() {
            r.error(&tp, "sidecar: credentialName is not currently supported");
        }
        if !tls.credential_names.is_empty() {
            r.error(&tp, "sidecar: credentialNames is not currently supported");
        }
        if !tls.tls_certificates.is_empty() {
            r.error(&tp, "sidecar: tls_certificates is not currently supported");
        }
        if matches!(
            tls.mode,
            ServerTlsSettingsTlsMode::IstioMutual | ServerTlsSettingsTlsMode::AutoPassthrough
        ) {
            r.error(
                &tp,
                format!(
                    "configuration is invalid: cannot set mode to {} in sidecar ingress tls",
                    tls.mode.as_str()
                ),
            );
        }
        if !Protocol::parse(&port.protocol).is_tls() {
            r.error(
                &tp,
                "server cannot have TLS settings for non HTTPS/TLS ports",
            );
        }
        validate_server_tls(r, &tp, tls);
    }
    if let Some(cp) = &ing.connection_pool {
        validate_connection_pool(r, &at(p, "connectionPool"), cp);
        if cp.http.is_some() && !Protocol::parse(&port.protocol).is_http() {
            r.warn(
                &at(p, "connectionPool"),
                format!(
                    "sidecar: HTTP connection pool settings are configured for port {} ({:?}) but its protocol is not HTTP ({}); only TCP settings will apply",
                    port.number, port.name, port.protocol
                ),
            );
        }
    }
}

/// `127.0.0.1:port`, `0.0.0.0:port`, `[::1]:port`, `[::]:port`, `:port` or `unix://path`.
fn check_default_endpoint(r: &mut Report, p: &str, ep: &str) {
    if let Some(uds) = ep.strip_prefix(UNIX_ADDRESS_PREFIX) {
        r.check(p, common::validate_unix_address(uds));
        return;
    }
    let Some((host, port)) = split_host_port(ep) else {
        r.error(p, format!("address {ep}: missing port in address"));
        return;
    };
    if !host.is_empty() && !matches!(host, "127.0.0.1" | "0.0.0.0" | "::1" | "::") {
        r.error(
            p,
            "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset",
        );
    }
    match port.parse::<i64>() {
        Ok(n) => r.check(p, validate_port(n)),
        Err(_) => r.error(
            p,
            format!("sidecar: defaultEndpoint port ({port}) is not a number"),
        ),
    }
}

/// Go's `net.SplitHostPort`, for the shapes a default endpoint can take.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

fn validate_egress_port(r: &mut Report, p: &str, port: &SidecarPort, eg: &IstioEgressListener) {
    let pp = at(p, "port");
    if !port.name.is_empty() {
        r.check(&pp, common::validate_port_name(&port.name));
    }
    r.check(&pp, common::validate_protocol(&port.protocol));
    if port.number == 0 {
        match eg.bind.strip_prefix(UNIX_ADDRESS_PREFIX) {
            None => r.error(
                &at(p, "bind"),
                "sidecar: ports with 0 value must have a unix domain socket bind address",
            ),
            Some(uds) => r.check(&at(p, "bind"), common::validate_unix_address(uds)),
        }
        if !matches!(eg.capture_mode, CaptureMode::Default | CaptureMode::None) {
            r.error(
                &at(p, "captureMode"),
                "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
            );
        }
    } else {
        r.check(&pp, validate_port(i64::from(port.number)));
        if !eg.bind.is_empty() {
            r.check(&at(p, "bind"), common::validate_ip_address(&eg.bind));
        }
    }
}

/// Egress hosts: `ns/host` form, with duplicates and `*/*` alongside others as warnings.
fn check_egress_hosts(r: &mut Report, p: &str, namespace: &str, eg: &IstioEgressListener) {
    if eg.hosts.is_empty() {
        r.error(
            &at(p, "hosts"),
            "sidecar: egress listener must contain at least one host",
        );
        return;
    }
    let mut by_ns: Vec<(String, Vec<String>)> = Vec::new();
    for (i, host) in eg.hosts.iter().enumerate() {
        let hp = idx(p, "hosts", i);
        if let Some((ns, svc)) = host.split_once('/')
            && !ns.starts_with('~')
        {
            let ns = if ns == "." { namespace } else { ns };
            let pos = match by_ns.iter().position(|(n, _)| n == ns) {
                Some(pos) => pos,
                None => {
                    by_ns.push((ns.to_string(), Vec::new()));
                    by_ns.len() - 1
                }
            };
            let svcs = &mut by_ns[pos].1;
            let dup = if svc != "*" {
                svcs.iter().any(|s| s == svc || s == "*")
            } else {
                !svcs.is_empty()
            };
            if dup {
                r.warn(&hp, format!("duplicated egress host: {host}"));
            }
            svcs.push(svc.to_string());
        }
        for e in common::validate_namespace_slash_host(host, false, false) {
            r.error(&hp, e);
        }
    }
    let all = by_ns
        .iter()
        .any(|(n, s)| n == "*" && s.iter().any(|x| x == "*"));
    if all && by_ns.len() != 1 {
        r.warn(
            &at(p, "hosts"),
            "`*/*` host select all resources, no other hosts can be added",
        );
    }
}
