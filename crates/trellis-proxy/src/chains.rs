//! Filter-chain selection, as Envoy does it: the criteria are looked at one level at a time
//! (destination port, destination address, server name, transport protocol, application
//! protocols); at each level the chains that match most specifically survive, chains that
//! leave the criterion empty survive only when none matches specifically, and there is no
//! backtracking. No survivor: the default chain. Also the original-destination handoff from
//! a capture listener to the listener of the destination ([`receiving`]). Pure functions.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::config::{FilterChain, Listener, Snapshot};

/// What the listener filters learned about a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The (original) destination.
    pub destination: SocketAddr,
    /// TLS SNI, lower case.
    pub server_name: Option<String>,
    /// `raw_buffer` or `tls`.
    pub transport: &'static str,
    /// ALPN offered (TLS), or what the HTTP inspector saw (`http/1.1`, `h2c`...).
    pub application_protocols: Vec<String>,
}

impl Connection {
    pub fn raw(destination: SocketAddr) -> Connection {
        Connection {
            destination,
            server_name: None,
            transport: "raw_buffer",
            application_protocols: Vec::new(),
        }
    }
}

/// One level of matching: `None` when the chain says nothing about the criterion,
/// `Some(None)` when it names values that do not match, `Some(Some(score))` when it matches
/// (higher is more specific).
type Level<'a> = dyn Fn(&FilterChain) -> Option<Option<u32>> + 'a;

/// The chain for a connection, or `None` (Envoy closes it: `no_filter_chain_match`).
pub fn select<'a>(listener: &'a Listener, c: &Connection) -> Option<&'a FilterChain> {
    let mut candidates: Vec<&FilterChain> = listener.chains.iter().collect();
    let levels: [&Level<'_>; 5] = [
        &|f| {
            f.matcher
                .destination_port
                .map(|p| (p == c.destination.port()).then_some(1))
        },
        &|f| {
            (!f.matcher.prefix_ranges.is_empty()).then(|| {
                f.matcher
                    .prefix_ranges
                    .iter()
                    .filter(|(net, len)| in_prefix(c.destination.ip(), *net, *len))
                    .map(|(_, len)| u32::from(*len))
                    .max()
            })
        },
        &|f| {
            (!f.matcher.server_names.is_empty()).then(|| {
                let sni = c.server_name.as_deref()?;
                f.matcher
                    .server_names
                    .iter()
                    .filter_map(|n| server_name_score(n, sni))
                    .max()
            })
        },
        &|f| {
            f.matcher
                .transport_protocol
                .as_deref()
                .map(|t| (t == c.transport).then_some(1))
        },
        &|f| {
            (!f.matcher.application_protocols.is_empty()).then(|| {
                f.matcher
                    .application_protocols
                    .iter()
                    .any(|p| c.application_protocols.contains(p))
                    .then_some(1)
            })
        },
    ];
    for level in levels {
        let scored: Vec<(&FilterChain, Option<Option<u32>>)> =
            candidates.iter().map(|f| (*f, level(f))).collect();
        let best = scored.iter().filter_map(|(_, s)| s.flatten()).max();
        candidates = match best {
            Some(best) => scored
                .into_iter()
                .filter(|(_, s)| *s == Some(Some(best)))
                .map(|(f, _)| f)
                .collect(),
            None => scored
                .into_iter()
                .filter(|(_, s)| s.is_none())
                .map(|(f, _)| f)
                .collect(),
        };
        if candidates.is_empty() {
            break;
        }
    }
    candidates
        .first()
        .copied()
        .or(listener.default_chain.as_ref())
}

fn in_prefix(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Exact names beat wildcards; longer wildcard suffixes beat shorter ones.
fn server_name_score(pattern: &str, sni: &str) -> Option<u32> {
    if pattern == sni {
        return Some(u32::MAX);
    }
    let suffix = pattern.strip_prefix('*')?;
    (sni.len() > suffix.len() && sni.ends_with(suffix)).then_some(suffix.len() as u32)
}

/// The listener a captured connection to `original` is handed to: the `bind_to_port: false`
/// listener of exactly that address, else of `0.0.0.0`/`::` and that port. `None`: the
/// capture listener's own chains handle it (passthrough).
pub fn handoff(snapshot: &Snapshot, original: SocketAddr) -> Option<Arc<Listener>> {
    let held = || {
        snapshot
            .listeners
            .values()
            .filter(|l| !l.bind && !l.capture)
    };
    held()
        .find(|l| l.address == original)
        .or_else(|| {
            held().find(|l| l.address.ip().is_unspecified() && l.address.port() == original.port())
        })
        .cloned()
}

/// The listener that serves a connection accepted by `listener` for `original`: the
/// handoff target when `listener` hands off (`use_original_dst`) and one exists, else
/// `listener` itself.
pub fn receiving(
    snapshot: &Snapshot,
    listener: &Arc<Listener>,
    original: SocketAddr,
) -> Arc<Listener> {
    listener
        .handoff
        .then(|| handoff(snapshot, original))
        .flatten()
        .unwrap_or_else(|| listener.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChainMatch, Network, TcpProxy};

    fn chain(name: &str, m: ChainMatch) -> FilterChain {
        FilterChain {
            name: name.into(),
            matcher: m,
            tls: None,
            rbac: Vec::new(),
            network: Network::Tcp(TcpProxy {
                stat_prefix: name.into(),
                clusters: vec![(name.into(), 1)],
                idle_timeout: None,
                access_logs: Vec::new(),
            }),
        }
    }

    fn listener(name: &str, address: &str, bind: bool, chains: Vec<FilterChain>) -> Listener {
        Listener {
            name: name.into(),
            address: address.parse().unwrap(),
            bind,
            capture: false,
            handoff: false,
            reuse_port: false,
            inbound: false,
            inspect_tls: false,
            inspect_http: false,
            inspect_timeout: None,
            continue_on_timeout: false,
            chains,
            default_chain: Some(chain("default", ChainMatch::default())),
            access_logs: Vec::new(),
        }
    }

    fn http() -> Vec<String> {
        vec!["http/1.0".into(), "http/1.1".into(), "h2c".into()]
    }

    /// The shape of Istio's `0.0.0.0_7070`: VIP + HTTP, VIP + TCP, any + HTTP, default TCP.
    #[test]
    fn mixed_port_chains_pick_by_address_then_protocol() {
        let vip = ("240.240.9.9".parse().unwrap(), 32);
        let l = listener(
            "0.0.0.0_7070",
            "0.0.0.0:7070",
            false,
            vec![
                chain(
                    "vip-http",
                    ChainMatch {
                        prefix_ranges: vec![vip],
                        application_protocols: http(),
                        ..Default::default()
                    },
                ),
                chain(
                    "vip-tcp",
                    ChainMatch {
                        prefix_ranges: vec![vip],
                        ..Default::default()
                    },
                ),
                chain(
                    "any-http",
                    ChainMatch {
                        application_protocols: http(),
                        ..Default::default()
                    },
                ),
            ],
        );
        let mut c = Connection::raw("240.240.9.9:7070".parse().unwrap());
        assert_eq!(select(&l, &c).unwrap().name, "vip-tcp");
        c.application_protocols = vec!["http/1.1".into()];
        assert_eq!(select(&l, &c).unwrap().name, "vip-http");
        c.destination = "10.0.0.1:7070".parse().unwrap();
        assert_eq!(select(&l, &c).unwrap().name, "any-http");
        c.application_protocols.clear();
        assert_eq!(select(&l, &c).unwrap().name, "default");
    }

    #[test]
    fn ports_then_server_names_without_backtracking() {
        let l = listener(
            "virtualInbound",
            "0.0.0.0:15006",
            true,
            vec![
                chain(
                    "15006",
                    ChainMatch {
                        destination_port: Some(15006),
                        ..Default::default()
                    },
                ),
                chain(
                    "9080-sni",
                    ChainMatch {
                        destination_port: Some(9080),
                        server_names: vec!["*.example.com".into(), "a.example.com".into()],
                        transport_protocol: Some("tls".into()),
                        ..Default::default()
                    },
                ),
                chain(
                    "wiki",
                    ChainMatch {
                        server_names: vec!["*.wikipedia.org".into()],
                        ..Default::default()
                    },
                ),
            ],
        );
        let mut c = Connection::raw("10.0.0.1:15006".parse().unwrap());
        assert_eq!(select(&l, &c).unwrap().name, "15006");
        c.destination.set_port(9080);
        // Port 9080 matched specifically, its SNI did not: no backtracking to "wiki".
        c.server_name = Some("en.wikipedia.org".into());
        c.transport = "tls";
        assert_eq!(select(&l, &c).unwrap().name, "default");
        c.server_name = Some("b.example.com".into());
        assert_eq!(select(&l, &c).unwrap().name, "9080-sni");
        c.transport = "raw_buffer";
        assert_eq!(select(&l, &c).unwrap().name, "default");
        c.destination.set_port(443);
        c.server_name = Some("en.wikipedia.org".into());
        assert_eq!(select(&l, &c).unwrap().name, "wiki");
    }

    #[test]
    fn prefixes_match_by_longest() {
        assert!(in_prefix(
            "10.1.2.3".parse().unwrap(),
            "10.0.0.0".parse().unwrap(),
            8
        ));
        assert!(!in_prefix(
            "11.1.2.3".parse().unwrap(),
            "10.0.0.0".parse().unwrap(),
            8
        ));
        assert!(in_prefix(
            "11.1.2.3".parse().unwrap(),
            "0.0.0.0".parse().unwrap(),
            0
        ));
    }

    #[test]
    fn captured_connections_go_to_the_listener_of_their_destination() {
        let mut s = Snapshot::default();
        for l in [
            listener("0.0.0.0_9080", "0.0.0.0:9080", false, vec![]),
            listener("240.240.1.1_443", "240.240.1.1:443", false, vec![]),
            listener("127.0.0.1_9090", "127.0.0.1:9090", true, vec![]),
        ] {
            s.listeners.insert(l.name.clone(), Arc::new(l));
        }
        let to = |a: &str| handoff(&s, a.parse().unwrap()).map(|l| l.name.clone());
        assert_eq!(to("240.240.7.7:9080").as_deref(), Some("0.0.0.0_9080"));
        assert_eq!(to("240.240.1.1:443").as_deref(), Some("240.240.1.1_443"));
        assert_eq!(to("240.240.1.2:443"), None);
        // A bound listener is reached directly, never by handoff.
        assert_eq!(to("127.0.0.1:9090"), None);

        let mut outbound = listener("virtualOutbound", "0.0.0.0:15001", true, vec![]);
        outbound.capture = true;
        outbound.handoff = true;
        let outbound = Arc::new(outbound);
        let mut inbound = (*outbound).clone();
        inbound.handoff = false;
        inbound.name = "virtualInbound".into();
        let inbound = Arc::new(inbound);
        let via = |l: &Arc<Listener>, a: &str| receiving(&s, l, a.parse().unwrap()).name.clone();
        assert_eq!(via(&outbound, "240.240.7.7:9080"), "0.0.0.0_9080");
        assert_eq!(via(&outbound, "10.1.1.1:5432"), "virtualOutbound");
        // `original_dst` alone (virtualInbound) restores the address but never hands off.
        assert_eq!(via(&inbound, "240.240.7.7:9080"), "virtualInbound");
    }
}
