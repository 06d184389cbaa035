//! Istio's analyzer messages: code, level and wording (from Istio's `messages.yaml`), one
//! constructor per message so that every analyzer words the same message the same way.

use trellis_api::Resource;

use super::context::origin;
use super::{Level, Message};

fn msg(r: &Resource, code: &'static str, level: Level, message: String) -> Message {
    Message {
        code,
        level,
        origin: origin(r),
        message,
    }
}

/// Go's `%q`: a double-quoted string with escapes.
pub fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// Go's `%v` of a slice: `[a b c]`.
pub fn list<T: std::fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(|i| i.to_string()).collect();
    format!("[{}]", parts.join(" "))
}

pub fn deprecated(r: &Resource, detail: &str) -> Message {
    msg(
        r,
        "IST0002",
        Level::Warning,
        format!("Deprecated: {detail}"),
    )
}

pub fn referenced_resource_not_found(r: &Resource, reftype: &str, refval: &str) -> Message {
    msg(
        r,
        "IST0101",
        Level::Error,
        format!("Referenced {reftype} not found: {}", quote(refval)),
    )
}

pub fn schema_validation_error(r: &Resource, err: &str) -> Message {
    msg(
        r,
        "IST0106",
        Level::Error,
        format!("Schema validation error: {err}"),
    )
}

pub fn schema_warning(r: &Resource, err: &str) -> Message {
    msg(
        r,
        "IST0133",
        Level::Warning,
        format!("Schema validation warning: {err}"),
    )
}

pub fn conflicting_mesh_gateway_hosts(r: &Resource, vss: &str, host: &str) -> Message {
    msg(
        r,
        "IST0109",
        Level::Error,
        format!(
            "The VirtualServices {vss} associated with mesh gateway define the same host {host} \
             which can lead to undefined behavior. This can be fixed by merging the conflicting \
             VirtualServices into a single resource."
        ),
    )
}

pub fn conflicting_sidecar_selectors(
    r: &Resource,
    sidecars: &[String],
    ns: &str,
    pod: &str,
) -> Message {
    msg(
        r,
        "IST0110",
        Level::Error,
        format!(
            "The Sidecars {} in namespace {} select the same workload pod {}, which can lead to \
             undefined behavior.",
            list(sidecars),
            quote(ns),
            quote(pod)
        ),
    )
}

pub fn multiple_sidecars_without_selector(r: &Resource, sidecars: &[String], ns: &str) -> Message {
    msg(
        r,
        "IST0111",
        Level::Error,
        format!(
            "The Sidecars {} in namespace {} have no workload selector, which can lead to \
             undefined behavior.",
            list(sidecars),
            quote(ns)
        ),
    )
}

pub fn port_selector_required(r: &Resource, host: &str, ports: &[u32]) -> Message {
    msg(
        r,
        "IST0112",
        Level::Error,
        format!(
            "This VirtualService routes to a service {} that exposes multiple ports {}. \
             Specifying a port in the destination is required to disambiguate.",
            quote(host),
            list(ports)
        ),
    )
}

pub fn deployment_multiple_services(
    r: &Resource,
    deployment: &str,
    port: u32,
    services: &[String],
) -> Message {
    msg(
        r,
        "IST0116",
        Level::Warning,
        format!(
            "This deployment {deployment} is associated with multiple services using port {port} \
             but different protocols: {}",
            list(services)
        ),
    )
}

pub fn port_name_convention(r: &Resource, name: &str, port: u32, target: &str) -> Message {
    msg(
        r,
        "IST0118",
        Level::Info,
        format!(
            "Port name {name} (port: {port}, targetPort: {target}) doesn't follow the naming \
             convention of Istio port."
        ),
    )
}

pub fn no_matching_workloads(r: &Resource, labels: &str) -> Message {
    msg(
        r,
        "IST0127",
        Level::Warning,
        format!("No matching workloads for this resource with the following labels: {labels}"),
    )
}

pub fn no_server_cert_verification_destination(r: &Resource, mode: &str, host: &str) -> Message {
    msg(
        r,
        "IST0128",
        Level::Warning,
        format!(
            "DestinationRule {} in namespace {} has TLS mode set to {mode} but no caCertificates \
             are set to validate server identity for host: {host}",
            r.meta.name, r.meta.namespace
        ),
    )
}

pub fn no_server_cert_verification_port(
    r: &Resource,
    mode: &str,
    host: &str,
    port: u32,
) -> Message {
    msg(
        r,
        "IST0129",
        Level::Warning,
        format!(
            "DestinationRule {} in namespace {} has TLS mode set to {mode} but no caCertificates \
             are set to validate server identity for host: {host} at port {port}",
            r.meta.name, r.meta.namespace
        ),
    )
}

pub fn unreachable_rule(r: &Resource, rule: &str, reason: &str) -> Message {
    msg(
        r,
        "IST0130",
        Level::Warning,
        format!("VirtualService rule {rule} not used ({reason})."),
    )
}

pub fn ineffective_match(r: &Resource, rule: &str, matchno: &str, dup: &str) -> Message {
    msg(
        r,
        "IST0131",
        Level::Info,
        format!(
            "VirtualService rule {rule} match {matchno} is not used (duplicate/overlapping match \
             in rule {dup})."
        ),
    )
}

pub fn host_not_in_gateway(r: &Resource, hosts: &[String], vs: &str, gw: &str) -> Message {
    msg(
        r,
        "IST0132",
        Level::Warning,
        format!(
            "one or more host {} defined in VirtualService {vs} not found in Gateway {gw}.",
            list(hosts)
        ),
    )
}

pub fn service_entry_addresses_required(r: &Resource) -> Message {
    msg(
        r,
        "IST0134",
        Level::Warning,
        "ServiceEntry addresses are required for this protocol.".to_string(),
    )
}

pub fn deployment_conflicting_ports(
    r: &Resource,
    deployment: &str,
    services: &[String],
    target: &str,
    ports: &[u32],
) -> Message {
    msg(
        r,
        "IST0137",
        Level::Warning,
        format!(
            "This deployment {deployment} is associated with multiple services {} using \
             targetPort {} but different ports: {}.",
            list(services),
            quote(target),
            list(ports)
        ),
    )
}

pub fn gateway_duplicate_certificate(r: &Resource, gateways: &[String]) -> Message {
    msg(
        r,
        "IST0138",
        Level::Warning,
        format!(
            "Duplicate certificate in multiple gateways {} may cause 404s if clients re-use HTTP2 \
             connections.",
            list(gateways)
        ),
    )
}

pub fn ingress_route_rules_not_affected(r: &Resource, subset_vs: &str, vs: &str) -> Message {
    msg(
        r,
        "IST0140",
        Level::Warning,
        format!(
            "Subset in virtual service {subset_vs} has no effect on ingress gateway {vs} requests"
        ),
    )
}

pub fn conflicting_gateways(
    r: &Resource,
    gateways: &str,
    selector: &str,
    port: u32,
    hosts: &str,
) -> Message {
    msg(
        r,
        "IST0145",
        Level::Error,
        format!(
            "Conflict with gateways {gateways} (workload selector {selector}, port {port}, hosts \
             {hosts})."
        ),
    )
}

pub fn jwt_claim_routing_without_request_authn(
    r: &Resource,
    key: &str,
    gw: &str,
    pod: &str,
) -> Message {
    msg(
        r,
        "IST0149",
        Level::Error,
        format!(
            "The virtual service uses the JWT claim based routing (key: {key}) but found no \
             request authentication for the gateway ({gw}) pod ({pod}). The request \
             authentication must first be applied for the gateway pods to validate the JWT token \
             and make the claims available for routing."
        ),
    )
}

pub fn external_name_invalid_port_name(r: &Resource) -> Message {
    msg(
        r,
        "IST0150",
        Level::Warning,
        "Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and \
         unmatched traffic for ports serving TCP protocol from being forwarded correctly"
            .to_string(),
    )
}

pub fn envoy_filter_relative_operation(r: &Resource) -> Message {
    msg(
        r,
        "IST0151",
        Level::Warning,
        "This EnvoyFilter does not have a priority and has a relative patch operation set which \
         can cause the EnvoyFilter not to be applied. Using the INSERT_FIRST of ADD option or \
         setting the priority may help in ensuring the EnvoyFilter is applied correctly."
            .to_string(),
    )
}

pub fn envoy_filter_replace_incorrect(r: &Resource) -> Message {
    msg(
        r,
        "IST0152",
        Level::Error,
        "The REPLACE operation is only valid for HTTP_FILTER and NETWORK_FILTER.".to_string(),
    )
}

pub fn envoy_filter_add_incorrect(r: &Resource) -> Message {
    msg(
        r,
        "IST0153",
        Level::Error,
        "The ADD operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or \
         HTTP_ROUTE."
            .to_string(),
    )
}

pub fn envoy_filter_remove_incorrect(r: &Resource) -> Message {
    msg(
        r,
        "IST0154",
        Level::Error,
        "The REMOVE operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or \
         HTTP_ROUTE."
            .to_string(),
    )
}

pub fn envoy_filter_relative_with_proxy_version(r: &Resource) -> Message {
    msg(
        r,
        "IST0155",
        Level::Warning,
        "This EnvoyFilter does not have a priority and has a relative patch operation \
         (NSTERT_BEFORE/AFTER, REPLACE, MERGE, DELETE) and proxyVersion set which can cause the \
         EnvoyFilter not to be applied during an upgrade. Using the INSERT_FIRST or ADD option or \
         setting the priority may help in ensuring the EnvoyFilter is applied correctly."
            .to_string(),
    )
}

pub fn invalid_telemetry_provider(r: &Resource) -> Message {
    msg(
        r,
        "IST0157",
        Level::Warning,
        format!(
            "The Telemetry {} in namespace {} with empty providers will be ignored.",
            r.meta.name,
            quote(&r.meta.namespace)
        ),
    )
}

pub fn conflicting_telemetry_selectors(
    r: &Resource,
    names: &[String],
    ns: &str,
    pod: &str,
) -> Message {
    msg(
        r,
        "IST0159",
        Level::Error,
        format!(
            "The Telemetries {} in namespace {} select the same workload pod {}, which can lead \
             to undefined behavior.",
            list(names),
            quote(ns),
            quote(pod)
        ),
    )
}

pub fn multiple_telemetries_without_selector(r: &Resource, names: &[String], ns: &str) -> Message {
    msg(
        r,
        "IST0160",
        Level::Error,
        format!(
            "The Telemetries {} in namespace {} have no workload selector, which can lead to \
             undefined behavior.",
            list(names),
            quote(ns)
        ),
    )
}

pub fn invalid_gateway_credential(r: &Resource) -> Message {
    msg(
        r,
        "IST0161",
        Level::Error,
        format!(
            "The credential referenced by the Gateway {} in namespace {} is invalid, which can \
             cause the traffic not to work as expected.",
            r.meta.name, r.meta.namespace
        ),
    )
}

pub fn gateway_port_not_on_service(r: &Resource, port: u32, selector: &str) -> Message {
    msg(
        r,
        "IST0162",
        Level::Warning,
        format!(
            "The gateway is listening on a target port (port {port}) that is not defined in the \
             Service associated with its workload instances (Pod selector {selector}). If you \
             need to access the gateway port through the gateway Service, it will not be \
             available."
        ),
    )
}

pub fn referenced_internal_gateway(r: &Resource, vs: &str, gw: &str) -> Message {
    msg(
        r,
        "IST0165",
        Level::Warning,
        format!(
            "Gateway reference in VirtualService {vs} is to an implementation-generated internal \
             Gateway: {gw}."
        ),
    )
}

pub fn ineffective_policy(r: &Resource, reason: &str) -> Message {
    msg(
        r,
        "IST0167",
        Level::Warning,
        format!("The policy has no impact: {reason}."),
    )
}

pub fn subset_selects_no_pods(r: &Resource, subset: &str) -> Message {
    msg(
        r,
        "IST0173",
        Level::Error,
        format!(
            "The Subset {subset} defined in the DestinationRule does not select any pods. Which \
             may lead to 503 UH (NoHealthyUpstream)."
        ),
    )
}

pub fn unknown_destination_rule_host(r: &Resource, host: &str) -> Message {
    msg(
        r,
        "IST0174",
        Level::Warning,
        format!(
            "The host {host} defined in the DestinationRule does not match any services in the mesh."
        ),
    )
}

pub fn conflicting_service_entry_protocol(
    r: &Resource,
    names: &str,
    host: &str,
    port: u32,
    protocols: &str,
) -> Message {
    msg(
        r,
        "IST0177",
        Level::Warning,
        format!(
            "Multiple ServiceEntries ({names}) define the same host {} and port {port} with \
             conflicting protocols ({protocols}).",
            quote(host)
        ),
    )
}

pub fn invalid_application_uid(r: &Resource) -> Message {
    msg(
        r,
        "IST0144",
        Level::Warning,
        "User ID (UID) 1337 is reserved for the sidecar proxy.".to_string(),
    )
}

/// IST0175; at most five names are listed, then how many more there are.
pub fn jwks_uri_fetch_unrestricted(r: &Resource, names: &[String]) -> Message {
    const SHOWN: usize = 5;
    let listed = if names.len() <= SHOWN {
        names.join(", ")
    } else {
        format!(
            "{}, and {} more",
            names[..SHOWN].join(", "),
            names.len() - SHOWN
        )
    };
    msg(
        r,
        "IST0175",
        Level::Warning,
        format!(
            "BLOCKED_CIDRS_IN_JWKS_URIS is not configured but {} RequestAuthentication \
             resource(s) exist ({listed}). Consider configuring it to restrict JWKS URI \
             fetches to trusted networks.",
            names.len()
        ),
    )
}

pub fn misplaced_annotation(r: &Resource, annotation: &str, kinds: &str) -> Message {
    msg(
        r,
        "IST0107",
        Level::Warning,
        format!("Misplaced annotation: {annotation} can only be applied to {kinds}"),
    )
}

pub fn unknown_annotation(r: &Resource, annotation: &str) -> Message {
    msg(
        r,
        "IST0108",
        Level::Warning,
        format!("Unknown annotation: {annotation}"),
    )
}

pub fn invalid_annotation(r: &Resource, annotation: &str, problem: &str) -> Message {
    msg(
        r,
        "IST0125",
        Level::Warning,
        format!("Invalid annotation {annotation}: {problem}"),
    )
}

pub fn deprecated_annotation(r: &Resource, annotation: &str, extra: &str) -> Message {
    msg(
        r,
        "IST0135",
        Level::Info,
        format!(
            "Annotation {} has been deprecated{extra} and may not work in future Istio versions.",
            quote(annotation)
        ),
    )
}

pub fn alpha_annotation(r: &Resource, annotation: &str) -> Message {
    msg(
        r,
        "IST0136",
        Level::Info,
        format!(
            "Annotation {} is part of an alpha-phase feature and may be incompletely supported.",
            quote(annotation)
        ),
    )
}

/// Trellis's own code (outside Istio's `IST` range): a field, or a whole kind, that the
/// translation does not honour yet. `origin` is `Kind namespace/name`, or `MeshConfig`.
pub fn unsupported_field(origin: String, field: &str, reason: &str) -> Message {
    Message {
        code: "TRL0001",
        level: Level::Warning,
        origin,
        message: format!(
            "Field {field} is not implemented by Trellis yet and is ignored: {reason}"
        ),
    }
}

pub fn unsupported_kind(r: &Resource, reason: &str) -> Message {
    msg(
        r,
        "TRL0001",
        Level::Warning,
        format!(
            "{} is not implemented by Trellis yet and is ignored: {reason}",
            r.kind()
        ),
    )
}
