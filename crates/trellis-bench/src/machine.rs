//! The machine and software a run was measured on, printed with every report.

use std::process::Command;

/// One line per fact: cores, CPU model, memory, versions.
pub fn describe() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let logical = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let available = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
        })
        .unwrap_or_else(|| "unknown".into());
    let mut out = vec![
        ("cpu model".to_string(), model),
        (
            "cores".to_string(),
            format!("{logical} logical in /proc/cpuinfo, {available} available to this process"),
        ),
        ("memory".to_string(), memory),
        (
            "trellis".to_string(),
            format!(
                "{} ({})",
                env!("CARGO_PKG_VERSION"),
                run("git", &["describe", "--always", "--dirty"]).unwrap_or_else(|| "no git".into())
            ),
        ),
        (
            "build".to_string(),
            if cfg!(debug_assertions) {
                "debug (figures not representative)"
            } else {
                "release"
            }
            .to_string(),
        ),
    ];
    if let Some(rustc) = run("rustc", &["--version"]) {
        out.push(("rustc".to_string(), rustc));
    }
    out.push(("os".to_string(), run("uname", &["-sr"]).unwrap_or_default()));
    out
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
