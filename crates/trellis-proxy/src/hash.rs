//! Consistent hashing: the route's `hash_policy` turns a request into a 64-bit key, and a
//! cluster's RING_HASH ring or MAGLEV table turns the key into a host. Policies combine as
//! Envoy's do: each one that yields a value folds it in (rotate the key left by one, xor), and
//! a `terminal` policy that yielded stops the list. No value at all: the balancer picks at
//! random. A `cookie` policy whose cookie is absent, with a `ttl`, generates the cookie from
//! the downstream address and asks for it to be set on the response (Envoy's behaviour); with
//! no `ttl` it yields nothing.
//!
//! The hash function is FNV-1a with a 64-bit finalizer: stable across runs and builds (it is
//! not Envoy's xxHash, so a key does not land on the same host as under Envoy — only the
//! same host every time).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::HeaderMap;

use crate::upstream::Host;

pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Finalizer (murmur3's fmix64): spreads nearby inputs over the whole ring.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// One `hash_policy` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct HashPolicy {
    pub key: HashKey,
    pub terminal: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HashKey {
    /// Lower case.
    Header(String),
    Cookie {
        name: String,
        ttl: Option<Duration>,
        path: String,
    },
    SourceIp,
    QueryParameter(String),
}

/// The request's key, and a `Set-Cookie` value to add to the response when a cookie was
/// generated.
pub fn request_hash(
    policies: &[HashPolicy],
    headers: &HeaderMap,
    query: Option<&str>,
    remote: SocketAddr,
) -> (Option<u64>, Option<String>) {
    let mut key: Option<u64> = None;
    let mut set_cookie = None;
    for p in policies {
        let value: Option<u64> = match &p.key {
            HashKey::Header(name) => {
                let values: Vec<&[u8]> = headers
                    .get_all(name.as_str())
                    .iter()
                    .map(|v| v.as_bytes())
                    .collect();
                (!values.is_empty()).then(|| hash64(&values.join(&b","[..])))
            }
            HashKey::Cookie { name, ttl, path } => match cookie(headers, name) {
                Some(v) => Some(hash64(v.as_bytes())),
                None => ttl.map(|ttl| {
                    let value = format!("{:016x}", hash64(remote.to_string().as_bytes()));
                    let mut c = format!("{name}=\"{value}\"");
                    if !ttl.is_zero() {
                        c.push_str(&format!("; Max-Age={}", ttl.as_secs()));
                    }
                    if !path.is_empty() {
                        c.push_str(&format!("; Path={path}"));
                    }
                    c.push_str("; HttpOnly");
                    set_cookie = Some(c);
                    hash64(value.as_bytes())
                }),
            },
            HashKey::SourceIp => Some(hash64(remote.ip().to_string().as_bytes())),
            HashKey::QueryParameter(name) => query.and_then(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| hash64(v.as_bytes()))
            }),
        };
        if let Some(v) = value {
            key = Some(key.map_or(v, |k| k.rotate_left(1) ^ v));
            if p.terminal {
                break;
            }
        }
    }
    (key, set_cookie)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
}

/// A host lookup table for a set of hosts.
#[derive(Debug)]
pub enum Table {
    /// Sorted (point, host index).
    Ring(Vec<(u64, usize)>),
    /// Host index per slot.
    Maglev(Vec<usize>),
}

/// RING_HASH: each host gets points in proportion to its weight, at least `min_size` points
/// in all (at most `max_size`). A host's count is rounded up to a power of two, so adding or
/// removing a host rarely changes the others' points: only the keys of the host that went
/// (or those the new host takes) move.
pub fn ring(hosts: &[Arc<Host>], min_size: u64, max_size: u64) -> Table {
    let total: u64 = hosts
        .iter()
        .map(|h| u64::from(h.weight))
        .sum::<u64>()
        .max(1);
    let size = min_size.max(hosts.len() as u64).min(max_size.max(1));
    let mut points = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let n = (size * u64::from(h.weight))
            .div_ceil(total)
            .max(1)
            .next_power_of_two()
            .min(max_size.max(1));
        for k in 0..n {
            points.push((hash64(format!("{}_{k}", h.address).as_bytes()), i));
        }
    }
    points.sort_unstable();
    Table::Ring(points)
}

/// MAGLEV: a table of `size` slots (a prime), filled by each host's permutation in turns
/// proportional to its weight.
pub fn maglev(hosts: &[Arc<Host>], size: u64) -> Table {
    let m = size.max(1);
    if hosts.is_empty() {
        return Table::Maglev(Vec::new());
    }
    let perm: Vec<(u64, u64)> = hosts
        .iter()
        .map(|h| {
            let name = h.address.to_string();
            let offset = hash64(name.as_bytes()) % m;
            let skip = hash64(format!("{name}#skip").as_bytes()) % (m - 1).max(1) + 1;
            (offset, skip)
        })
        .collect();
    let max_w = hosts
        .iter()
        .map(|h| f64::from(h.weight))
        .fold(0.0, f64::max);
    let mut next = vec![0u64; hosts.len()];
    let mut target = vec![0.0f64; hosts.len()];
    let mut table = vec![usize::MAX; m as usize];
    let mut filled = 0u64;
    let mut round = 1u64;
    while filled < m {
        for i in 0..hosts.len() {
            let w = f64::from(hosts[i].weight);
            // Hosts lighter than the heaviest skip some turns.
            if (round as f64) * w < target[i] {
                continue;
            }
            target[i] += max_w;
            loop {
                let (offset, skip) = perm[i];
                let slot = ((offset + next[i] * skip) % m) as usize;
                next[i] += 1;
                if table[slot] == usize::MAX {
                    table[slot] = i;
                    filled += 1;
                    break;
                }
            }
            if filled == m {
                break;
            }
        }
        round += 1;
    }
    Table::Maglev(table)
}

impl Table {
    /// The host index for a key; `usable` says which hosts a retry may take (the ring walks
    /// on, the table probes the following slots).
    pub fn lookup(&self, key: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        match self {
            Table::Ring(points) => {
                if points.is_empty() {
                    return None;
                }
                let start = points.partition_point(|(p, _)| *p < key);
                (0..points.len())
                    .map(|k| points[(start + k) % points.len()].1)
                    .find(|i| usable(*i))
            }
            Table::Maglev(slots) => {
                if slots.is_empty() {
                    return None;
                }
                let start = (key % slots.len() as u64) as usize;
                (0..slots.len())
                    .map(|k| slots[(start + k) % slots.len()])
                    .find(|i| usable(*i))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn hosts(n: u8) -> Vec<Arc<Host>> {
        (1..=n)
            .map(|i| Arc::new(Host::new(format!("10.0.0.{i}:80").parse().unwrap(), 1)))
            .collect()
    }

    fn pick(t: &Table, hs: &[Arc<Host>], key: u64) -> SocketAddr {
        hs[t.lookup(key, |_| true).unwrap()].address
    }

    fn check_stability(build: impl Fn(&[Arc<Host>]) -> Table) {
        let hs = hosts(5);
        let t = build(&hs);
        let keys: Vec<u64> = (0..2000)
            .map(|i| hash64(format!("user{i}").as_bytes()))
            .collect();
        let before: Vec<SocketAddr> = keys.iter().map(|k| pick(&t, &hs, *k)).collect();
        // Same key, same host; and the keys spread over every host.
        assert_eq!(
            before,
            keys.iter().map(|k| pick(&t, &hs, *k)).collect::<Vec<_>>()
        );
        for h in &hs {
            let n = before.iter().filter(|a| **a == h.address).count();
            assert!((200..700).contains(&n), "{n}");
        }
        // Remove one host: only its keys move.
        let removed = hs[2].address;
        let rest: Vec<Arc<Host>> = hs
            .iter()
            .filter(|h| h.address != removed)
            .cloned()
            .collect();
        let t2 = build(&rest);
        let moved = keys
            .iter()
            .zip(&before)
            .filter(|(k, b)| **b != removed && pick(&t2, &rest, **k) != **b)
            .count();
        assert!(moved < keys.len() / 20, "{moved} keys moved");
    }

    #[test]
    fn ring_hash_is_stable_and_minimally_disrupted() {
        check_stability(|h| ring(h, 1024, 8 << 20));
    }

    #[test]
    fn maglev_is_stable_and_minimally_disrupted() {
        check_stability(|h| maglev(h, 65537));
    }

    #[test]
    fn policies_make_keys_like_envoy() {
        let remote: SocketAddr = "192.168.1.9:5555".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-user", HeaderValue::from_static("alice"));
        h.insert("cookie", HeaderValue::from_static("a=1; session=\"xyz\""));
        let header = |n: &str, terminal| HashPolicy {
            key: HashKey::Header(n.into()),
            terminal,
        };
        let (k, c) = request_hash(&[header("x-user", false)], &h, None, remote);
        assert_eq!(k, Some(hash64(b"alice")));
        assert!(c.is_none());
        // Missing header: no key (random choice).
        assert_eq!(
            request_hash(&[header("x-none", false)], &h, None, remote).0,
            None
        );
        // Terminal stops after the first value.
        let both = [
            header("x-user", true),
            HashPolicy {
                key: HashKey::SourceIp,
                terminal: false,
            },
        ];
        assert_eq!(
            request_hash(&both, &h, None, remote).0,
            Some(hash64(b"alice"))
        );
        let cookie = |name: &str, ttl| HashPolicy {
            key: HashKey::Cookie {
                name: name.into(),
                ttl,
                path: "/".into(),
            },
            terminal: false,
        };
        assert_eq!(
            request_hash(&[cookie("session", None)], &h, None, remote).0,
            Some(hash64(b"xyz"))
        );
        assert_eq!(
            request_hash(&[cookie("other", None)], &h, None, remote),
            (None, None)
        );
        let (k, set) = request_hash(
            &[cookie("other", Some(Duration::from_secs(60)))],
            &h,
            None,
            remote,
        );
        let set = set.unwrap();
        assert!(
            set.starts_with("other=\"") && set.contains("Max-Age=60; Path=/; HttpOnly"),
            "{set}"
        );
        // The generated cookie, sent back, gives the same key.
        let value = set.split('"').nth(1).unwrap();
        let mut again = HeaderMap::new();
        again.insert(
            "cookie",
            HeaderValue::from_str(&format!("other={value}")).unwrap(),
        );
        assert_eq!(
            request_hash(
                &[cookie("other", Some(Duration::from_secs(60)))],
                &again,
                None,
                remote
            )
            .0,
            k
        );
        let q = HashPolicy {
            key: HashKey::QueryParameter("u".into()),
            terminal: false,
        };
        assert_eq!(
            request_hash(&[q], &h, Some("a=b&u=bob"), remote).0,
            Some(hash64(b"bob"))
        );
    }
}
