//! Pods: one network namespace per workload, `trellis-<namespace>-<name>`, joined to the
//! bridge by a veth pair (`eth0` inside, `trl<hash>` on the host), with an address from the
//! pod subnet and a default route to the bridge address only (which also carries the
//! service VIPs of 240.240.0.0/16: capture redirects those before they leave the pod), and
//! its `/etc/netns/<netns>/resolv.conf` ([`crate::resolv`]).

use std::net::Ipv4Addr;

use crate::error::{Error, Result};
use crate::exec;
use crate::network::NetworkConfig;
use crate::process::ProcessRecord;
use crate::state::{PodRecord, StateDir};

/// The names of a pod's objects, from its Kubernetes-style name and namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNames {
    /// `namespace/name`, the key in the state file.
    pub key: String,
    pub netns: String,
    /// Host end of the veth pair (at most 15 characters, as the kernel requires).
    pub veth: String,
    /// Pod end before it is moved into the namespace and renamed `eth0`.
    pub peer: String,
}

/// The names for pod `name` in `namespace`; both must be DNS labels (as Kubernetes
/// requires of namespaces and pod names).
pub fn names(namespace: &str, name: &str) -> Result<PodNames> {
    for (what, value) in [("namespace", namespace), ("name", name)] {
        if !is_dns_label(value) {
            return Err(Error::Invalid(format!(
                "{what} {value:?}: must be a DNS label (lower-case letters, digits and '-', \
                 at most 63, starting and ending with a letter or digit)"
            )));
        }
    }
    let key = format!("{namespace}/{name}");
    let hash = fnv1a(key.as_bytes());
    Ok(PodNames {
        netns: format!("trellis-{namespace}-{name}"),
        veth: format!("trl{hash:08x}"),
        peer: format!("trp{hash:08x}"),
        key,
    })
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The network namespaces that exist now (`ip netns list`).
pub fn list_netns() -> Vec<String> {
    exec::run("ip", &["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Records and creates the pod `namespace/name` on `network`, owned by this process. A
/// recorded pod whose processes are all gone (a crash) is removed first; a running one, or
/// a namespace of the same name that nothing recorded, is an error. On failure nothing of
/// the pod is left.
pub fn create(
    state: &StateDir,
    network: &NetworkConfig,
    namespace: &str,
    name: &str,
) -> Result<PodRecord> {
    let names = names(namespace, name)?;
    let dir = state.join("pods").join(format!("{namespace}.{name}"));
    let (record, stale) = state.update(|s| {
        let stale = match s.pods.remove(&names.key) {
            Some(old) if old.in_use() => {
                let pid = old.supervisor.as_ref().map(|p| p.pid).unwrap_or_default();
                s.pods.insert(names.key.clone(), old);
                return Err(Error::Invalid(format!(
                    "pod {} is already running (supervisor pid {pid}); choose another \
                     --name, or stop it first",
                    names.key
                )));
            }
            Some(old) => Some(old),
            None if list_netns().contains(&names.netns) => {
                return Err(Error::Invalid(format!(
                    "network namespace {} exists but is not recorded in {}: another state \
                     directory uses it, or it outlived a crash; remove it with `ip netns \
                     del {}`",
                    names.netns,
                    state.path().display(),
                    names.netns
                )));
            }
            None => None,
        };
        let used: Vec<Ipv4Addr> = s.pods.values().map(|p| p.ip).collect();
        let ip = (0..)
            .map_while(|i| network.pod_address(i))
            .find(|ip| !used.contains(ip))
            .ok_or_else(|| Error::Failed(format!("pod subnet {} is full", network.subnet)))?;
        let record = PodRecord {
            netns: names.netns.clone(),
            veth: names.veth.clone(),
            ip,
            supervisor: ProcessRecord::this("supervisor"),
            processes: Vec::new(),
            dir: dir.clone(),
        };
        s.pods.insert(names.key.clone(), record.clone());
        Ok((record, stale))
    })?;
    if let Some(old) = stale {
        tracing::warn!(pod = %names.key, "removing what a crashed run left of this pod");
        remove_objects(&old);
    }
    if let Err(error) = make(&names, &record, network) {
        remove_objects(&record);
        let _ = forget(state, &names.key);
        return Err(error);
    }
    Ok(record)
}

fn make(names: &PodNames, record: &PodRecord, network: &NetworkConfig) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(&record.dir)
        .map_err(Error::io(format!("cannot create {}", record.dir.display())))?;
    // The sidecar (uid 1337) reads its bootstrap here.
    std::fs::set_permissions(&record.dir, std::fs::Permissions::from_mode(0o755))
        .map_err(Error::io(format!("cannot chmod {}", record.dir.display())))?;
    let ns = names.netns.as_str();
    let address = format!("{}/{}", record.ip, network.subnet.prefix);
    let gateway = network.gateway().to_string();
    exec::run("ip", &["netns", "add", ns])?;
    exec::run(
        "ip",
        &[
            "link",
            "add",
            &names.veth,
            "type",
            "veth",
            "peer",
            "name",
            &names.peer,
        ],
    )?;
    exec::run("ip", &["link", "set", &names.peer, "netns", ns])?;
    exec::run(
        "ip",
        &["link", "set", &names.veth, "master", &network.bridge],
    )?;
    exec::run("ip", &["link", "set", &names.veth, "up"])?;
    exec::run(
        "ip",
        &["-n", ns, "link", "set", &names.peer, "name", "eth0"],
    )?;
    exec::run("ip", &["-n", ns, "addr", "add", &address, "dev", "eth0"])?;
    exec::run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
    exec::run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
    exec::run(
        "ip",
        &["-n", ns, "route", "add", "default", "via", &gateway],
    )?;
    let namespace = names.key.split('/').next().unwrap_or("default");
    crate::resolv::write(ns, namespace, network.gateway())
}

/// Stops the pod's processes and removes its namespace, link and files; what is already
/// gone is skipped.
pub fn remove_objects(record: &PodRecord) {
    for process in &record.processes {
        process.stop(std::time::Duration::from_secs(5));
    }
    exec::run_quietly("ip", &["netns", "del", &record.netns]);
    exec::run_quietly("ip", &["link", "del", &record.veth]);
    crate::resolv::remove(&record.netns);
    let _ = std::fs::remove_dir_all(&record.dir);
}

/// Removes the pod `key` from the state.
pub fn forget(state: &StateDir, key: &str) -> Result<()> {
    state.update(|s| {
        s.pods.remove(key);
        Ok(())
    })
}

/// Adds a process to the pod's record (before anything depends on it being recorded).
pub fn record_process(state: &StateDir, key: &str, process: ProcessRecord) -> Result<()> {
    state.update(|s| {
        if let Some(pod) = s.pods.get_mut(key) {
            pod.processes.push(process);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_and_refuse_bad_labels() {
        let n = names("default", "reviews-v1").unwrap();
        assert_eq!(n.netns, "trellis-default-reviews-v1");
        assert_eq!(n.key, "default/reviews-v1");
        assert!(n.veth.len() <= 15 && n.peer.len() <= 15);
        assert_ne!(n.veth, names("default", "reviews-v2").unwrap().veth);
        for bad in ["", "Reviews", "-a", "a_b", "a/b", &"x".repeat(64)] {
            assert!(names("default", bad).is_err(), "{bad:?}");
        }
    }
}
