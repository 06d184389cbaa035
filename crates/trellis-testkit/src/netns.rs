//! Network namespaces for the capture tests: one made with `ip netns add` under a unique
//! name and deleted on drop (also when the test fails; its links, addresses and iptables
//! rules go with it). A thread can move into it ([`Netns::run`]): the sockets it opens and
//! the processes it starts then live in the namespace, so a test drives backends, the
//! control plane, the proxy and its client from inside without any helper binary.

use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A network namespace owned by the test.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// Why namespace tests cannot run here (`None`: they can): they need root, `ip` and
/// `iptables`.
pub fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string));
    if euid.as_deref() != Some("0") {
        return Some("not root (network namespaces and iptables need it)".into());
    }
    for tool in ["ip", "iptables"] {
        let found = Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

impl Netns {
    /// Creates `<prefix>-<pid>-<n>` with its loopback up.
    pub fn create(prefix: &str) -> Netns {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `args` inside the namespace (`ip netns exec`); panics with its stderr on failure.
    pub fn exec(&self, args: &[&str]) {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args));
    }

    /// Runs `body` on a thread moved into the namespace; its panic becomes the caller's.
    pub fn run<T: Send>(&self, body: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        std::thread::scope(|scope| {
            let inside = scope.spawn(move || {
                rustix::thread::move_into_link_name_space(
                    file.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .unwrap_or_else(|e| panic!("setns into {path}: {e}"));
                body()
            });
            inside
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread inside sees the namespace's own loopback only: a port bound outside is not
    /// there, and the namespace is gone after drop.
    #[test]
    fn threads_inside_have_their_own_network() {
        if let Some(why) = unavailable() {
            eprintln!("skipped: {why}");
            return;
        }
        let outside = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = outside.local_addr().unwrap().port();
        let ns = Netns::create("trellis-kit");
        let name = ns.name().to_string();
        let reached = ns.run(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(!reached, "port {port} of the host reached from inside");
        drop(ns);
        assert!(!std::path::Path::new(&format!("/var/run/netns/{name}")).exists());
    }
}
