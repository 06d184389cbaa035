//! ServiceEntry, WorkloadEntry and WorkloadGroup: how services outside the registry and the
//! workloads behind them are declared.
//!
//! The endpoint rules depend on the resolution: STATIC endpoints are IPs or Unix sockets,
//! DNS endpoints may be names, NONE has none, DYNAMIC_DNS takes wildcard hosts only.

use std::collections::BTreeMap;

use trellis_api::ObjectMeta;
use trellis_api::istio::networking::{
    ReadinessProbe, ServiceEntry, ServiceEntryLocation, ServiceEntryResolution as Res,
    WorkloadEntry, WorkloadGroup,
};

use super::Report;
use super::common::{self, Protocol, UNIX_ADDRESS_PREFIX, validate_port};
use super::report::{at, idx, key};

pub(crate) fn validate_service_entry(r: &mut Report, meta: &ObjectMeta, se: &ServiceEntry) {
    if let Some(sel) = &se.workload_selector {
        if !common::check_selector_labels(r, &sel.labels, "service entry") {
            return;
        }
        if !se.endpoints.is_empty() {
            r.error(
                "spec",
                "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
            );
        }
    }
    if se.hosts.is_empty() {
        r.error("spec.hosts", "service entry must have at least one host");
    }
    for (i, host) in se.hosts.iter().enumerate() {
        let p = idx("spec", "hosts", i);
        if host == "*" {
            r.error(&p, format!("invalid host {host}"));
            continue;
        }
        r.check(&p, common::validate_wildcard_domain(host));
        if se.resolution != Res::DynamicDns
            && let Err(e) = common::validate_partial_wildcard(host)
        {
            r.warn(&p, e);
        }
    }
    let mut cidr_found = false;
    for (i, addr) in se.addresses.iter().enumerate() {
        cidr_found |= addr.contains('/');
        r.check(
            &idx("spec", "addresses", i),
            common::validate_ip_subnet(addr),
        );
    }
    if cidr_found && !matches!(se.resolution, Res::None | Res::Static) {
        r.error(
            "spec.addresses",
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }

    let mut port_names: Vec<&str> = Vec::new();
    let mut port_numbers: Vec<u32> = Vec::new();
    for (i, port) in se.ports.iter().enumerate() {
        let p = idx("spec", "ports", i);
        if port_names.contains(&port.name.as_str()) {
            r.error(
                &at(&p, "name"),
                format!("service entry port name {:?} already defined", port.name),
            );
        }
        port_names.push(&port.name);
        if port_numbers.contains(&port.number) {
            r.error(
                &at(&p, "number"),
                format!("service entry port {} already defined", port.number),
            );
        }
        port_numbers.push(port.number);
        if port.target_port != 0 {
            r.check(
                &at(&p, "targetPort"),
                validate_port(i64::from(port.target_port)),
            );
        }
        if se.addresses.is_empty() && (port.protocol.is_empty() || port.protocol == "TCP") {
            r.warn(
                &p,
                "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not enabled",
            );
        }
        r.check(&at(&p, "name"), common::validate_port_name(&port.name));
        r.check(
            &at(&p, "protocol"),
            common::validate_protocol(&port.protocol),
        );
        r.check(&at(&p, "number"), validate_port(i64::from(port.number)));
    }

    let res = se.resolution.as_str();
    match se.resolution {
        Res::None => {
            if !se.endpoints.is_empty() {
                r.error(
                    "spec.endpoints",
                    "no endpoints should be provided for resolution type none",
                );
            }
            if se.workload_selector.is_some() {
                r.warn(
                    "spec.workloadSelector",
                    "workloadSelector should not be set when resolution mode is NONE",
                );
            }
        }
        Res::Static => {
            for (i, ep) in se.endpoints.iter().enumerate() {
                validate_workload_entry(
                    r,
                    &idx("spec", "endpoints", i),
                    ep,
                    Some(&port_names),
                    false,
                );
            }
        }
        Res::Dns | Res::DnsRoundRobin => {
            if se.endpoints.is_empty()
                && let Some(e) = se.hosts.iter().find_map(|h| common::validate_fqdn(h).err())
            {
                r.error(
                    "spec.hosts",
                    format!(
                        "hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode {res}, {e}"
                    ),
                );
            }
            if se.resolution == Res::DnsRoundRobin && se.endpoints.len() > 1 {
                r.error(
                    "spec.endpoints",
                    format!("there must only be 0 or 1 endpoint for resolution mode {res}"),
                );
            }
            for (i, ep) in se.endpoints.iter().enumerate() {
                let p = idx("spec", "endpoints", i);
                if !common::is_ip(&ep.address) && common::validate_fqdn(&ep.address).is_err() {
                    r.error(
                        &at(&p, "address"),
                        format!(
                            "endpoint address {:?} is not a valid FQDN or an IP address",
                            ep.address
                        ),
                    );
                }
                for e in common::validate_labels(&ep.labels) {
                    r.error(&at(&p, "labels"), e);
                }
                check_endpoint_ports(r, &p, &ep.ports, Some(&port_names));
            }
            if !se.addresses.is_empty()
                && se.hosts.len() > 1
                && se
                    .ports
                    .iter()
                    .any(|p| Protocol::parse(&p.protocol).is_tcp())
            {
                r.warn(
                    "spec",
                    "service entry can not have more than one host specified simultaneously with address and tcp port",
                );
            }
        }
        Res::DynamicDns => {
            if se.hosts.iter().any(|h| !h.starts_with('*')) {
                r.error(
                    "spec.hosts",
                    format!("host must be wildcarded for resolution mode {res}"),
                );
            }
            if !se.addresses.is_empty() {
                r.error(
                    "spec.addresses",
                    format!(
                        "addresses cannot be set for resolution type {res}. HTTP route domains will only be generated from the hosts field values"
                    ),
                );
            }
            if !se.endpoints.is_empty() {
                r.error(
                    "spec.endpoints",
                    format!(
                        "endpoints cannot be set for resolution type {res}. Destination IP address determined from hosts field values"
                    ),
                );
            }
            for (i, port) in se.ports.iter().enumerate() {
                let proto = Protocol::parse(&port.protocol);
                if !matches!(
                    proto,
                    Protocol::Http | Protocol::Tls | Protocol::Grpc | Protocol::Http2
                ) {
                    r.error(
                        &idx("spec", "ports", i),
                        format!(
                            "only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type {res}"
                        ),
                    );
                }
            }
            if se.location == ServiceEntryLocation::MeshInternal && uses_waypoint(meta) {
                r.error(
                    "spec.location",
                    format!(
                        "location MESH_INTERNAL with resolution type {res} is not supported when using waypoints"
                    ),
                );
            }
        }
    }

    // Plain TCP cannot tell several hosts apart (no Host header, no SNI).
    if se.resolution != Res::None
        && se.hosts.len() > 1
        && se.ports.iter().any(|p| {
            let proto = Protocol::parse(&p.protocol);
            !proto.is_http() && !proto.is_tls()
        })
    {
        r.error(
            "spec.ports",
            "multiple hosts provided with non-HTTP, non-TLS ports",
        );
    }
    for e in common::validate_export_to(&meta.namespace, &se.export_to, true, false) {
        r.error("spec.exportTo", e);
    }
}

fn uses_waypoint(meta: &ObjectMeta) -> bool {
    meta.labels
        .get("istio.io/use-waypoint")
        .is_some_and(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none"))
}

fn check_endpoint_ports(
    r: &mut Report,
    path: &str,
    ports: &BTreeMap<String, u32>,
    service_ports: Option<&[&str]>,
) {
    for (name, port) in ports {
        let p = key(path, "ports", name);
        if let Some(sp) = service_ports
            && !sp.contains(&name.as_str())
        {
            r.error(
                &p,
                format!("endpoint port {port} is not defined by the service entry"),
            );
        }
        r.check(&p, common::validate_port_name(name));
        r.check(&p, validate_port(i64::from(*port)));
    }
}

pub(crate) fn validate_workload_entry_resource(r: &mut Report, we: &WorkloadEntry) {
    validate_workload_entry(r, "spec", we, None, true);
}

/// A workload's address (IP, Unix socket, or — outside STATIC ServiceEntries — a DNS
/// name), its named ports and labels.
fn validate_workload_entry(
    r: &mut Report,
    path: &str,
    we: &WorkloadEntry,
    service_ports: Option<&[&str]>,
    allow_fqdn: bool,
) {
    let addr = we.address.as_str();
    let ap = at(path, "address");
    if addr.is_empty() {
        if we.network.is_empty() {
            r.error(&ap, "address is required");
            return;
        }
        r.warn(
            &ap,
            format!("address is unset with network {:?}", we.network),
        );
    }
    let unix = addr.starts_with(UNIX_ADDRESS_PREFIX);
    if let Some(uds) = addr.strip_prefix(UNIX_ADDRESS_PREFIX) {
        r.check(&ap, common::validate_unix_address(uds));
        if !we.ports.is_empty() {
            r.error(
                &at(path, "ports"),
                format!("unix endpoint {addr} must not include ports"),
            );
        }
    } else if !addr.is_empty() && !common::is_ip(addr) {
        if !allow_fqdn {
            r.error(
                &ap,
                format!("endpoint address {addr:?} is not a valid IP address"),
            );
        } else if common::validate_fqdn(addr).is_err() {
            r.error(
                &ap,
                format!("endpoint address {addr:?} is not a valid FQDN or an IP address"),
            );
        }
    }
    check_endpoint_ports(r, path, &we.ports, service_ports);
    for e in common::validate_labels(&we.labels) {
        r.error(&at(path, "labels"), e);
    }
    if unix && service_ports.is_some_and(|sp| sp.len() != 1) {
        r.error(path, "exactly 1 service port required for unix endpoints");
    }
}

pub(crate) fn validate_workload_group(r: &mut Report, wg: &WorkloadGroup) {
    let Some(template) = &wg.template else {
        r.error("spec.template", "template is required");
        return;
    };
    // Address and other fields are filled in at registration, so the template is not a full
    // WorkloadEntry; only what is set is checked.
    for (name, port) in &template.ports {
        r.check(
            &key("spec.template", "ports", name),
            validate_port(i64::from(*port)),
        );
    }
    if let Some(md) = &wg.metadata {
        let errs = common::validate_labels(&md.labels);
        if let Some(e) = errs.first() {
            r.error("spec.metadata.labels", format!("invalid labels: {e}"));
            return;
        }
    }
    if let Some(probe) = &wg.probe {
        validate_probe(r, "spec.probe", probe);
    }
}

fn validate_probe(r: &mut Report, path: &str, p: &ReadinessProbe) {
    for (v, what) in [
        (p.period_seconds, "periodSeconds"),
        (p.initial_delay_seconds, "initialDelaySeconds"),
        (p.timeout_seconds, "timeoutSeconds"),
        (p.success_threshold, "successThreshold"),
        (p.failure_threshold, "failureThreshold"),
    ] {
        if v < 0 {
            r.error(&at(path, what), format!("{what} must be non-negative"));
        }
    }
    common::check_oneofs(r, path, p);
    if let Some(h) = &p.http_get {
        let hp = at(path, "httpGet");
        r.check(&at(&hp, "port"), validate_port(i64::from(h.port)));
        if !h.scheme.is_empty() && h.scheme != "HTTP" && h.scheme != "HTTPS" {
            r.error(
                &at(&hp, "scheme"),
                "httpGet.scheme must be one of \"HTTPS\", \"HTTP\"",
            );
        }
        for (i, header) in h.http_headers.iter().enumerate() {
            let ok = !header.name.is_empty()
                && header
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                r.error(
                    &idx(&hp, "httpHeaders", i),
                    format!("header name {} is not a valid header name", header.name),
                );
            }
        }
    } else if let Some(t) = &p.tcp_socket {
        r.check(
            &at(path, "tcpSocket.port"),
            validate_port(i64::from(t.port)),
        );
    } else if let Some(e) = &p.exec {
        if e.command.is_empty() {
            r.error(&at(path, "exec.command"), "exec.command is required");
        }
    } else {
        // Istio's webhook knows no other method (gRPC probes included).
        r.error(path, "unknown health check method");
    }
}
