//! Where a proxy spends its CPU under load: `perf record` on its process while the
//! headline load runs, then the hottest symbols (self time) from `perf report`. Skipped,
//! with the reason, when `perf` is missing or not permitted.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

/// The hottest symbols of one process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Profile {
    /// `(percent of samples, symbol)`, hottest first.
    pub symbols: Vec<(f64, String)>,
    /// Why there is no profile, when there is none.
    pub skipped: Option<String>,
}

/// Starts `perf record` on `pid` for `duration`; call [`finish`] on the handle after the
/// load has run.
pub fn start(pid: u32, duration: Duration, out: &Path) -> Result<std::process::Child, String> {
    Command::new("perf")
        .args(["record", "-F", "499", "-g", "-o"])
        .arg(out)
        .args(["-p", &pid.to_string(), "--", "sleep"])
        .arg(duration.as_secs().max(1).to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("perf not available: {e}"))
}

/// Waits for `perf record` and reads the top `n` symbols by self time.
pub fn finish(mut record: std::process::Child, data: &Path, n: usize) -> Profile {
    let recorded = record.wait().map(|s| s.success()).unwrap_or(false);
    if !recorded {
        return skipped("perf record failed (permissions? kernel.perf_event_paranoid)");
    }
    let report = Command::new("perf")
        .args([
            "report",
            "--stdio",
            "--no-children",
            "--sort",
            "symbol",
            "-g",
            "none",
        ])
        .args(["--percent-limit", "0.5", "-i"])
        .arg(data)
        .output();
    match report {
        Ok(out) if out.status.success() => Profile {
            symbols: parse_report(&String::from_utf8_lossy(&out.stdout), n),
            skipped: None,
        },
        Ok(out) => skipped(&String::from_utf8_lossy(&out.stderr)),
        Err(e) => skipped(&e.to_string()),
    }
}

fn skipped(why: &str) -> Profile {
    Profile {
        symbols: Vec::new(),
        skipped: Some(why.trim().to_string()),
    }
}

/// Lines like `    12.34%  [.] hyper::proto::h1::role::parse_headers` → (12.34, symbol).
fn parse_report(text: &str, n: usize) -> Vec<(f64, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (pct, rest) = l.split_once('%')?;
            let pct: f64 = pct.trim().parse().ok()?;
            let rest = rest
                .trim()
                .trim_start_matches("[.]")
                .trim_start_matches("[k]")
                .trim();
            // perf pads the symbol column and may append placeholder columns (`-  -`).
            let symbol = rest.split("  ").next().unwrap_or_default().trim();
            (!symbol.is_empty()).then(|| (pct, symbol.to_string()))
        })
        .take(n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_perf_report_lines() {
        let text = "# comment\n#\n    12.50%  [.] hyper::proto::h1::role::parse\n     3.10%  [k] tcp_sendmsg        -      -\n\n";
        assert_eq!(
            parse_report(text, 10),
            vec![
                (12.5, "hyper::proto::h1::role::parse".to_string()),
                (3.1, "tcp_sendmsg".to_string())
            ]
        );
    }
}
