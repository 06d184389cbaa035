//! Validation of one sub-message on its own (an HTTPRoute, a ServerTLSSettings...), with
//! the same functions the kind validators use. Used by tools that check a snippet, and by
//! the compatibility suite, whose upstream tables test sub-messages directly.

use serde::de::DeserializeOwned;
use serde_json::Value;
use trellis_api::istio::networking as net;
use trellis_api::istio::telemetry::AccessLoggingFilter;

use super::virtual_service::{self as vs, RouteKind};
use super::{Finding, Report, common, destination_rule as dr, gateway};

/// The message names [`validate_fragment`] accepts (Istio's Go type names).
pub const FRAGMENT_KINDS: &[&str] = &[
    "HTTPRoute",
    "DelegateHTTPRoute",
    "RouteDestination",
    "HTTPRouteDestination",
    "Destination",
    "HTTPRetry",
    "HTTPRewrite",
    "RegexRewrite",
    "HTTPRedirect",
    "HTTPDirectResponse",
    "HTTPFaultInjection",
    "HTTPFaultInjection_Abort",
    "HTTPFaultInjection_Delay",
    "CorsPolicy",
    "Server",
    "Port",
    "ServerTLSSettings",
    "TrafficPolicy",
    "ConnectionPoolSettings",
    "LoadBalancerSettings",
    "OutlierDetection",
    "ClientTLSSettings",
    "AccessLogging_Filter",
    "ExportTo",
];

fn decode<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Decodes `value` as the message `kind` and validates it. A decode error (unknown field,
/// wrong type, unknown enum value) is returned as `Err`, as is an unknown kind.
///
/// Two kinds are not Istio messages: `DelegateHTTPRoute` is an HTTPRoute of a delegate
/// VirtualService (no hosts), and `ExportTo` is
/// `{"namespace": .., "exportTo": [..], "isServiceEntry": bool, "isDestinationRuleWithSelector": bool}`.
/// `RouteDestination` and `HTTPRouteDestination` take a list (weights are checked together).
pub fn validate_fragment(kind: &str, value: Value) -> Result<Vec<Finding>, String> {
    let mut r = Report::default();
    match kind {
        "HTTPRoute" => {
            let h: net::HttpRoute = decode(value)?;
            let k = vs::route_kind(&h, false);
            vs::validate_http_route(&mut r, "", &h, k, false);
        }
        "DelegateHTTPRoute" => {
            let h: net::HttpRoute = decode(value)?;
            vs::validate_http_route(&mut r, "", &h, RouteKind::Delegate, false);
        }
        "RouteDestination" => {
            let list: Vec<net::RouteDestination> = decode(value)?;
            vs::validate_route_destinations(&mut r, "", &list, false);
        }
        "HTTPRouteDestination" => {
            let list: Vec<net::HttpRouteDestination> = decode(value)?;
            vs::validate_http_route_destinations(&mut r, "", &list, false);
        }
        "Destination" => vs::validate_destination(&mut r, "", &decode(value)?),
        "HTTPRetry" => vs::validate_retry(&mut r, "", &decode(value)?),
        "HTTPRewrite" => vs::validate_rewrite(&mut r, "", &decode(value)?),
        "RegexRewrite" => vs::validate_regex_rewrite(&mut r, "", &decode(value)?),
        "HTTPRedirect" => vs::validate_redirect(&mut r, "", &decode(value)?, &[]),
        "HTTPDirectResponse" => vs::validate_direct_response(&mut r, "", &decode(value)?),
        "HTTPFaultInjection" => vs::validate_fault(&mut r, "", &decode(value)?),
        "HTTPFaultInjection_Abort" => vs::validate_fault_abort(&mut r, "", &decode(value)?),
        "HTTPFaultInjection_Delay" => vs::validate_fault_delay(&mut r, "", &decode(value)?),
        "CorsPolicy" => vs::validate_cors_policy(&mut r, "", &decode(value)?),
        "Server" => gateway::validate_server(&mut r, "", &decode(value)?, false),
        "Port" => {
            let port: net::Port = decode(value)?;
            gateway::validate_server_port(&mut r, "", Some(&port), "");
        }
        "ServerTLSSettings" => gateway::validate_server_tls(&mut r, "", &decode(value)?),
        "TrafficPolicy" => dr::validate_traffic_policy(&mut r, "", "", &decode(value)?),
        "ConnectionPoolSettings" => dr::validate_connection_pool(&mut r, "", &decode(value)?),
        "LoadBalancerSettings" => dr::validate_load_balancer(&mut r, "", &decode(value)?, false),
        "OutlierDetection" => dr::validate_outlier_detection(&mut r, "", &decode(value)?),
        "ClientTLSSettings" => dr::validate_client_tls(&mut r, "", "", &decode(value)?),
        "AccessLogging_Filter" => {
            let f: AccessLoggingFilter = decode(value)?;
            super::telemetry::validate_filter(&mut r, "", &f);
        }
        "ExportTo" => {
            let ns = value
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let list: Vec<String> = decode(
                value
                    .get("exportTo")
                    .cloned()
                    .unwrap_or(Value::Array(vec![])),
            )?;
            let flag = |k: &str| value.get(k).and_then(Value::as_bool).unwrap_or(false);
            for e in common::validate_export_to(
                ns,
                &list,
                flag("isServiceEntry"),
                flag("isDestinationRuleWithSelector"),
            ) {
                r.error("exportTo", e);
            }
        }
        other => return Err(format!("unknown fragment kind {other:?}")),
    }
    Ok(r.into_findings())
}
