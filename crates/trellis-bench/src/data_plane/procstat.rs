//! CPU time and memory of a process, from `/proc` (Linux). A sidecar may be a process
//! tree (Envoy under `trellis agent`, as Envoy under Istio's pilot-agent): [`read_tree`]
//! counts the whole tree, which is what the sidecar costs.

use std::time::Duration;

/// A reading of one process's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// User + system CPU time so far.
    pub cpu: Duration,
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Peak resident set size (VmHWM), KiB.
    pub peak_rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` when the process is gone.
pub fn read(pid: u32) -> Option<Reading> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields follow the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the name: state is field 3 of the man page, utime 14 and stime 15.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
    };
    Some(Reading {
        cpu: Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()),
        rss_kib: kib("VmRSS:").unwrap_or(0),
        peak_rss_kib: kib("VmHWM:").unwrap_or(0),
    })
}

/// [`read`] summed over `pid` and all its descendants (peak: the sum of each one's peak,
/// an upper bound); `None` when `pid` is gone.
pub fn read_tree(pid: u32) -> Option<Reading> {
    let mut total = read(pid)?;
    for child in descendants(pid) {
        if let Some(r) = read(child) {
            total.cpu += r.cpu;
            total.rss_kib += r.rss_kib;
            total.peak_rss_kib += r.peak_rss_kib;
        }
    }
    Some(total)
}

/// Every process below `pid`, from each process's parent in `/proc/*/stat`.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| Some((p, parent(p)?)))
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (child, _) in parents.iter().filter(|(_, parent)| *parent == p) {
            out.push(*child);
            frontier.push(*child);
        }
    }
    out
}

fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let r = read(std::process::id()).expect("own /proc entry");
        assert!(r.rss_kib > 0);
        assert!(r.peak_rss_kib >= r.rss_kib);
    }

    #[test]
    fn a_tree_counts_its_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id();
        assert!(descendants(me).contains(&child.id()));
        let tree = read_tree(me).unwrap();
        let alone = read(me).unwrap();
        assert!(tree.rss_kib > alone.rss_kib, "{tree:?} vs {alone:?}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
