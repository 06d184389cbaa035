//! The local runtime as the end-to-end tests drive it (`local_mesh.rs`, `dns.rs`,
//! `authz_source_ip.rs`): a mesh of the test's own — `trellis up` on the test's bridge and
//! subnet with free ports, state, config and logs in a temporary directory — workloads
//! started with `trellis run`, and `trellis down` on drop, also when the test fails.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use trellis_local::state::StateDir;
use trellis_testkit::{Process, free_port, temp_dir, wait_until};

pub const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
/// How long pods and config may take to come up and converge.
pub const CONVERGE: Duration = Duration::from_secs(40);

/// The local mesh's state directory, config (`config/`) and logs; `trellis down` on drop.
pub struct Local {
    dir: tempfile::TempDir,
    /// The control plane's debug address `up` gives it.
    pub debug: SocketAddr,
    xds_port: u16,
}

impl Local {
    pub fn new() -> Local {
        let localhost: IpAddr = "127.0.0.1".parse().unwrap();
        let dir = temp_dir();
        std::fs::create_dir(dir.path().join("config")).unwrap();
        Local {
            debug: SocketAddr::new(localhost, free_port(localhost)),
            xds_port: free_port(localhost),
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn trellis(&self, args: &[&str]) -> Command {
        let mut command = Command::new(TRELLIS);
        command
            .args(args)
            .env("TRELLIS_STATE_DIR", self.path("state"));
        command
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.trellis(args).output().expect("run trellis")
    }

    pub fn state(&self) -> StateDir {
        StateDir::open(self.path("state")).unwrap()
    }

    /// `trellis up` on `bridge` and `subnet`, with this mesh's ports.
    pub fn up(&self, bridge: &str, subnet: &str) {
        let up = self.output(&[
            "up",
            "--config",
            self.path("config").to_str().unwrap(),
            "--bridge",
            bridge,
            "--subnet",
            subnet,
            "--xds-port",
            &self.xds_port.to_string(),
            "--debug-address",
            &self.debug.to_string(),
        ]);
        assert!(up.status.success(), "trellis up: {}", text(&up));
    }

    /// `trellis run` of `namespace/name` in the background, logging to
    /// `NAMESPACE-NAME.log`.
    pub fn run(&self, namespace: &str, name: &str, flags: &[&str], app: &[&str]) -> Process {
        let mut args = vec!["run", "--name", name, "-n", namespace];
        args.extend_from_slice(flags);
        args.push("--");
        args.extend_from_slice(app);
        Process::start(
            &format!("{namespace}/{name}"),
            self.trellis(&args),
            &self.path(&format!("{namespace}-{name}.log")),
        )
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let out = self.output(&["down"]);
        if !out.status.success() {
            eprintln!("trellis down: {}", text(&out));
        }
    }
}

/// A command's stdout and stderr, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits until the pod `namespace/name` of `process` runs its app; panics with the log's
/// tail if `trellis run` exits first.
pub fn wait_for_pod(process: &mut Process, state: &StateDir, key: &str) {
    wait_until(&format!("pod {key} running"), CONVERGE, || {
        if !process.running() {
            panic!("trellis run {key} exited\n{}", process.tail(30));
        }
        match state.load().map_err(|e| e.to_string())?.pods.get(key) {
            Some(p) if p.processes.iter().any(|r| r.role == "app") => Ok(()),
            _ => Err("app not started yet".to_string()),
        }
    });
}
