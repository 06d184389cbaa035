//! Authentication and authorization at the edges of the request and connection paths: the
//! HTTP filters `jwt_authn` and `rbac` run in chain order before routing
//! ([`decode_headers`]), the network RBAC filters before the terminal filter
//! ([`admit_connection`]). The decisions are the pure functions of [`crate::jwt::authn`]
//! and [`crate::rbac::matcher`]; this module reads the request, counts with Envoy's names,
//! applies what the JWT filter passes on (headers, dynamic metadata for RBAC) and turns a
//! refusal into Envoy's local reply.
//!
//! The peer's identity comes from mTLS: the verified client certificate's URI SAN of a
//! connection whose chain terminates TLS ([`Downstream::principal`]); plain-text
//! connections are unauthenticated.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Request};
use serde_json::Value;

use crate::Proxy;
use crate::chains::Connection;
use crate::config::{FilterChain, HttpFilter, HttpManager};
use crate::flags::LocalReply;
use crate::http::Downstream;
use crate::jwt::authn::{self, Effects, Verdict};
use crate::jwt::config::JwtAuthn;
use crate::jwt::convert::JWT_AUTHN;
use crate::rbac::config::{Rbac, Rules};
use crate::rbac::matcher::{self, Attributes, Metadata, PeerIdentity};

/// Runs the manager's HTTP filters on a request; `Some` is the reply that ends it.
pub fn decode_headers<B>(
    proxy: &Proxy,
    hcm: &HttpManager,
    downstream: &Downstream,
    req: &mut Request<B>,
) -> Option<LocalReply> {
    if hcm.filters.is_empty() {
        return None;
    }
    let prefix = format!("http.{}.", hcm.stat_prefix);
    let peer = peer_identity(downstream);
    let mut metadata = Metadata::new();
    let method = req.method().as_str().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let authority = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| header(req.headers(), "host"))
        .unwrap_or_default();
    for filter in &hcm.filters {
        match filter {
            HttpFilter::JwtAuthn(cfg) => {
                let uri = format!("http://{authority}{}", path_only(&path));
                if let Err(status) = jwt(
                    proxy,
                    &prefix,
                    cfg,
                    &method,
                    &path,
                    req.headers_mut(),
                    &mut metadata,
                ) {
                    return Some(LocalReply::jwt_denied(status, &uri));
                }
            }
            HttpFilter::Rbac(rbac) => {
                let headers = req.headers();
                let attributes = Attributes {
                    destination: downstream.local,
                    direct_remote: downstream.remote,
                    remote: remote_ip(
                        hcm.use_remote_address,
                        hcm.xff_trusted_hops,
                        headers,
                        downstream.remote.ip(),
                    ),
                    server_name: downstream.server_name().unwrap_or(""),
                    peer: &peer,
                    request: Some(matcher::Request {
                        method: &method,
                        path: &path,
                        authority: &authority,
                        scheme: "http",
                        headers,
                    }),
                    metadata: &metadata,
                };
                if let Err(policy) = enforce(proxy, &prefix, rbac, &attributes) {
                    return Some(LocalReply::rbac_denied(policy.as_deref()));
                }
            }
        }
    }
    None
}

fn peer_identity(downstream: &Downstream) -> PeerIdentity {
    PeerIdentity {
        principal: downstream.principal().map(|p| p.to_string()),
    }
}

/// Runs a chain's network RBAC filters on a new connection; false: close it.
pub fn admit_connection(
    proxy: &Proxy,
    chain: &FilterChain,
    conn: &Connection,
    downstream: &Downstream,
) -> bool {
    let peer = peer_identity(downstream);
    let metadata = Metadata::new();
    let attributes = Attributes {
        destination: conn.destination,
        direct_remote: downstream.remote,
        remote: downstream.remote.ip(),
        server_name: conn.server_name.as_deref().unwrap_or(""),
        peer: &peer,
        request: None,
        metadata: &metadata,
    };
    chain.rbac.iter().all(|rbac| {
        let allowed = enforce(proxy, &rbac.stat_prefix, rbac, &attributes).is_ok();
        if !allowed {
            tracing::debug!(chain = %chain.name, "connection closed by RBAC");
        }
        allowed
    })
}

/// The JWT filter: `Err` is why the request is refused.
fn jwt(
    proxy: &Proxy,
    prefix: &str,
    cfg: &JwtAuthn,
    method: &str,
    path: &str,
    headers: &mut HeaderMap,
    metadata: &mut Metadata,
) -> Result<(), crate::jwt::status::Status> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let request = authn::Request {
        method,
        path,
        headers,
    };
    let stat = |name: &str| proxy.stats.inc(&format!("{prefix}jwt_authn.{name}"));
    match authn::authenticate(cfg, &request, now) {
        Verdict::Bypassed => {
            stat("cors_preflight_bypassed");
            Ok(())
        }
        Verdict::Passed(effects) => {
            stat("allowed");
            apply(effects, headers, metadata);
            Ok(())
        }
        Verdict::Failed(status) => {
            stat("denied");
            tracing::debug!(reason = status.text(), "JWT verification failed");
            Err(status)
        }
    }
}

fn apply(effects: Effects, headers: &mut HeaderMap, metadata: &mut Metadata) {
    let Effects {
        metadata: entries,
        add_headers,
        remove_headers,
    } = effects;
    for name in remove_headers {
        headers.remove(name.as_str());
    }
    for (name, value) in add_headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(n, v);
        }
    }
    let md = metadata.entry(JWT_AUTHN.to_string()).or_default();
    for (key, claims) in entries {
        md.insert(key, Value::Object(claims));
    }
}

/// One RBAC filter: the shadow rules are evaluated and counted, then the enforced rules;
/// `Err` carries the policy that denied (if one matched). Counters are Envoy's:
/// `<prefix>rbac.[<rules_stat_prefix>.](allowed|denied)` and
/// `<prefix>rbac.[<shadow_rules_stat_prefix>.](shadow_allowed|shadow_denied)`.
fn enforce(proxy: &Proxy, prefix: &str, rbac: &Rbac, a: &Attributes) -> Result<(), Option<String>> {
    let base = if prefix.is_empty() || prefix.ends_with('.') {
        format!("{prefix}rbac.")
    } else {
        format!("{prefix}.rbac.")
    };
    if let Some(shadow) = &rbac.shadow_rules {
        let d = matcher::evaluate(shadow, a);
        let outcome = if d.allowed {
            "shadow_allowed"
        } else {
            "shadow_denied"
        };
        proxy
            .stats
            .inc(&join(&base, &rbac.shadow_rules_stat_prefix, outcome));
        log("shadow", shadow, &d);
    }
    let Some(rules) = &rbac.rules else {
        return Ok(());
    };
    let d = matcher::evaluate(rules, a);
    let outcome = if d.allowed { "allowed" } else { "denied" };
    proxy
        .stats
        .inc(&join(&base, &rbac.rules_stat_prefix, outcome));
    log("enforced", rules, &d);
    if d.allowed {
        Ok(())
    } else {
        Err(d.matched_policy)
    }
}

/// Envoy's scoped stat names: `base` + `prefix`, a dot unless there is one, then `name`.
fn join(base: &str, prefix: &str, name: &str) -> String {
    let scope = format!("{base}{prefix}");
    if scope.ends_with('.') {
        format!("{scope}{name}")
    } else {
        format!("{scope}.{name}")
    }
}

fn log(mode: &str, rules: &Rules, d: &matcher::Decision) {
    tracing::debug!(
        mode,
        action = ?rules.action,
        allowed = d.allowed,
        policy = d.matched_policy.as_deref().unwrap_or("none"),
        "rbac"
    );
}

/// The original client's address, as Envoy decides it: with `use_remote_address` (a
/// gateway) the peer, or with `trusted_hops` N > 0 the Nth `x-forwarded-for` entry from the
/// right; without (a sidecar) the (N+1)th from the right. Too few entries: the peer.
fn remote_ip(
    use_remote_address: bool,
    trusted_hops: u32,
    headers: &HeaderMap,
    peer: IpAddr,
) -> IpAddr {
    let from_right = match (use_remote_address, trusted_hops) {
        (true, 0) => return peer,
        (true, n) => n as usize,
        (false, n) => n as usize + 1,
    };
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .rev()
        .nth(from_right - 1)
        .and_then(|ip| ip.trim().parse().ok())
        .unwrap_or(peer)
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_address_from_the_trusted_forwarded_for_entry() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(remote_ip(false, 0, &h, peer), peer);
        h.append("x-forwarded-for", "1.1.1.1, 2.2.2.2".parse().unwrap());
        // A sidecar: the last entry, one further left per trusted hop.
        assert_eq!(remote_ip(false, 0, &h, peer), ip("2.2.2.2"));
        assert_eq!(remote_ip(false, 1, &h, peer), ip("1.1.1.1"));
        assert_eq!(remote_ip(false, 2, &h, peer), peer);
        // A gateway: the peer, or the Nth entry from the right with N trusted hops.
        assert_eq!(remote_ip(true, 0, &h, peer), peer);
        assert_eq!(remote_ip(true, 1, &h, peer), ip("2.2.2.2"));
        assert_eq!(remote_ip(true, 2, &h, peer), ip("1.1.1.1"));
        assert_eq!(remote_ip(true, 3, &h, peer), peer);
    }
}
