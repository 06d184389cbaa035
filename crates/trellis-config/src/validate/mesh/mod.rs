//! MeshConfig (the mesh-wide settings) and the ProxyConfig defaults it carries, by Istio's
//! agent validation rules: ports, timeouts, proxy addresses, tracing collectors, locality
//! load balancing, service settings, trust domains, TLS defaults, the default traffic and
//! retry policies, extension providers, access-log formats, and meshNetworks.
//!
//! Istio validates a mesh config after laying it over its defaults, so an unset field is
//! valid here when Istio's default for it is ([`proxy_config_with_defaults`] gives the
//! ProxyConfig defaults). The pieces are public on their own too (`validate_trust_domain`,
//! `validate_proxy_address`...), for tools and for the compatibility suite, whose upstream
//! table tests them one by one. Sub-messages shared with the networking API (locality
//! settings, retries, TLS, connection pools) are checked by the same functions that check
//! DestinationRules and VirtualServices.

mod networks;
mod policies;
mod providers;
mod proxy;

pub use networks::{MeshNetworks, validate_mesh_networks};
pub use policies::validate_trust_domain;
use policies::{
    check_default_inbound_retry_policy, check_default_traffic_policy, check_ecdh_curves,
    check_locality_lb, check_service_settings_hosts, check_zone_aware_lb,
};
pub use providers::validate_extension_provider_service;
use providers::{check_extension_providers, check_provider_endpoint};
use proxy::{check_connection_settings, check_proxy_config};
pub use proxy::{
    proxy_config_with_defaults, validate_connect_timeout, validate_control_plane_auth_policy,
    validate_proxy_address, validate_proxy_config,
};

use trellis_api::istio::mesh::{MeshConfig, MeshConfigExtensionProvider};

use super::access_log::{check_mesh_access_log, check_provider_formats};
use super::common::validate_port;
use super::report::idx;
use super::{Finding, Report, destination_rule as dr};

/// Validates a MeshConfig by Istio's rules, its unset fields taking Istio's defaults.
pub fn validate_mesh_config(mesh: &MeshConfig) -> Vec<Finding> {
    let mut r = Report::default();
    if mesh.proxy_listen_port != 0
        && let Err(e) = validate_port(i64::from(mesh.proxy_listen_port))
    {
        r.error("proxyListenPort", format!("invalid proxy listen port: {e}"));
    }
    if let Some(t) = &mesh.connect_timeout
        && let Err(e) = validate_connect_timeout(t)
    {
        r.error("connectTimeout", format!("invalid connect timeout: {e}"));
    }
    if let Some(t) = &mesh.protocol_detection_timeout
        && t.as_nanos() != 0
        && t.as_nanos() % 1_000_000 != 0
    {
        r.error(
            "protocolDetectionTimeout",
            "invalid protocol detection timeout: only durations to ms precision are supported",
        );
    }
    let proxy = proxy_config_with_defaults(mesh.default_config.clone().unwrap_or_default());
    check_proxy_config(&mut r, "defaultConfig", &proxy);
    if let Some(lb) = &mesh.locality_lb_setting {
        check_locality_lb(&mut r, "localityLbSetting", lb, true);
    }
    if let Some(lb) = &mesh.zone_aware_lb_setting {
        check_zone_aware_lb(&mut r, "zoneAwareLbSetting", lb, true);
    }
    for (i, s) in mesh.service_settings.iter().enumerate() {
        let path = idx("", "serviceSettings", i);
        check_service_settings_hosts(&mut r, &path, &s.hosts);
    }
    if !mesh.trust_domain.is_empty() {
        r.check("trustDomain", validate_trust_domain(&mesh.trust_domain));
    }
    for (i, alias) in mesh.trust_domain_aliases.iter().enumerate() {
        r.check(
            &idx("", "trustDomainAliases", i),
            validate_trust_domain(alias),
        );
    }
    if mesh
        .mesh_m_tls
        .as_ref()
        .is_some_and(|t| !t.ecdh_curves.is_empty())
    {
        r.error(
            "meshMTLS.ecdhCurves",
            "mesh TLS does not support ECDH curves configuration",
        );
    }
    if let Some(t) = &mesh.tls_defaults {
        check_ecdh_curves(&mut r, "tlsDefaults.ecdhCurves", &t.ecdh_curves);
    }
    if let Some(p) = &mesh.default_traffic_policy {
        check_default_traffic_policy(&mut r, "defaultTrafficPolicy", p);
    }
    check_mesh_access_log(&mut r, mesh);
    check_provider_formats(&mut r, mesh);
    // Istio only logs invalid extension providers ("can be ignored if the given extension
    // provider is not used"); they are warnings here.
    let mut providers = Report::default();
    check_extension_providers(
        &mut providers,
        "extensionProviders",
        &mesh.extension_providers,
    );
    for f in providers.into_findings() {
        r.warn(&f.path, f.message);
    }
    r.into_findings()
}

/// The mesh-config message names [`validate_mesh_fragment`] accepts.
pub const MESH_FRAGMENT_KINDS: &[&str] = &[
    "ProxyConfig",
    "ProxyConfig_ConnectionSettings",
    "MeshConfig_DefaultTrafficPolicy",
    "DefaultInboundHTTPRetryPolicy",
    "LocalityLoadBalancerSetting",
    "ZoneAwareLoadBalancerSetting",
    "Localities",
    "ServiceSettingsHosts",
    "MeshNetworks",
    "ClientTLSSettings",
    "MeshConfig_ExtensionProvider",
    "MeshConfig_ExtensionProvider_ZipkinTracingProvider",
    "MeshConfig_ExtensionProvider_LightstepTracingProvider",
    "MeshConfig_ExtensionProvider_DatadogTracingProvider",
    "MeshConfig_ExtensionProvider_OpenCensusAgentTracingProvider",
    "MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider",
    "MeshConfig_ExtensionProvider_EnvoyOpenTelemetryLogProvider",
    "MeshConfig_ExtensionProvider_EnvoyHttpGrpcV3LogProvider",
    "MeshConfig_ExtensionProvider_EnvoyTcpGrpcV3LogProvider",
];

fn decode<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Decodes `value` as the mesh-config message `kind` (Istio's Go type name) and validates
/// it as [`validate_mesh_config`] validates that part of a mesh config. Three kinds are not
/// messages: `Localities` is a list of locality names, `ServiceSettingsHosts` the hosts of a
/// `serviceSettings` entry, and `DefaultInboundHTTPRetryPolicy` an HTTPRetry used as the
/// mesh's default inbound retry policy. A ProxyConfig is validated as given (no defaults).
/// `has_outlier` tells the locality settings whether outlier detection accompanies them
/// (the mesh always counts as having it).
pub fn validate_mesh_fragment(
    kind: &str,
    value: serde_json::Value,
    has_outlier: bool,
) -> Result<Vec<Finding>, String> {
    use trellis_api::istio::mesh as m;
    let mut r = Report::default();
    match kind {
        "ProxyConfig" => check_proxy_config(&mut r, "", &decode(value)?),
        "ProxyConfig_ConnectionSettings" => {
            check_connection_settings(&mut r, "", &decode(value)?);
        }
        "MeshConfig_DefaultTrafficPolicy" => {
            check_default_traffic_policy(&mut r, "", &decode(value)?);
        }
        "DefaultInboundHTTPRetryPolicy" => {
            check_default_inbound_retry_policy(&mut r, "", &decode(value)?);
        }
        "LocalityLoadBalancerSetting" => {
            check_locality_lb(&mut r, "", &decode(value)?, has_outlier);
        }
        "ZoneAwareLoadBalancerSetting" => {
            check_zone_aware_lb(&mut r, "", &decode(value)?, has_outlier);
        }
        "Localities" => {
            let list: Vec<String> = decode(value)?;
            r.check("", dr::validate_localities(&list));
        }
        "ServiceSettingsHosts" => {
            let hosts: Vec<String> = decode(value)?;
            check_service_settings_hosts(&mut r, "", &hosts);
        }
        "MeshNetworks" => return Ok(validate_mesh_networks(&decode(value)?)),
        "ClientTLSSettings" => dr::validate_client_tls(&mut r, "", "", &decode(value)?),
        "MeshConfig_ExtensionProvider" => {
            let p: MeshConfigExtensionProvider = decode(value)?;
            check_extension_providers(&mut r, "", std::slice::from_ref(&p));
        }
        "MeshConfig_ExtensionProvider_LightstepTracingProvider" => {
            let p: m::MeshConfigExtensionProviderLightstepTracingProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
            if p.access_token.is_empty() {
                r.error("accessToken", "access token is required");
            }
        }
        "MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider" => {
            let p: m::MeshConfigExtensionProviderOpenTelemetryTracingProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
            if p.grpc.is_some() && p.http.is_some() {
                r.error(
                    "",
                    "OpenTelemetryTracingProvider cannot specify both grpc and http",
                );
            }
        }
        "MeshConfig_ExtensionProvider_ZipkinTracingProvider" => {
            let p: m::MeshConfigExtensionProviderZipkinTracingProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
        }
        "MeshConfig_ExtensionProvider_DatadogTracingProvider" => {
            let p: m::MeshConfigExtensionProviderDatadogTracingProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
        }
        "MeshConfig_ExtensionProvider_OpenCensusAgentTracingProvider" => {
            let p: m::MeshConfigExtensionProviderOpenCensusAgentTracingProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
        }
        "MeshConfig_ExtensionProvider_EnvoyOpenTelemetryLogProvider" => {
            let p: m::MeshConfigExtensionProviderEnvoyOpenTelemetryLogProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
        }
        "MeshConfig_ExtensionProvider_EnvoyHttpGrpcV3LogProvider" => {
            let p: m::MeshConfigExtensionProviderEnvoyHttpGrpcV3LogProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
        }
        "MeshConfig_ExtensionProvider_EnvoyTcpGrpcV3LogProvider" => {
            let p: m::MeshConfigExtensionProviderEnvoyTcpGrpcV3LogProvider = decode(value)?;
            check_provider_endpoint(&mut r, "", &p.service, p.port);
        }
        other => return Err(format!("unknown mesh config fragment kind {other:?}")),
    }
    Ok(r.into_findings())
}

#[cfg(test)]
mod tests {
    use trellis_api::istio::mesh::ProxyConfig;

    use super::*;

    #[test]
    fn proxy_addresses() {
        assert!(validate_proxy_address("istiod.istio-system.svc:15012").is_ok());
        assert!(validate_proxy_address("[2001:db8::1]:80").is_ok());
        assert!(validate_proxy_address("10.0.0.1:0").is_err());
        assert!(validate_proxy_address("no-port").is_err());
        assert!(validate_proxy_address("bad_host!:80").is_err());
    }

    #[test]
    fn defaults_make_an_empty_proxy_config_valid() {
        assert!(!validate_proxy_config(&ProxyConfig::default()).is_empty());
        let filled = proxy_config_with_defaults(ProxyConfig::default());
        assert!(validate_proxy_config(&filled).is_empty());
        assert!(validate_mesh_config(&MeshConfig::default()).is_empty());
    }

    #[test]
    fn trust_domains() {
        assert!(validate_trust_domain("cluster.local").is_ok());
        assert!(validate_trust_domain("istio.io.").is_ok());
        assert!(validate_trust_domain("").is_err());
        assert!(validate_trust_domain("a..b").is_err());
    }
}
