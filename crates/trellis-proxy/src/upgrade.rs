//! HTTP/1.1 upgrades (WebSocket and others), as Envoy's connection manager does them:
//!
//! - a request asks for one with `Upgrade: TYPE` and an `upgrade` token in `Connection`;
//!   `h2c` upgrades are not passed on: their headers are dropped and the request goes on as
//!   a plain one, like Envoy's;
//! - whether the route may carry it: the route's `upgrade_configs` entry for that type if
//!   it has one, else the connection manager's (`upgrade_configs`, e.g. Istio's
//!   `websocket` on every HTTP listener); otherwise Envoy's 403 `upgrade_failed`;
//! - allowed, the request goes upstream over HTTP/1.1 with `Upgrade` and
//!   `Connection: upgrade` kept, and if the upstream answers 101 the client gets the 101 and
//!   from then on the bytes are spliced both ways until either side closes its sending
//!   half: then, like Envoy (which carries no half-close on HTTP/1 upgrades), the whole
//!   upgraded connection ends, both ways, after what that side sent has been delivered.

use hyper::header::{CONNECTION, HeaderValue, UPGRADE};
use hyper::upgrade::OnUpgrade;
use hyper::{HeaderMap, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;

use crate::config::{Action, Route};

/// The upgrade types a connection manager or a route enables (lower case), and the ones a
/// route disables (`enabled: false`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Upgrades {
    pub enabled: Vec<String>,
    pub disabled: Vec<String>,
}

/// The upgrade a request asks for (lower case), if any; `h2c` is not one.
pub fn requested(version: Version, headers: &HeaderMap) -> Option<String> {
    if version != Version::HTTP_11 {
        return None;
    }
    let connection_upgrade = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let kind = headers
        .get(UPGRADE)?
        .to_str()
        .ok()?
        .trim()
        .to_ascii_lowercase();
    (connection_upgrade && !kind.is_empty() && kind != "h2c").then_some(kind)
}

/// Whether `kind` may be carried: the route's say first, then the connection manager's.
pub fn allowed(manager: &Upgrades, route: Option<&Upgrades>, kind: &str) -> bool {
    if let Some(route) = route {
        if route.disabled.iter().any(|k| k == kind) {
            return false;
        }
        if route.enabled.iter().any(|k| k == kind) {
            return true;
        }
    }
    manager.enabled.iter().any(|k| k == kind)
}

/// Envoy's 403 `upgrade_failed`: the request asks for an upgrade its route may not carry.
pub fn refused(manager: &Upgrades, route: &Route, version: Version, headers: &HeaderMap) -> bool {
    let Some(kind) = requested(version, headers) else {
        return false;
    };
    let overrides = match &route.action {
        Action::Forward(f) => f.upgrades.as_ref(),
        _ => None,
    };
    !allowed(manager, overrides, &kind)
}

/// A downstream upgrade on its way: the type and the client's side of the connection.
#[derive(Debug)]
pub struct Pending {
    kind: String,
    downstream: OnUpgrade,
}

impl Pending {
    /// Takes the upgrade off a request that asks for one (`requested`); `None` otherwise.
    pub fn take<B>(request: &mut Request<B>) -> Option<Pending> {
        let kind = requested(request.version(), request.headers())?;
        let downstream = request.extensions_mut().remove::<OnUpgrade>()?;
        Some(Pending { kind, downstream })
    }

    /// Puts `Upgrade` and `Connection: upgrade` back after hop-by-hop headers were removed.
    pub fn restore_headers(&self, headers: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.kind) {
            headers.insert(UPGRADE, v);
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        }
    }

    /// On the upstream's 101: splices the two connections in the background once both
    /// sides have switched, and keeps the upgrade headers on the 101 for the client.
    /// Any other response is returned untouched (the upgrade did not happen).
    pub fn complete<B>(self, mut response: Response<B>) -> Response<B> {
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return response;
        }
        let upstream = hyper::upgrade::on(&mut response);
        self.restore_headers(response.headers_mut());
        tokio::spawn(async move {
            let (down, up) = match tokio::try_join!(self.downstream, upstream) {
                Ok(both) => both,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade did not complete");
                    return;
                }
            };
            let (mut down_read, mut down_write) = tokio::io::split(TokioIo::new(down));
            let (mut up_read, mut up_write) = tokio::io::split(TokioIo::new(up));
            // The first direction to end ends both: dropping the halves closes the sockets.
            let ended = tokio::select! {
                r = tokio::io::copy(&mut down_read, &mut up_write) => ("downstream", r),
                r = tokio::io::copy(&mut up_read, &mut down_write) => ("upstream", r),
            };
            tracing::debug!(kind = %self.kind, closed_by = ended.0, result = ?ended.1, "upgraded connection ended");
        });
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn upgrades_need_both_headers_and_http11() {
        let ws = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ]);
        assert_eq!(requested(Version::HTTP_11, &ws), Some("websocket".into()));
        assert_eq!(requested(Version::HTTP_2, &ws), None);
        assert_eq!(
            requested(Version::HTTP_11, &headers(&[("upgrade", "websocket")])),
            None
        );
        let h2c = headers(&[
            ("connection", "upgrade, http2-settings"),
            ("upgrade", "h2c"),
        ]);
        assert_eq!(requested(Version::HTTP_11, &h2c), None);
    }

    #[test]
    fn routes_override_the_connection_manager() {
        let hcm = Upgrades {
            enabled: vec!["websocket".into()],
            disabled: vec![],
        };
        assert!(allowed(&hcm, None, "websocket"));
        assert!(!allowed(&hcm, None, "spdy/3.1"));
        let off = Upgrades {
            enabled: vec![],
            disabled: vec!["websocket".into()],
        };
        assert!(!allowed(&hcm, Some(&off), "websocket"));
        let on = Upgrades {
            enabled: vec!["spdy/3.1".into()],
            disabled: vec![],
        };
        assert!(allowed(&Upgrades::default(), Some(&on), "spdy/3.1"));
        assert!(!allowed(&Upgrades::default(), None, "websocket"));
    }
}
