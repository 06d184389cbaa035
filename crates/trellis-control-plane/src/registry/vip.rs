//! Virtual IPs for services that have none, from 240.240.0.0/16 (reserved, never routed).
//!
//! The address is a hash of the host name, so a service keeps its VIP across restarts and
//! unrelated changes; collisions move to the next free address in host-name order.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

const BASE: u32 = u32::from_be_bytes([240, 240, 0, 0]);
/// Usable addresses: .0.1 to .255.254 (the network and broadcast-looking ends skipped).
const SPAN: u32 = 65_534;

/// Assigns a VIP to each host name in `hosts` that does not appear in `taken`.
pub fn allocate(
    hosts: &BTreeSet<String>,
    taken: &BTreeSet<Ipv4Addr>,
) -> BTreeMap<String, Ipv4Addr> {
    let mut used = taken.clone();
    let mut out = BTreeMap::new();
    for host in hosts {
        let start = fnv1a(host.as_bytes()) % SPAN;
        let free = (0..SPAN)
            .map(|i| Ipv4Addr::from(BASE + 1 + (start + i) % SPAN))
            .find(|ip| !used.contains(ip));
        if let Some(ip) = free {
            used.insert(ip);
            out.insert(host.clone(), ip);
        }
    }
    out
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_unique_and_in_range() {
        let hosts: BTreeSet<String> = (0..500)
            .map(|i| format!("svc{i}.ns.svc.cluster.local"))
            .collect();
        let a = allocate(&hosts, &BTreeSet::new());
        let b = allocate(&hosts, &BTreeSet::new());
        assert_eq!(a, b);
        let unique: BTreeSet<_> = a.values().collect();
        assert_eq!(unique.len(), 500);
        assert!(a.values().all(|ip| ip.octets()[..2] == [240, 240]));
    }

    #[test]
    fn taken_addresses_are_skipped() {
        let hosts: BTreeSet<String> = ["a".to_string()].into();
        let first = allocate(&hosts, &BTreeSet::new())["a"];
        let again = allocate(&hosts, &[first].into())["a"];
        assert_ne!(first, again);
    }
}
