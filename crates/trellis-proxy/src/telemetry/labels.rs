//! The label set of Istio's standard metrics, as a pure function of who reported, the two
//! workloads, the destination service and the outcome. Names, order and defaults are those
//! Istio's stats filter emits (`unknown` for what is not known, `latest` for a missing
//! canonical revision, an empty `grpc_response_status` for non-gRPC requests).

use std::fmt::Write as _;

use super::peer::{Peer, UNKNOWN};

/// Which side of the request the proxy is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reporter {
    /// The client's sidecar (outbound listeners, gateways).
    Source,
    /// The server's sidecar (inbound listeners).
    Destination,
}

impl Reporter {
    pub fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    Grpc,
    Tcp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
            Protocol::Tcp => "tcp",
        }
    }
}

/// `connection_security_policy`: what the reporter knows of the connection's TLS. The
/// client side always reports `unknown`; the server side `none` or `mutual_tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Security {
    Unknown,
    None,
    MutualTls,
}

impl Security {
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Unknown => UNKNOWN,
            Security::None => "none",
            Security::MutualTls => "mutual_tls",
        }
    }

    /// What a reporter says of a connection: only the server side knows.
    pub fn reported(reporter: Reporter, mutual_tls: bool) -> Security {
        match (reporter, mutual_tls) {
            (Reporter::Source, _) => Security::Unknown,
            (Reporter::Destination, true) => Security::MutualTls,
            (Reporter::Destination, false) => Security::None,
        }
    }
}

/// The destination service: `destination_service`, `_name` and `_namespace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub host: String,
    pub name: String,
    /// Empty when only the destination workload could tell (then its namespace is used).
    pub namespace: String,
}

impl Service {
    /// A host name `name.namespace.svc.<domain>` names its service and namespace; any
    /// other host is its own name.
    pub fn from_host(host: &str) -> Service {
        let mut parts = host.split('.');
        let first = parts.next().unwrap_or_default();
        let is_ip = host.parse::<std::net::IpAddr>().is_ok();
        let (name, namespace) = match (parts.next(), parts.next()) {
            _ if is_ip => (host, ""),
            (Some(ns), Some("svc")) => (first, ns),
            _ => (first, ""),
        };
        Service {
            host: host.to_string(),
            name: name.to_string(),
            namespace: namespace.to_string(),
        }
    }
}

/// The destination service's host, borrowed from the upstream cluster's name
/// (`outbound|port|subset|host`), else from the request's authority (Istio's host-header
/// fallback, port removed).
pub fn host<'a>(cluster: &'a str, authority: &'a str) -> &'a str {
    let mut parts = cluster.split('|');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("outbound"), Some(_), Some(_), Some(h), None) if !h.is_empty() => h,
        _ => strip_port(authority),
    }
}

/// `host:port`, `[v6]:port`, `[v6]`, a bare v6 address or a name → the host alone.
fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.split_once(':') {
        Some((h, p)) if !p.contains(':') => h,
        _ => authority,
    }
}

/// Everything a label set is made of.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub reporter: Reporter,
    pub source: &'a Peer,
    pub source_principal: &'a str,
    pub destination: &'a Peer,
    pub destination_principal: &'a str,
    pub service: &'a Service,
    pub protocol: Protocol,
    /// `None` for TCP (its metrics have no response code labels).
    pub response_code: Option<u16>,
    pub grpc_status: Option<&'a str>,
    pub flags: &'a str,
    pub security: Security,
}

/// The rendered label set, `{reporter="source",...}` in Istio's order, escaped for the
/// Prometheus text format.
pub fn render(i: &Inputs<'_>) -> String {
    let (s, d) = (i.source, i.destination);
    let namespace = if !i.service.namespace.is_empty() {
        i.service.namespace.as_str()
    } else {
        d.namespace.as_str()
    };
    let mut pairs: Vec<(&str, &str)> = vec![
        ("reporter", i.reporter.as_str()),
        ("source_workload", &s.workload),
        ("source_canonical_service", &s.canonical_service),
        ("source_canonical_revision", revision(s)),
        ("source_workload_namespace", &s.namespace),
        ("source_principal", i.source_principal),
        ("source_app", &s.app),
        ("source_version", &s.version),
        ("source_cluster", &s.cluster),
        ("destination_workload", &d.workload),
        ("destination_workload_namespace", &d.namespace),
        ("destination_principal", i.destination_principal),
        ("destination_app", &d.app),
        ("destination_version", &d.version),
        ("destination_service", &i.service.host),
        ("destination_canonical_service", &d.canonical_service),
        ("destination_canonical_revision", revision(d)),
        ("destination_service_name", &i.service.name),
        ("destination_service_namespace", namespace),
        ("destination_cluster", &d.cluster),
        ("request_protocol", i.protocol.as_str()),
    ];
    let code;
    if let Some(c) = i.response_code {
        code = c.to_string();
        pairs.push(("response_code", &code));
    }
    let mut out = String::with_capacity(1024);
    out.push('{');
    for (k, v) in pairs {
        push(&mut out, k, if v.is_empty() { UNKNOWN } else { v });
    }
    if i.response_code.is_some() {
        push(
            &mut out,
            "grpc_response_status",
            i.grpc_status.unwrap_or_default(),
        );
    }
    push(&mut out, "response_flags", i.flags);
    push(&mut out, "connection_security_policy", i.security.as_str());
    out.pop();
    out.push('}');
    out
}

/// An unknown workload's revision is `latest` (Istio's default), a known one's its own.
fn revision(p: &Peer) -> &str {
    if p.canonical_revision.is_empty() {
        "latest"
    } else {
        &p.canonical_revision
    }
}

fn push(out: &mut String, key: &str, value: &str) {
    let _ = write!(out, "{key}=\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push_str("\",");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derive(cluster: &str, authority: &str) -> Service {
        Service::from_host(host(cluster, authority))
    }

    fn peer(workload: &str, ns: &str, app: &str) -> Peer {
        Peer::from_labels(workload, ns, "Kubernetes", |k| match k {
            "app" => Some(app),
            "version" => Some("v1"),
            _ => None,
        })
    }

    #[test]
    fn the_service_comes_from_the_cluster_name_or_the_authority() {
        let s = derive("outbound|9080|v1|reviews.default.svc.cluster.local", "x");
        assert_eq!(
            s,
            Service {
                host: "reviews.default.svc.cluster.local".into(),
                name: "reviews".into(),
                namespace: "default".into()
            }
        );
        let inbound = derive("inbound|9080||", "ratings.prod.svc.cluster.local:9080");
        assert_eq!(
            (inbound.name.as_str(), inbound.namespace.as_str()),
            ("ratings", "prod")
        );
        assert_eq!(inbound.host, "ratings.prod.svc.cluster.local");
        let external = derive("PassthroughCluster", "www.example.com");
        assert_eq!(
            (external.name.as_str(), external.namespace.as_str()),
            ("www", "")
        );
        assert_eq!(derive("", "10.0.0.1:80").name, "10.0.0.1");
        assert_eq!(derive("", "[fd00::1]:80").host, "fd00::1");
        assert_eq!(derive("", "fd00::1").host, "fd00::1");
    }

    #[test]
    fn an_outbound_request_to_a_known_endpoint() {
        let source = peer("productpage-v1", "default", "productpage");
        let destination =
            Peer::from_endpoint_metadata("reviews-v1;default;reviews;v1;Kubernetes").unwrap();
        let service = derive("outbound|9080||reviews.default.svc.cluster.local", "");
        let labels = render(&Inputs {
            reporter: Reporter::Source,
            source: &source,
            source_principal: UNKNOWN,
            destination: &destination,
            destination_principal: UNKNOWN,
            service: &service,
            protocol: Protocol::Http,
            response_code: Some(200),
            grpc_status: None,
            flags: "-",
            security: Security::reported(Reporter::Source, false),
        });
        assert_eq!(
            labels,
            "{reporter=\"source\",source_workload=\"productpage-v1\",\
source_canonical_service=\"productpage\",source_canonical_revision=\"v1\",\
source_workload_namespace=\"default\",source_principal=\"unknown\",source_app=\"productpage\",\
source_version=\"v1\",source_cluster=\"Kubernetes\",destination_workload=\"reviews-v1\",\
destination_workload_namespace=\"default\",destination_principal=\"unknown\",\
destination_app=\"unknown\",destination_version=\"unknown\",\
destination_service=\"reviews.default.svc.cluster.local\",\
destination_canonical_service=\"reviews\",destination_canonical_revision=\"v1\",\
destination_service_name=\"reviews\",destination_service_namespace=\"default\",\
destination_cluster=\"Kubernetes\",request_protocol=\"http\",response_code=\"200\",\
grpc_response_status=\"\",response_flags=\"-\",connection_security_policy=\"unknown\"}"
        );
    }

    #[test]
    fn an_unknown_destination_and_tcp() {
        let source = peer("client", "default", "client");
        let service = derive("outbound|3306||db.example.com", "");
        let labels = render(&Inputs {
            reporter: Reporter::Source,
            source: &source,
            source_principal: UNKNOWN,
            destination: &Peer::default(),
            destination_principal: UNKNOWN,
            service: &service,
            protocol: Protocol::Tcp,
            response_code: None,
            grpc_status: None,
            flags: "UF,URX",
            security: Security::Unknown,
        });
        for expected in [
            "destination_workload=\"unknown\"",
            "destination_canonical_service=\"unknown\"",
            "destination_canonical_revision=\"latest\"",
            "destination_service=\"db.example.com\"",
            "destination_service_name=\"db\"",
            "destination_service_namespace=\"unknown\"",
            "request_protocol=\"tcp\"",
            "response_flags=\"UF,URX\"",
        ] {
            assert!(labels.contains(expected), "{expected} in {labels}");
        }
        assert!(!labels.contains("response_code"), "{labels}");
        assert!(!labels.contains("grpc_response_status"), "{labels}");
    }

    #[test]
    fn the_server_side_reports_the_source_and_its_security() {
        let me = peer("reviews-v1", "default", "reviews");
        let client = peer("productpage-v1", "default", "productpage");
        let service = derive("inbound|9080||", "reviews:9080");
        let labels = render(&Inputs {
            reporter: Reporter::Destination,
            source: &client,
            source_principal: UNKNOWN,
            destination: &me,
            destination_principal: UNKNOWN,
            service: &service,
            protocol: Protocol::Grpc,
            response_code: Some(200),
            grpc_status: Some("14"),
            flags: "-",
            security: Security::reported(Reporter::Destination, false),
        });
        assert!(labels.starts_with("{reporter=\"destination\",source_workload=\"productpage-v1\""));
        assert!(
            labels.contains(
                "destination_service=\"reviews\",destination_canonical_service=\"reviews\""
            )
        );
        assert!(
            labels.contains("destination_service_namespace=\"default\""),
            "{labels}"
        );
        assert!(labels.contains("grpc_response_status=\"14\""));
        assert!(labels.ends_with("connection_security_policy=\"none\"}"));
    }

    #[test]
    fn values_are_escaped() {
        let mut out = String::new();
        push(&mut out, "k", "a\"b\\c\nd");
        assert_eq!(out, "k=\"a\\\"b\\\\c\\nd\",");
    }
}
