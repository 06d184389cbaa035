//! `x-forwarded-client-cert` (XFCC), as Envoy's connection manager handles it: on a
//! connection without a client certificate the header is removed (unless
//! `ALWAYS_FORWARD_ONLY`); with one, `APPEND_FORWARD` appends and `SANITIZE_SET` sets an
//! element `By=<our URI SAN>;Hash=<sha256 of the peer certificate>` followed by the details
//! `set_current_client_cert_details` asks for (`Subject="..."`, `URI=...`, `DNS=...`).
//! Istio's inbound sidecars append, so the application sees who called it. A pure function
//! of the settings, the connection's peer and the incoming header.

use crate::tls::server::Peer;

/// `forward_client_cert_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Sanitize,
    ForwardOnly,
    AppendForward,
    SanitizeSet,
    AlwaysForwardOnly,
}

/// The connection manager's XFCC settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Xfcc {
    pub mode: Mode,
    /// `set_current_client_cert_details`.
    pub subject: bool,
    pub uri: bool,
    pub dns: bool,
}

/// The header value the request goes on with; `None` removes it.
pub fn header(x: &Xfcc, peer: Option<&Peer>, incoming: Option<&str>) -> Option<String> {
    let Some(cert) = peer.and_then(|p| p.client_cert.as_ref()) else {
        return match x.mode {
            Mode::AlwaysForwardOnly => incoming.map(str::to_string),
            _ => None,
        };
    };
    let mut element: Vec<String> = cert.local_uris.iter().map(|u| format!("By={u}")).collect();
    element.push(format!("Hash={}", cert.hash));
    if x.subject {
        element.push(format!("Subject=\"{}\"", cert.subject));
    }
    if x.uri {
        if cert.sans.uris.is_empty() {
            element.push("URI=".into());
        }
        element.extend(cert.sans.uris.iter().map(|u| format!("URI={u}")));
    }
    if x.dns {
        element.extend(cert.sans.dns.iter().map(|d| format!("DNS={d}")));
    }
    let element = element.join(";");
    match (x.mode, incoming) {
        (Mode::Sanitize, _) => None,
        (Mode::ForwardOnly | Mode::AlwaysForwardOnly, incoming) => incoming.map(str::to_string),
        (Mode::AppendForward, Some(before)) => Some(format!("{before},{element}")),
        (Mode::AppendForward | Mode::SanitizeSet, _) => Some(element),
    }
}

/// Applies [`header`] to a request's headers.
pub fn apply(x: &Xfcc, peer: Option<&Peer>, headers: &mut hyper::HeaderMap) {
    const NAME: &str = "x-forwarded-client-cert";
    let incoming = headers.get(NAME).and_then(|v| v.to_str().ok());
    match header(x, peer, incoming) {
        None => {
            headers.remove(NAME);
        }
        Some(value) => {
            if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
                headers.insert(NAME, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::config::Sans;
    use crate::tls::server::ClientCert;

    fn istio_inbound() -> Xfcc {
        Xfcc {
            mode: Mode::AppendForward,
            subject: true,
            uri: true,
            dns: true,
        }
    }

    fn peer() -> Peer {
        Peer {
            principal: Some("spiffe://td/ns/a/sa/client".into()),
            server_name: None,
            client_cert: Some(ClientCert {
                hash: "ab12".into(),
                subject: String::new(),
                sans: Sans {
                    uris: vec!["spiffe://td/ns/a/sa/client".into()],
                    dns: vec![],
                },
                local_uris: vec!["spiffe://td/ns/b/sa/server".into()],
            }),
            version: Some("TLSv1.3"),
        }
    }

    #[test]
    fn istios_inbound_appends_the_callers_identity() {
        let element =
            "By=spiffe://td/ns/b/sa/server;Hash=ab12;Subject=\"\";URI=spiffe://td/ns/a/sa/client";
        assert_eq!(
            header(&istio_inbound(), Some(&peer()), None).as_deref(),
            Some(element)
        );
        assert_eq!(
            header(&istio_inbound(), Some(&peer()), Some("By=x")),
            Some(format!("By=x,{element}"))
        );
        let set = Xfcc {
            mode: Mode::SanitizeSet,
            ..istio_inbound()
        };
        assert_eq!(
            header(&set, Some(&peer()), Some("By=x")).as_deref(),
            Some(element)
        );
    }

    #[test]
    fn without_a_client_certificate_the_header_goes() {
        for mode in [
            Mode::Sanitize,
            Mode::ForwardOnly,
            Mode::AppendForward,
            Mode::SanitizeSet,
        ] {
            let x = Xfcc {
                mode,
                ..istio_inbound()
            };
            assert_eq!(header(&x, None, Some("By=forged")), None, "{mode:?}");
        }
        let always = Xfcc {
            mode: Mode::AlwaysForwardOnly,
            ..Default::default()
        };
        assert_eq!(header(&always, None, Some("By=x")).as_deref(), Some("By=x"));
        // Sanitize removes it with a certificate too; forward-only keeps it untouched.
        assert_eq!(header(&Xfcc::default(), Some(&peer()), Some("By=x")), None);
        let forward = Xfcc {
            mode: Mode::ForwardOnly,
            ..istio_inbound()
        };
        assert_eq!(
            header(&forward, Some(&peer()), Some("By=x")).as_deref(),
            Some("By=x")
        );
    }
}
