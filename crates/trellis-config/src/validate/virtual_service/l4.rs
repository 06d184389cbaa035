//! TLS and TCP routes: SNI hosts, L4 match attributes and their destinations.

use trellis_api::istio::networking::{
    L4MatchAttributes, TcpRoute, TlsMatchAttributes, TlsRoute, VirtualService,
};

use super::{MESH_GATEWAY, check_gateway_names, validate_route_destinations};
use crate::validate::Report;
use crate::validate::common::{self, validate_port};
use crate::validate::report::{at, idx};

pub(super) fn validate_tls_route(
    r: &mut Report,
    path: &str,
    tls: &TlsRoute,
    vs: &VirtualService,
    gateway_semantics: bool,
) {
    if tls.r#match.is_empty() {
        r.error(path, "TLS route must have at least one match condition");
    }
    for (i, m) in tls.r#match.iter().enumerate() {
        validate_tls_match(r, &idx(path, "match", i), m, vs);
    }
    if tls.route.is_empty() {
        r.error(path, "TLS route is required");
    }
    validate_route_destinations(r, &at(path, "route"), &tls.route, gateway_semantics);
}

pub(super) fn validate_tls_match(
    r: &mut Report,
    path: &str,
    m: &TlsMatchAttributes,
    vs: &VirtualService,
) {
    if m.sni_hosts.is_empty() {
        r.error(path, "TLS match must have at least one SNI host");
    }
    for (i, sni) in m.sni_hosts.iter().enumerate() {
        validate_sni_host(r, &idx(path, "sniHosts", i), sni, vs);
    }
    for (i, s) in m.destination_subnets.iter().enumerate() {
        r.check(
            &idx(path, "destinationSubnets", i),
            common::validate_ip_subnet(s),
        );
    }
    if m.port != 0 {
        r.check(&at(path, "port"), validate_port(i64::from(m.port)));
    }
    for e in common::validate_labels(&m.source_labels) {
        r.error(&at(path, "sourceLabels"), e);
    }
    check_gateway_names(r, &at(path, "gateways"), &m.gateways, false);
}

pub(super) fn validate_sni_host(r: &mut Report, path: &str, sni: &str, vs: &VirtualService) {
    let to_gateway = !vs.gateways.iter().any(|g| g == MESH_GATEWAY);
    let result = if to_gateway {
        common::validate_wildcard_domain_for_gateway_vs(true, sni)
    } else {
        common::validate_wildcard_domain(sni)
    };
    if let Err(e) = result {
        if common::is_ip(sni) {
            r.warn(
                path,
                format!(
                    "using an IP address ({sni:?}) goes against SNI spec and most clients do not support this"
                ),
            );
        } else {
            r.error(path, e);
        }
        return;
    }
    if vs.hosts.iter().any(|h| trellis_api::host::covers(h, sni)) {
        return;
    }
    r.error(
        path,
        format!(
            "SNI host {sni:?} is not a compatible subset of any of the virtual service hosts: [{}]",
            vs.hosts.join(", ")
        ),
    );
}

pub(super) fn validate_tcp_route(
    r: &mut Report,
    path: &str,
    tcp: &TcpRoute,
    gateway_semantics: bool,
) {
    for (i, m) in tcp.r#match.iter().enumerate() {
        validate_l4_match(r, &idx(path, "match", i), m);
    }
    if tcp.route.is_empty() {
        r.error(path, "TCP route is required");
    }
    validate_route_destinations(r, &at(path, "route"), &tcp.route, gateway_semantics);
}

pub(super) fn validate_l4_match(r: &mut Report, path: &str, m: &L4MatchAttributes) {
    for (i, s) in m.destination_subnets.iter().enumerate() {
        r.check(
            &idx(path, "destinationSubnets", i),
            common::validate_ip_subnet(s),
        );
    }
    if m.port != 0 {
        r.check(&at(path, "port"), validate_port(i64::from(m.port)));
    }
    for e in common::validate_labels(&m.source_labels) {
        r.error(&at(path, "sourceLabels"), e);
    }
    check_gateway_names(r, &at(path, "gateways"), &m.gateways, false);
}
