//! The application protocol of a port, decided Istio's way: explicit protocol fields first,
//! then `appProtocol`, then the port name's prefix (`http-web`, `grpc`, `tcp-db`).

/// A port's protocol as the mesh treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Http,
    Http2,
    Grpc,
    Https,
    Tls,
    Tcp,
    Mongo,
    Redis,
    Mysql,
    /// Not declared: the proxy sniffs the first bytes (HTTP or opaque TCP).
    Unknown,
}

impl Protocol {
    /// Parses a protocol name as Istio writes it (case-insensitive).
    pub fn parse(name: &str) -> Protocol {
        match name.to_ascii_lowercase().as_str() {
            "http" | "http1" => Protocol::Http,
            "http2" | "h2c" | "kubernetes.io/h2c" => Protocol::Http2,
            "grpc" | "grpc-web" => Protocol::Grpc,
            "https" => Protocol::Https,
            "tls" => Protocol::Tls,
            "tcp" => Protocol::Tcp,
            "mongo" => Protocol::Mongo,
            "redis" => Protocol::Redis,
            "mysql" => Protocol::Mysql,
            _ => Protocol::Unknown,
        }
    }

    /// The protocol of a Kubernetes Service port from its `appProtocol` or name.
    pub fn of_service_port(name: &str, app_protocol: Option<&str>) -> Protocol {
        if let Some(app) = app_protocol {
            let p = Protocol::parse(app);
            if p != Protocol::Unknown {
                return p;
            }
        }
        let prefix = name.split('-').next().unwrap_or_default();
        Protocol::parse(prefix)
    }

    /// True for protocols routed by HTTP route configuration.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }

    /// True when upstream connections should speak HTTP/2.
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_prefix_and_app_protocol() {
        assert_eq!(Protocol::of_service_port("http-web", None), Protocol::Http);
        assert_eq!(Protocol::of_service_port("grpc", None), Protocol::Grpc);
        assert_eq!(
            Protocol::of_service_port("web", Some("http2")),
            Protocol::Http2
        );
        assert_eq!(
            Protocol::of_service_port("metrics", None),
            Protocol::Unknown
        );
        assert_eq!(
            Protocol::of_service_port("tcp-db", Some("weird")),
            Protocol::Tcp
        );
    }
}
