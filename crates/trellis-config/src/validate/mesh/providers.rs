//! Extension providers (tracing, access logging, metrics, external authorization):
//! service names, ports and the settings of each kind.

use trellis_api::istio::mesh::MeshConfigExtensionProvider;

use crate::validate::Report;
use crate::validate::common::{self, validate_fqdn, validate_port};
use crate::validate::report::at;

/// The service of an extension provider: a domain name or IP address, or
/// `namespace/hostname`.
pub fn validate_extension_provider_service(service: &str) -> Result<(), String> {
    if service.is_empty() {
        return Err("service must not be empty".to_string());
    }
    if !service.contains('/') {
        if validate_fqdn(service).is_err() && !common::is_ip(service) {
            return Err(format!(
                "invalid service fmt {service}: {service} is not a valid IP"
            ));
        }
        return Ok(());
    }
    let errs = common::validate_namespace_slash_host(service, false, false);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// A provider reached at `service:port`.
pub(crate) fn check_provider_endpoint(r: &mut Report, path: &str, service: &str, port: u32) {
    r.check(
        &at(path, "service"),
        validate_extension_provider_service(service),
    );
    if let Err(e) = validate_port(i64::from(port)) {
        r.error(&at(path, "port"), format!("invalid service port: {e}"));
    }
}

/// Extension providers: named uniquely, each provider's endpoint valid.
pub(crate) fn check_extension_providers(
    r: &mut Report,
    path: &str,
    providers: &[MeshConfigExtensionProvider],
) {
    let mut names = std::collections::BTreeSet::new();
    for (i, p) in providers.iter().enumerate() {
        let ppath = format!("{path}[{i}]");
        if p.name.is_empty() {
            r.error(&ppath, "empty extension provider name");
        } else if !names.insert(p.name.as_str()) {
            r.error(
                &ppath,
                format!("duplicate extension provider name {}", p.name),
            );
        }
        check_extension_provider(r, &ppath, p);
    }
}

pub(super) fn check_extension_provider(
    r: &mut Report,
    path: &str,
    p: &MeshConfigExtensionProvider,
) {
    if let Some(x) = &p.envoy_ext_authz_http {
        r.check(
            &at(path, "envoyExtAuthzHttp.port"),
            validate_port(i64::from(x.port)),
        );
        r.check(
            &at(path, "envoyExtAuthzHttp.service"),
            validate_extension_provider_service(&x.service),
        );
        if !x.path_prefix.is_empty() && !x.path_prefix.starts_with('/') {
            r.error(
                &at(path, "envoyExtAuthzHttp.pathPrefix"),
                format!(
                    "pathPrefix should begin with `/` but found {:?}",
                    x.path_prefix
                ),
            );
        }
    }
    if let Some(x) = &p.envoy_ext_authz_grpc {
        check_provider_endpoint(r, &at(path, "envoyExtAuthzGrpc"), &x.service, x.port);
    }
    if let Some(x) = &p.zipkin {
        check_provider_endpoint(r, &at(path, "zipkin"), &x.service, x.port);
    }
    if let Some(x) = &p.lightstep {
        check_provider_endpoint(r, &at(path, "lightstep"), &x.service, x.port);
        if x.access_token.is_empty() {
            r.error(
                &at(path, "lightstep.accessToken"),
                "access token is required",
            );
        }
    }
    if let Some(x) = &p.datadog {
        check_provider_endpoint(r, &at(path, "datadog"), &x.service, x.port);
    }
    if let Some(x) = &p.opencensus {
        check_provider_endpoint(r, &at(path, "opencensus"), &x.service, x.port);
    }
    if let Some(x) = &p.skywalking {
        check_provider_endpoint(r, &at(path, "skywalking"), &x.service, x.port);
    }
    if let Some(x) = &p.opentelemetry {
        check_provider_endpoint(r, &at(path, "opentelemetry"), &x.service, x.port);
        if x.grpc.is_some() && x.http.is_some() {
            r.error(
                &at(path, "opentelemetry"),
                "OpenTelemetryTracingProvider cannot specify both grpc and http",
            );
        }
    }
    if let Some(x) = &p.envoy_otel_als {
        check_provider_endpoint(r, &at(path, "envoyOtelAls"), &x.service, x.port);
    }
    if let Some(x) = &p.envoy_http_als {
        check_provider_endpoint(r, &at(path, "envoyHttpAls"), &x.service, x.port);
    }
    if let Some(x) = &p.envoy_tcp_als {
        check_provider_endpoint(r, &at(path, "envoyTcpAls"), &x.service, x.port);
    }
}
