//! The lookup table a DNS server answers from: the NDS name table expanded with Istio's
//! aliases for the proxy that asks (pkg/dns/client `generateAltHosts`).
//!
//! Every host resolves by its full name. A Kubernetes service of the proxy's cluster
//! domain also resolves as `name.namespace`, as `name.namespace.svc` (the first label of
//! the domain), and — for a proxy in the same namespace — as plain `name`. These aliases
//! are what a pod's search path would otherwise have to find, so `reviews`,
//! `reviews.default` and `reviews.default.svc.cluster.local` all resolve, each in one
//! query. A ServiceEntry host `*.example.com` answers every name under `example.com`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::nds::{KUBERNETES, NameTable};

/// Where the asking proxy is: the namespace its aliases are relative to, and its
/// cluster's service domain (`svc.cluster.local`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyScope {
    pub namespace: String,
    /// The domain's labels, e.g. `["svc", "cluster", "local"]`.
    domain: Vec<String>,
}

impl ProxyScope {
    /// From the namespace and the DNS domain of Istio's node id (its last field,
    /// `default.svc.cluster.local`); a leading namespace label is dropped, as Istio does.
    pub fn new(namespace: &str, dns_domain: &str) -> Self {
        let mut domain: Vec<String> = dns_domain
            .trim_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        if domain.first().is_some_and(|l| *l == namespace) {
            domain.remove(0);
        }
        ProxyScope {
            namespace: namespace.to_string(),
            domain,
        }
    }

    /// From Istio's node id `type~ip~name.namespace~namespace.svc.cluster.local`.
    pub fn from_node_id(id: &str) -> Option<Self> {
        let parts: Vec<&str> = id.split('~').collect();
        let [_, _, workload, domain] = parts.as_slice() else {
            return None;
        };
        let namespace = workload.rsplit_once('.').map(|(_, ns)| ns)?;
        (!namespace.is_empty()).then(|| ProxyScope::new(namespace, domain))
    }

    fn domain(&self) -> String {
        self.domain.join(".")
    }
}

/// The addresses one name resolves to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses {
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
}

/// Names (lower case, with the final dot) → addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    names: HashMap<String, Addresses>,
}

impl Lookup {
    /// The table for `scope`. Hosts without a usable address are left out; when two hosts
    /// claim one alias, the first in name order keeps it.
    pub fn new(table: &NameTable, scope: &ProxyScope) -> Lookup {
        let mut names = HashMap::new();
        let domain = scope.domain();
        for (host, info) in &table.table {
            let addresses = parse_ips(&info.ips);
            if addresses.v4.is_empty() && addresses.v6.is_empty() {
                continue;
            }
            let mut aliases = vec![fqdn(host)];
            let in_domain = !domain.is_empty()
                && host
                    .to_ascii_lowercase()
                    .trim_end_matches('.')
                    .ends_with(&format!(".{domain}"));
            if info.registry == KUBERNETES && in_domain && !info.shortname.is_empty() {
                let (name, ns) = (&info.shortname, &info.namespace);
                aliases.push(fqdn(&format!("{name}.{ns}")));
                if let Some(first) = scope.domain.first() {
                    aliases.push(fqdn(&format!("{name}.{ns}.{first}")));
                }
                if *ns == scope.namespace {
                    aliases.push(fqdn(name));
                }
            }
            for alias in aliases {
                names.entry(alias).or_insert_with(|| addresses.clone());
            }
        }
        Lookup { names }
    }

    /// The addresses of `name` (any case, with or without the final dot): its own entry,
    /// else the closest wildcard host above it (`*.example.com` for `a.b.example.com`).
    pub fn get(&self, name: &str) -> Option<&Addresses> {
        let name = fqdn(name);
        if let Some(found) = self.names.get(&name) {
            return Some(found);
        }
        let mut rest = name.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if parent.is_empty() {
                break;
            }
            if let Some(found) = self.names.get(&format!("*.{parent}")) {
                return Some(found);
            }
            rest = parent;
        }
        None
    }

    /// How many names resolve (aliases included).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Lower case, with exactly one final dot.
fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}

fn parse_ips(ips: &[String]) -> Addresses {
    let mut out = Addresses::default();
    for ip in ips.iter().filter_map(|ip| ip.parse::<IpAddr>().ok()) {
        match ip {
            IpAddr::V4(v4) => out.v4.push(v4),
            IpAddr::V6(v6) => out.v6.push(v6),
        }
    }
    out
}

#[cfg(test)]
mod tests;
