//! The pod network: one Linux bridge holding the first address of a private subnet, every
//! pod's veth in it, and two guard chains on the host (Local network safety):
//!
//! - `TRELLIS-FWD-<bridge>` (from `FORWARD`): traffic between pods on the bridge passes;
//!   anything forwarded from the bridge to another interface, or to the bridge from one,
//!   is dropped. Nothing is NATed, so even a rule added by someone else further down could
//!   not give a pod a way out with a routable source address.
//! - `TRELLIS-IN-<bridge>` (from `INPUT`): pods may reach the host only at the bridge
//!   address (where the control plane listens), not at its other addresses.
//!
//! The default subnet, 10.241.0.0/16 on `trellis0`, was picked to miss the usual defaults
//! (Docker 172.17/16, Podman 10.88/16, Kubernetes 10.96/12 and 10.244/16, libvirt
//! 192.168.122/24); `trellis up --bridge --subnet` choose others.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::capture::Cidr;
use crate::error::{Error, Result};
use crate::exec;
use crate::state::StateDir;

/// The bridge and the pod subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub bridge: String,
    pub subnet: Cidr,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            bridge: "trellis0".to_string(),
            subnet: Cidr {
                address: Ipv4Addr::new(10, 241, 0, 0),
                prefix: 16,
            },
        }
    }
}

impl NetworkConfig {
    /// Checks the names and sizes the kernel and iptables accept.
    pub fn validate(&self) -> Result<()> {
        let name_ok = !self.bridge.is_empty()
            && self.bridge.len() <= 15
            && self
                .bridge
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(Error::Invalid(format!(
                "bridge name {:?}: 1-15 letters, digits, '-' or '_'",
                self.bridge
            )));
        }
        if !(8..=30).contains(&self.subnet.prefix) {
            return Err(Error::Invalid(format!(
                "pod subnet {}: the prefix must be /8 to /30",
                self.subnet
            )));
        }
        Ok(())
    }

    /// The bridge's own address, the pods' gateway: the subnet's first address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.subnet.nth(1).unwrap_or(self.subnet.address)
    }

    /// The address of the pod with index `index` (0-based), after the gateway; `None` past
    /// the end of the subnet (its broadcast address is never given out).
    pub fn pod_address(&self, index: u32) -> Option<Ipv4Addr> {
        let offset = index.checked_add(2)?;
        let size = 1u64 << (32 - u32::from(self.subnet.prefix));
        (u64::from(offset) < size - 1).then(|| self.subnet.nth(offset))?
    }

    pub fn forward_chain(&self) -> String {
        format!("TRELLIS-FWD-{}", self.bridge)
    }

    pub fn input_chain(&self) -> String {
        format!("TRELLIS-IN-{}", self.bridge)
    }
}

/// The guard rules: `(chain, rule)` pairs in order, for `iptables -A`. Pure.
pub fn guard_rules(c: &NetworkConfig) -> Vec<(String, Vec<String>)> {
    let br = c.bridge.as_str();
    let fwd = c.forward_chain();
    let input = c.input_chain();
    let gateway = format!("{}/32", c.gateway());
    let rule = |chain: &str, args: &[&str]| {
        (
            chain.to_string(),
            args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    vec![
        rule(&fwd, &["-i", br, "-o", br, "-j", "ACCEPT"]),
        rule(&fwd, &["-i", br, "!", "-o", br, "-j", "DROP"]),
        rule(&fwd, &["-o", br, "!", "-i", br, "-j", "DROP"]),
        rule(&input, &["-i", br, "-d", &gateway, "-j", "ACCEPT"]),
        rule(&input, &["-i", br, "-j", "DROP"]),
    ]
}

/// Makes sure the network exists as recorded: records and creates it when the state has
/// none, recreates it when recorded but gone (after a reboot or a crash), and refuses a
/// different bridge or subnet than the one recorded.
pub fn ensure(state: &StateDir, config: &NetworkConfig) -> Result<NetworkConfig> {
    // Without the tools every probe below would look like "absent" and lead astray.
    exec::preflight()?;
    config.validate()?;
    let needs_create = state.update(|s| {
        match &s.network {
            Some(existing) if existing != config => {
                return Err(Error::Invalid(format!(
                    "the state in {} already has bridge {} with subnet {}; `trellis down` \
                     first to change it",
                    state.path().display(),
                    existing.bridge,
                    existing.subnet
                )));
            }
            Some(_) if link_exists(&config.bridge) => return Ok(false),
            Some(_) => teardown(config),
            None if link_exists(&config.bridge) => {
                return Err(Error::Invalid(format!(
                    "a link named {} exists but is not recorded in {}: another state \
                     directory or another program uses it; choose another bridge name, or \
                     remove it (`ip link del {}`)",
                    config.bridge,
                    state.path().display(),
                    config.bridge
                )));
            }
            None => {}
        }
        s.network = Some(config.clone());
        Ok(true)
    })?;
    if !needs_create {
        return Ok(config.clone());
    }
    if let Err(error) = create(config) {
        teardown(config);
        let _ = state.update(|s| {
            s.network = None;
            Ok(())
        });
        return Err(error);
    }
    Ok(config.clone())
}

fn create(c: &NetworkConfig) -> Result<()> {
    let br = c.bridge.as_str();
    let address = format!("{}/{}", c.gateway(), c.subnet.prefix);
    exec::run("ip", &["link", "add", br, "type", "bridge"])?;
    exec::run("ip", &["addr", "add", &address, "dev", br])?;
    exec::run("ip", &["link", "set", br, "up"])?;
    for chain in [c.forward_chain(), c.input_chain()] {
        exec::run("iptables", &["-N", &chain])?;
    }
    for (chain, rule) in guard_rules(c) {
        let mut args = vec!["-A", chain.as_str()];
        args.extend(rule.iter().map(String::as_str));
        exec::run("iptables", &args)?;
    }
    exec::run(
        "iptables",
        &["-I", "FORWARD", "1", "-j", &c.forward_chain()],
    )?;
    exec::run("iptables", &["-I", "INPUT", "1", "-j", &c.input_chain()])?;
    Ok(())
}

/// Removes the bridge and the guard chains; whatever is already gone is skipped.
pub fn teardown(c: &NetworkConfig) {
    for (hook, chain) in [("FORWARD", c.forward_chain()), ("INPUT", c.input_chain())] {
        // A jump may have been inserted more than once by an interrupted start.
        while exec::run("iptables", &["-D", hook, "-j", &chain]).is_ok() {}
        exec::run_quietly("iptables", &["-F", &chain]);
        exec::run_quietly("iptables", &["-X", &chain]);
    }
    exec::run_quietly("ip", &["link", "del", &c.bridge]);
}

/// True when a link of this name exists in the host's namespace.
pub fn link_exists(name: &str) -> bool {
    exec::run("ip", &["link", "show", "dev", name]).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_the_default_network() {
        let c = NetworkConfig::default();
        c.validate().unwrap();
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 241, 0, 1));
        assert_eq!(c.pod_address(0), Some(Ipv4Addr::new(10, 241, 0, 2)));
        assert_eq!(c.pod_address(300), Some(Ipv4Addr::new(10, 241, 1, 46)));
        assert_eq!(
            c.pod_address(65_532),
            Some(Ipv4Addr::new(10, 241, 255, 254))
        );
        assert_eq!(
            c.pod_address(65_533),
            None,
            "the broadcast address is kept free"
        );
    }

    #[test]
    fn guard_rules_drop_everything_leaving_the_bridge() {
        let rules = guard_rules(&NetworkConfig::default());
        let text: Vec<String> = rules
            .iter()
            .map(|(chain, r)| format!("-A {chain} {}", r.join(" ")))
            .collect();
        assert_eq!(
            text,
            [
                "-A TRELLIS-FWD-trellis0 -i trellis0 -o trellis0 -j ACCEPT",
                "-A TRELLIS-FWD-trellis0 -i trellis0 ! -o trellis0 -j DROP",
                "-A TRELLIS-FWD-trellis0 -o trellis0 ! -i trellis0 -j DROP",
                "-A TRELLIS-IN-trellis0 -i trellis0 -d 10.241.0.1/32 -j ACCEPT",
                "-A TRELLIS-IN-trellis0 -i trellis0 -j DROP",
            ]
        );
    }

    #[test]
    fn bad_names_and_sizes_are_refused() {
        let long = NetworkConfig {
            bridge: "a-very-long-bridge".into(),
            ..NetworkConfig::default()
        };
        assert!(long.validate().is_err());
        let tiny = NetworkConfig {
            subnet: "10.9.9.0/31".parse().unwrap(),
            ..NetworkConfig::default()
        };
        assert!(tiny.validate().is_err());
    }
}
