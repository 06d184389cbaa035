//! CPU pinning: on a machine with two or more CPUs the load generator gets the first CPU
//! to itself and everything under test (proxies, echo servers, control plane) shares the
//! rest, so the generator's own scheduling noise does not land on the proxies' cores and
//! the other way round. Children inherit the mask of the thread that starts them: the
//! main thread is pinned to the rest before anything starts, and the generator's threads
//! pin themselves with [`pin_load_thread`].

use std::sync::OnceLock;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// The load generator's CPUs, once [`apply`] has split them off.
static LOAD: OnceLock<CpuSet> = OnceLock::new();

/// Splits the CPUs this process may use: the first for the load, the rest for the calling
/// thread and whatever it starts. Returns how, for the report (`None` when not pinned).
pub fn apply(enabled: bool) -> Option<String> {
    if !enabled {
        return None;
    }
    let mine = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let cpus: Vec<usize> = (0..CpuSet::count())
        .filter(|c| mine.is_set(*c).unwrap_or(false))
        .collect();
    let (&load_cpu, rest) = cpus.split_first()?;
    if rest.is_empty() {
        return None;
    }
    let mut load = CpuSet::new();
    load.set(load_cpu).ok()?;
    let mut others = CpuSet::new();
    for c in rest {
        others.set(*c).ok()?;
    }
    sched_setaffinity(Pid::from_raw(0), &others).ok()?;
    LOAD.set(load).ok()?;
    let rest: Vec<String> = rest.iter().map(ToString::to_string).collect();
    Some(format!(
        "load generator on CPU {load_cpu}; proxies, servers and control plane on CPU {}",
        rest.join(",")
    ))
}

/// Moves the calling thread to the load generator's CPUs (nothing when not pinned).
pub fn pin_load_thread() {
    if let Some(load) = LOAD.get()
        && let Err(e) = sched_setaffinity(Pid::from_raw(0), load)
    {
        eprintln!("cannot pin a load generator thread: {e}");
    }
}
