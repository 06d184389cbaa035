//! Which routes serve which host when several VirtualServices name it.
//!
//! Sidecars: VirtualServices are taken in precedence order (oldest first, then
//! namespace/name). A service belongs to the first VirtualService that names it exactly,
//! or, through a wildcard host, to the VirtualService with the most specific wildcard that
//! covers it; later VirtualServices for the same host are ignored (Istio reports them as
//! duplicate domains). A VirtualService with no route for this port or proxy (all its
//! matches filtered out by `port`, `sourceLabels`, `gateways`...) owns nothing, so the host
//! falls to the next one, or to the default route. Hosts that are not services get a
//! virtual host of their own when the VirtualService also serves a service on this port,
//! or, serving none, on port 80.
//!
//! Gateways merge instead: see [`super::gateway`] (routes of every VirtualService for a
//! host, in precedence order, catch-alls last).

use envoy_types::pb::envoy::config::route::v3::Route;

use super::{RouteContext, VirtualServiceRoutes, http};
use crate::mesh::wildcard_matches;
use crate::registry::Service;
use trellis_api::host::covers;

/// A virtual host to build, in the order Istio builds them (which decides who keeps a
/// contested domain).
#[derive(Debug)]
pub(super) enum PlannedHost<'a> {
    /// A service: its VirtualService's routes, or `None` for the default route.
    Service {
        service: &'a Service,
        routes: Option<&'a [Route]>,
    },
    /// A VirtualService host that is not a service.
    External { host: &'a str, routes: &'a [Route] },
}

pub(super) fn sidecar_hosts<'a>(
    ctx: &RouteContext<'_>,
    services: &[&'a Service],
    virtual_services: &'a [VirtualServiceRoutes<'a>],
) -> Vec<PlannedHost<'a>> {
    let mut owner: Vec<Option<usize>> = vec![None; services.len()];
    for (i, service) in services.iter().enumerate() {
        let wildcard_owner = most_specific_wildcard(virtual_services, &service.hostname);
        owner[i] = virtual_services.iter().enumerate().find_map(|(v, vs)| {
            let names_it = vs.hosts.contains(&service.hostname) || wildcard_owner == Some(v);
            (names_it && !vs.routes.is_empty()).then_some(v)
        });
    }
    let mut out = Vec::new();
    for (v, vs) in virtual_services.iter().enumerate() {
        if vs.routes.is_empty() {
            continue;
        }
        let owned: Vec<&'a Service> = services
            .iter()
            .zip(&owner)
            .filter(|(_, o)| **o == Some(v))
            .map(|(s, _)| *s)
            .collect();
        let matches_any = services.iter().any(|s| host_covers(&vs.hosts, &s.hostname));
        if matches_any || ctx.port == 80 {
            for host in &vs.hosts {
                let is_service = services.iter().any(|s| s.hostname == *host)
                    || (host.starts_with('*')
                        && services.iter().any(|s| wildcard_matches(host, &s.hostname)));
                if !is_service {
                    out.push(PlannedHost::External {
                        host,
                        routes: &vs.routes,
                    });
                }
            }
        }
        for service in owned {
            out.push(PlannedHost::Service {
                service,
                routes: Some(&vs.routes),
            });
        }
    }
    for (service, o) in services.iter().zip(&owner) {
        if o.is_none() {
            out.push(PlannedHost::Service {
                service,
                routes: None,
            });
        }
    }
    out
}

fn host_covers(hosts: &[String], hostname: &str) -> bool {
    hosts.iter().any(|h| covers(h, hostname))
}

/// The VirtualService whose wildcard host covering `hostname` is the longest (the most
/// specific); the earliest in precedence order among equals.
fn most_specific_wildcard(
    virtual_services: &[VirtualServiceRoutes<'_>],
    hostname: &str,
) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (v, vs) in virtual_services.iter().enumerate() {
        for h in vs.hosts.iter().filter(|h| wildcard_matches(h, hostname)) {
            if best.is_none_or(|(_, len)| h.len() > len) {
                best = Some((v, h.len()));
            }
        }
    }
    best.map(|(v, _)| v)
}

/// Gateway virtual hosts concatenate the routes of every VirtualService for the host;
/// catch-all routes go last so that they cannot hide another VirtualService's routes.
pub(super) fn catch_alls_last(routes: Vec<Route>) -> Vec<Route> {
    let (catch_all, specific): (Vec<Route>, Vec<Route>) =
        routes.into_iter().partition(http::is_catch_all);
    specific.into_iter().chain(catch_all).collect()
}
