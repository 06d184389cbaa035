//! Scripted workloads: HTTP/1.1 servers on their own thread that answer as their
//! [`Behaviour`] says, name themselves in a header and the body, and count every request
//! and its `Host` (what a retry or a mirror looks like from the upstream side).

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use super::Behaviour;

/// The response header naming the workload that answered.
pub const WORKLOAD_HEADER: &str = "x-trellis-workload";

/// What a workload saw.
#[derive(Debug, Default)]
pub struct Seen {
    hits: AtomicU64,
    hosts: Mutex<Vec<String>>,
}

impl Seen {
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Every `Host` seen so far, in order.
    pub fn hosts(&self) -> Vec<String> {
        self.hosts.lock().expect("hosts").clone()
    }
}

/// A running scripted workload; stops when dropped.
#[derive(Debug)]
pub struct ScriptedBackend {
    pub name: String,
    pub address: SocketAddr,
    pub seen: Arc<Seen>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedBackend {
    pub fn start(address: SocketAddr, name: &str, behaviour: Behaviour) -> ScriptedBackend {
        let listener = TcpListener::bind(address)
            .unwrap_or_else(|e| panic!("workload {name} cannot listen on {address}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let address = listener.local_addr().expect("local address");
        let seen = Arc::new(Seen::default());
        let (stop, mut stopped) = oneshot::channel::<()>();
        let state = (name.to_string(), behaviour, seen.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let state = Arc::new(state);
                loop {
                    let (socket, _) = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok(a) => a,
                            Err(_) => continue,
                        },
                        _ = &mut stopped => return,
                    };
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(answer(&state, &req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(socket), service)
                            .await;
                    });
                }
            });
        });
        ScriptedBackend {
            name: name.to_string(),
            address,
            seen,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

async fn answer<B>(
    (name, behaviour, seen): &(String, Behaviour, Arc<Seen>),
    req: &hyper::Request<B>,
) -> hyper::Response<Full<Bytes>> {
    let host = req
        .headers()
        .get("host")
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .unwrap_or_else(|| {
            req.uri()
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_default()
        });
    seen.hosts.lock().expect("hosts").push(host);
    // The number of this request, from 0.
    let n = seen.hits.fetch_add(1, Ordering::SeqCst);
    let status = match *behaviour {
        Behaviour::Ok => 200,
        Behaviour::Slow(d) => {
            tokio::time::sleep(d).await;
            200
        }
        Behaviour::FailThenOk { failures, status } => {
            if n % (u64::from(failures) + 1) < u64::from(failures) {
                status
            } else {
                200
            }
        }
        Behaviour::Fail(status) => status,
    };
    hyper::Response::builder()
        .status(status)
        .header(WORKLOAD_HEADER, name.as_str())
        .body(Full::new(Bytes::from(name.clone())))
        .expect("response")
}

impl Drop for ScriptedBackend {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Request, client};

    #[test]
    fn fails_then_succeeds_in_cycles_and_counts_hosts() {
        let backend = ScriptedBackend::start(
            "127.0.0.1:0".parse().unwrap(),
            "flaky-v1",
            Behaviour::FailThenOk {
                failures: 2,
                status: 503,
            },
        );
        let request = Request::get("flaky", 9080, "/");
        let statuses: Vec<Option<u16>> = client::send_batch(backend.address, &request, 6, 1)
            .iter()
            .map(|o| o.status)
            .collect();
        let (f, ok) = (Some(503), Some(200));
        assert_eq!(statuses, [f, f, ok, f, f, ok]);
        assert_eq!(backend.seen.hits(), 6);
        assert_eq!(backend.seen.hosts(), vec!["flaky".to_string(); 6]);
    }
}
