//! Load-balancer choice as pure functions of the hosts, the cluster's counter and a random
//! source: round robin (weighted by smooth interleaving when weights differ), least request
//! (power of two choices), random. `exclude` holds hosts a retry should avoid (Envoy's
//! `previous_hosts` predicate); if every host is excluded the choice ignores it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::LbPolicy;
use crate::upstream::Host;

pub fn choose(
    policy: LbPolicy,
    hosts: &[Arc<Host>],
    next: &AtomicUsize,
    exclude: &[SocketAddr],
    rng: &mut fastrand::Rng,
) -> Option<Arc<Host>> {
    let candidates: Vec<&Arc<Host>> = if exclude.is_empty() {
        hosts.iter().collect()
    } else {
        let rest: Vec<&Arc<Host>> = hosts
            .iter()
            .filter(|h| !exclude.contains(&h.address))
            .collect();
        if rest.is_empty() {
            hosts.iter().collect()
        } else {
            rest
        }
    };
    if candidates.is_empty() {
        return None;
    }
    let n = candidates.len();
    let pick = match policy {
        LbPolicy::RoundRobin => {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if candidates.iter().all(|h| h.weight == candidates[0].weight) {
                candidates[i % n]
            } else {
                weighted_slot(&candidates, i)
            }
        }
        // Consistent hashing without a key (no hash policy yielded one): random, as Envoy.
        LbPolicy::Random | LbPolicy::RingHash(..) | LbPolicy::Maglev(_) => {
            candidates[rng.usize(..n)]
        }
        LbPolicy::LeastRequest => {
            if n == 1 {
                candidates[0]
            } else {
                let a = rng.usize(..n);
                let mut b = rng.usize(..n - 1);
                if b >= a {
                    b += 1;
                }
                let (ha, hb) = (candidates[a], candidates[b]);
                let load = |h: &Host| h.active.load(Ordering::Relaxed) as f64 / f64::from(h.weight);
                if load(hb) < load(ha) { hb } else { ha }
            }
        }
    };
    Some(pick.clone())
}

/// The `i`-th slot of a schedule in which each host appears `weight` times.
fn weighted_slot<'a>(hosts: &[&'a Arc<Host>], i: usize) -> &'a Arc<Host> {
    let total: u64 = hosts.iter().map(|h| u64::from(h.weight)).sum();
    let mut slot = (i as u64) % total.max(1);
    for h in hosts {
        if slot < u64::from(h.weight) {
            return h;
        }
        slot -= u64::from(h.weight);
    }
    hosts[0]
}

/// A weighted choice among `(name, weight)`; zero total weight picks the first.
pub fn weighted<'a>(items: &'a [(String, u32)], rng: &mut fastrand::Rng) -> Option<&'a str> {
    let total: u64 = items.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return items.first().map(|(n, _)| n.as_str());
    }
    let mut x = rng.u64(..total);
    for (name, w) in items {
        if x < u64::from(*w) {
            return Some(name);
        }
        x -= u64::from(*w);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: u8) -> Vec<Arc<Host>> {
        (1..=n)
            .map(|i| Arc::new(Host::new(format!("127.0.0.{i}:80").parse().unwrap(), 1)))
            .collect()
    }

    #[test]
    fn round_robin_cycles_and_avoids_excluded_hosts() {
        let hs = hosts(3);
        let next = AtomicUsize::new(0);
        let mut rng = fastrand::Rng::with_seed(1);
        let picks: Vec<SocketAddr> = (0..6)
            .map(|_| {
                choose(LbPolicy::RoundRobin, &hs, &next, &[], &mut rng)
                    .unwrap()
                    .address
            })
            .collect();
        assert_eq!(picks[0..3], picks[3..6]);
        assert_ne!(picks[0], picks[1]);
        let excluded = [hs[0].address, hs[1].address];
        for _ in 0..5 {
            let h = choose(LbPolicy::RoundRobin, &hs, &next, &excluded, &mut rng).unwrap();
            assert_eq!(h.address, hs[2].address);
        }
        // Everything excluded: still a host rather than none.
        let all: Vec<SocketAddr> = hs.iter().map(|h| h.address).collect();
        assert!(choose(LbPolicy::Random, &hs, &next, &all, &mut rng).is_some());
        assert!(choose(LbPolicy::RoundRobin, &[], &next, &[], &mut rng).is_none());
    }

    #[test]
    fn least_request_prefers_the_idle_host_of_two() {
        let hs = hosts(2);
        hs[0].active.store(10, Ordering::Relaxed);
        let next = AtomicUsize::new(0);
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20 {
            let h = choose(LbPolicy::LeastRequest, &hs, &next, &[], &mut rng).unwrap();
            assert_eq!(h.address, hs[1].address);
        }
    }

    #[test]
    fn weights_are_honoured() {
        let mut rng = fastrand::Rng::with_seed(3);
        let items = vec![("a".to_string(), 90), ("b".to_string(), 10)];
        let a = (0..10_000)
            .filter(|_| weighted(&items, &mut rng) == Some("a"))
            .count();
        assert!((8_700..9_300).contains(&a), "{a}");
        let only = vec![("x".to_string(), 0)];
        assert_eq!(weighted(&only, &mut rng), Some("x"));
        let hs = vec![
            Arc::new(Host::new("127.0.0.1:1".parse().unwrap(), 3)),
            Arc::new(Host::new("127.0.0.2:1".parse().unwrap(), 1)),
        ];
        let next = AtomicUsize::new(0);
        let first = (0..8)
            .filter(|_| {
                choose(LbPolicy::RoundRobin, &hs, &next, &[], &mut rng)
                    .unwrap()
                    .address
                    == hs[0].address
            })
            .count();
        assert_eq!(first, 6);
    }
}
