//! Each pod's `/etc/resolv.conf`: `/etc/netns/<netns>/resolv.conf`, which `ip netns exec`
//! mounts over the host's for every process started in the pod. The nameserver is the
//! bridge address; with DNS capture the query never gets there — it is redirected to the
//! sidecar's DNS proxy (15053) inside the pod — and without it, nothing answers on the
//! bridge and lookups fail at once. The search path and `ndots:5` are Kubernetes' for a
//! pod in `namespace`, so that `reviews`, `reviews.default` and the full name all resolve.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The text of the resolv.conf of a pod in `namespace`.
pub fn resolv_conf(namespace: &str, nameserver: Ipv4Addr) -> String {
    format!(
        "nameserver {nameserver}\nsearch {namespace}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
    )
}

/// `/etc/netns/<netns>`, where `ip netns exec` finds the pod's files.
pub fn dir(netns: &str) -> PathBuf {
    PathBuf::from("/etc/netns").join(netns)
}

/// Writes the pod's resolv.conf.
pub fn write(netns: &str, namespace: &str, nameserver: Ipv4Addr) -> Result<()> {
    let dir = dir(netns);
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("cannot create {}", dir.display())))?;
    let path = dir.join("resolv.conf");
    std::fs::write(&path, resolv_conf(namespace, nameserver))
        .map_err(Error::io(format!("cannot write {}", path.display())))
}

/// Removes the pod's `/etc/netns/<netns>` (whatever else was put there too).
pub fn remove(netns: &str) {
    let _ = std::fs::remove_dir_all(dir(netns));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_search_path_for_the_pods_namespace() {
        assert_eq!(
            resolv_conf("shop", Ipv4Addr::new(10, 241, 0, 1)),
            "nameserver 10.241.0.1\nsearch shop.svc.cluster.local svc.cluster.local \
             cluster.local\noptions ndots:5\n"
        );
        assert_eq!(
            dir("trellis-default-a"),
            PathBuf::from("/etc/netns/trellis-default-a")
        );
    }
}
