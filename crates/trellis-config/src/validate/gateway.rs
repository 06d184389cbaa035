//! Gateway: servers (hosts as `namespace/host`, port, bind) and their server-side TLS.
//!
//! The server TLS check is shared with Sidecar ingress listeners.

use trellis_api::ObjectMeta;
use trellis_api::istio::networking::{
    Gateway, Port, Server, ServerTlsSettings, ServerTlsSettingsTlsMode as Mode,
    ServerTlsSettingsTlsProtocol,
};

use super::Report;
use super::common::{self, Protocol, UNIX_ADDRESS_PREFIX};
use super::report::{at, idx};

pub(crate) fn validate_gateway(r: &mut Report, meta: &ObjectMeta, gw: &Gateway) {
    let gateway_semantics = meta
        .annotations
        .get("internal.istio.io/gateway-semantics")
        .is_some_and(|v| v == "gateway");
    if !common::is_dns1123_label(&meta.name) && !gateway_semantics {
        r.error(
            "metadata.name",
            format!("invalid gateway name: {:?}", meta.name),
        );
    }
    if gw.servers.is_empty() {
        r.error("spec.servers", "gateway must have at least one server");
    }
    let mut port_names: Vec<&str> = Vec::new();
    for (i, server) in gw.servers.iter().enumerate() {
        let p = idx("spec", "servers", i);
        validate_server(r, &p, server, gateway_semantics);
        if let Some(port) = &server.port {
            if port_names.contains(&port.name.as_str()) {
                r.error(
                    &at(&p, "port.name"),
                    format!(
                        "port names in servers must be unique: duplicate name {}",
                        port.name
                    ),
                );
            }
            port_names.push(&port.name);
            let https_redirect = server.tls.as_ref().is_some_and(|t| t.https_redirect);
            if !Protocol::parse(&port.protocol).is_http() && https_redirect {
                r.warn(
                    &at(&p, "tls.httpsRedirect"),
                    "tls.httpsRedirect should only be used with http servers",
                );
            }
        }
    }
}

/// One server: hosts, port, bind, TLS, and TLS settings that fit the port's protocol.
pub(crate) fn validate_server(r: &mut Report, path: &str, s: &Server, gateway_semantics: bool) {
    if s.hosts.is_empty() {
        r.error(
            &at(path, "hosts"),
            "server config must contain at least one host",
        );
    }
    for (i, h) in s.hosts.iter().enumerate() {
        for e in common::validate_namespace_slash_host(h, true, gateway_semantics) {
            r.error(&idx(path, "hosts", i), e);
        }
    }
    let before = r.error_count();
    validate_server_port(r, &at(path, "port"), s.port.as_ref(), &s.bind);
    let port_ok = r.error_count() == before;
    validate_server_bind(r, &at(path, "bind"), s.port.as_ref(), &s.bind);
    if let Some(tls) = &s.tls {
        validate_server_tls(r, &at(path, "tls"), tls);
    }
    if let (true, Some(port)) = (port_ok, &s.port) {
        let p = Protocol::parse(&port.protocol);
        match &s.tls {
            None if p.is_tls() => r.error(
                &at(path, "tls"),
                "server must have TLS settings for HTTPS/TLS protocols",
            ),
            Some(tls) if !p.is_tls() => {
                if p.is_http() {
                    // Only an HTTPS redirect makes sense on a plain-text HTTP server.
                    if !is_passthrough(tls)
                        || !tls.ca_certificates.is_empty()
                        || !tls.private_key.is_empty()
                        || !tls.server_certificate.is_empty()
                    {
                        r.error(
                            &at(path, "tls"),
                            "server cannot have TLS settings for plain text HTTP ports",
                        );
                    }
                } else {
                    r.error(
                        &at(path, "tls"),
                        "server cannot have TLS settings for non HTTPS/TLS ports",
                    );
                }
            }
            _ => {}
        }
    }
}

/// Istio's "passthrough" server on an HTTP port: TLS only to redirect (or PASSTHROUGH mode).
fn is_passthrough(tls: &ServerTlsSettings) -> bool {
    matches!(tls.mode, Mode::Passthrough | Mode::AutoPassthrough)
}

pub(crate) fn validate_server_port(r: &mut Report, path: &str, port: Option<&Port>, bind: &str) {
    let Some(port) = port else {
        r.error(path, "port is required");
        return;
    };
    if Protocol::parse(&port.protocol) == Protocol::Unsupported {
        r.error(
            &at(path, "protocol"),
            format!(
                "invalid protocol {:?}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
                port.protocol
            ),
        );
    }
    if port.number > 0 || !bind.starts_with(UNIX_ADDRESS_PREFIX) {
        r.check(
            &at(path, "number"),
            common::validate_port(i64::from(port.number)),
        );
    }
    if port.target_port > 0 {
        r.error(
            &at(path, "targetPort"),
            "targetPort has no impact on Gateways",
        );
    }
    if port.name.is_empty() {
        r.error(&at(path, "name"), "port name must be set");
    }
}

fn validate_server_bind(r: &mut Report, path: &str, port: Option<&Port>, bind: &str) {
    if let Some(uds) = bind.strip_prefix(UNIX_ADDRESS_PREFIX) {
        r.check(path, common::validate_unix_address(uds));
        if port.is_some_and(|p| p.number != 0) {
            r.error(path, "port number must be 0 for unix domain socket");
        }
    } else if !bind.is_empty() {
        r.check(path, common::validate_ip_address(bind));
    }
}

const CIPHER_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

/// A cipher suite Envoy (BoringSSL) knows; expressions starting with an operator pass.
fn is_valid_cipher(cs: &str) -> bool {
    match cs.chars().next() {
        None => true,
        Some(_) if cs == "ALL" => true,
        Some(c) if !c.is_alphanumeric() => true,
        Some(_) => CIPHER_SUITES.contains(&cs),
    }
}

/// Server-side TLS: where the certificates come from, per mode.
pub(crate) fn validate_server_tls(r: &mut Report, path: &str, tls: &ServerTlsSettings) {
    use ServerTlsSettingsTlsProtocol as P;
    if matches!(tls.min_protocol_version, P::Tlsv10 | P::Tlsv11) && tls.cipher_suites.is_empty() {
        r.warn(
            path,
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.",
        );
    }
    let mut invalid: Vec<&str> = Vec::new();
    let mut valid: Vec<&str> = Vec::new();
    let mut dup: Vec<&str> = Vec::new();
    for cs in &tls.cipher_suites {
        if !is_valid_cipher(cs) {
            invalid.push(cs);
        } else if valid.contains(&cs.as_str()) {
            dup.push(cs);
        } else {
            valid.push(cs);
        }
    }
    if !invalid.is_empty() {
        invalid.sort_unstable();
        r.warn(
            &at(path, "cipherSuites"),
            format!("ignoring invalid cipher suites: {invalid:?}"),
        );
    }
    if !dup.is_empty() {
        dup.sort_unstable();
        r.warn(
            &at(path, "cipherSuites"),
            format!("ignoring duplicate cipher suites: {dup:?}"),
        );
    }
    if tls.mode == Mode::IstioMutual {
        for (set, what) in [
            (!tls.server_certificate.is_empty(), "server certificate"),
            (!tls.private_key.is_empty(), "private key"),
            (!tls.ca_certificates.is_empty(), "CA bundle"),
            (!tls.tls_certificates.is_empty(), "tlsCertificates"),
            (!tls.credential_name.is_empty(), "credentialName"),
            (!tls.credential_names.is_empty(), "credentialNames"),
        ] {
            if set {
                r.error(
                    path,
                    format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
                );
            }
        }
        return;
    }
    let any_cert = !tls.ca_crl.is_empty()
        || !tls.server_certificate.is_empty()
        || !tls.private_key.is_empty()
        || !tls.ca_certificates.is_empty()
        || !tls.tls_certificates.is_empty()
        || !tls.credential_name.is_empty()
        || !tls.credential_names.is_empty();
    if matches!(tls.mode, Mode::Passthrough | Mode::AutoPassthrough) && any_cert {
        r.warn(
            path,
            format!(
                "{} mode does not use certificates, they will be ignored",
                tls.mode.as_str()
            ),
        );
    }
    let sources = [
        !tls.server_certificate.is_empty() && !tls.private_key.is_empty(),
        !tls.credential_name.is_empty(),
        !tls.credential_names.is_empty(),
        !tls.tls_certificates.is_empty(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if sources > 1 {
        r.error(
            path,
            "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified",
        );
    }
    let terminating = matches!(tls.mode, Mode::Simple | Mode::Mutual | Mode::OptionalMutual);
    if terminating && (!tls.credential_name.is_empty() || !tls.credential_names.is_empty()) {
        // Credentials are fetched remotely; no certificate file is required here.
        return;
    }
    if terminating {
        let prefix = if tls.mode == Mode::Simple {
            "SIMPLE TLS"
        } else {
            "MUTUAL TLS"
        };
        if prefix == "MUTUAL TLS" && tls.ca_certificates.is_empty() {
            r.error(path, format!("{prefix} requires a client CA bundle"));
        }
        if tls.tls_certificates.len() > 2 {
            r.warn(
                path,
                format!("{prefix} can support up to 2 server certificates"),
            );
        }
        let certs: Vec<(&str, &str)> = if tls.tls_certificates.is_empty() {
            vec![(&tls.server_certificate, &tls.private_key)]
        } else {
            tls.tls_certificates
                .iter()
                .map(|c| (c.server_certificate.as_str(), c.private_key.as_str()))
                .collect()
        };
        for (cert, key) in certs {
            if cert.is_empty() {
                r.error(path, format!("{prefix} requires a server certificate"));
            }
            if key.is_empty() {
                r.error(path, format!("{prefix} requires a private key"));
            }
        }
    }
    if !tls.ca_crl.is_empty() {
        if !tls.credential_name.is_empty() {
            r.error(
                path,
                "CRL is not supported with credentialName. CRL has to be specified in the credential",
            );
        }
        if tls.mode == Mode::Simple {
            r.error(path, "CRL is not supported with SIMPLE TLS");
        }
    }
}
