//! Which of a server's inbound traffic came over mutual TLS, as its sidecar counts it:
//! the Trellis proxy by Istio's standard metric (`istio_requests_total` reported by the
//! destination, by `connection_security_policy`, on 15090); a stock Envoy, which has no
//! Istio stats filter, by its inbound listener's TLS handshakes among its connections
//! (`listener.0.0.0.0_15006.ssl.handshake` of `downstream_cx_total`, admin `/stats`).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::netns;
use crate::sidecar::{ADMIN_PORT, ProxyKind};

/// Istio's proxy metrics port (the Trellis proxy's `/stats/prometheus`).
pub const PROMETHEUS_PORT: u16 = 15090;

/// What a server's sidecar counted of its inbound traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inbound {
    /// Requests (Trellis proxy) or connections (Envoy) over mutual TLS.
    pub mutual_tls: u64,
    pub total: u64,
    /// Requests or connections.
    pub unit: &'static str,
}

impl std::fmt::Display for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} inbound {} mTLS",
            self.mutual_tls, self.total, self.unit
        )
    }
}

/// Reads the inbound counts of the `kind` sidecar in `netns`, whose pod address is `ip`
/// (the Trellis proxy serves its metrics there; Envoy's admin is on loopback).
pub fn read(netns: &str, ip: Ipv4Addr, kind: ProxyKind) -> Result<Inbound, String> {
    let (address, path) = match kind {
        ProxyKind::Trellis => (SocketAddr::from((ip, PROMETHEUS_PORT)), "/stats/prometheus"),
        ProxyKind::Envoy => (
            SocketAddr::from((Ipv4Addr::LOCALHOST, ADMIN_PORT)),
            "/stats?filter=listener.0.0.0.0_15006.",
        ),
    };
    let reply = netns::request_in(netns, "GET", address, path, &[], Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    if reply.status != 200 {
        return Err(format!("{path}: HTTP {}", reply.status));
    }
    Ok(match kind {
        ProxyKind::Trellis => from_prometheus(&reply.body),
        ProxyKind::Envoy => from_envoy_stats(&reply.body),
    })
}

/// `istio_requests_total` reported by the destination, summed; those with
/// `connection_security_policy="mutual_tls"` apart.
pub fn from_prometheus(text: &str) -> Inbound {
    let mut inbound = Inbound {
        mutual_tls: 0,
        total: 0,
        unit: "requests",
    };
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("istio_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        if !labels.contains("reporter=\"destination\"") {
            continue;
        }
        let Ok(n) = value.trim().parse::<f64>() else {
            continue;
        };
        // Counters are whole numbers written as floats.
        let n = n as u64;
        inbound.total += n;
        if labels.contains("connection_security_policy=\"mutual_tls\"") {
            inbound.mutual_tls += n;
        }
    }
    inbound
}

/// The inbound listener's `ssl.handshake` and `downstream_cx_total` from Envoy's `/stats`.
pub fn from_envoy_stats(text: &str) -> Inbound {
    let counter = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("listener.0.0.0.0_15006.{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Inbound {
        mutual_tls: counter("ssl.handshake"),
        total: counter("downstream_cx_total"),
        unit: "connections",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trellis_proxy_counts_requests_by_their_security_policy() {
        let text = "# TYPE istio_requests_total counter\n\
            istio_requests_total{reporter=\"destination\",source_workload=\"productpage-v1\",connection_security_policy=\"mutual_tls\",response_code=\"200\"} 12\n\
            istio_requests_total{reporter=\"destination\",source_workload=\"unknown\",connection_security_policy=\"none\",response_code=\"200\"} 3\n\
            istio_requests_total{reporter=\"source\",connection_security_policy=\"unknown\",response_code=\"200\"} 40\n\
            istio_request_duration_milliseconds_sum{reporter=\"destination\"} 99\n";
        let inbound = from_prometheus(text);
        assert_eq!((inbound.mutual_tls, inbound.total), (12, 15));
        assert_eq!(inbound.to_string(), "12 of 15 inbound requests mTLS");
    }

    #[test]
    fn envoy_counts_tls_handshakes_among_inbound_connections() {
        let text = "listener.0.0.0.0_15006.downstream_cx_active: 1\n\
            listener.0.0.0.0_15006.downstream_cx_total: 9\n\
            listener.0.0.0.0_15006.ssl.handshake: 7\n\
            listener.0.0.0.0_15006.ssl.connection_error: 2\n";
        let inbound = from_envoy_stats(text);
        assert_eq!((inbound.mutual_tls, inbound.total), (7, 9));
        assert_eq!(from_envoy_stats("").total, 0);
    }
}
