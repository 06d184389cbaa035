//! The client workload: requests to its sidecar's egress listener, each on a new
//! connection, with a timeout; a batch runs with bounded concurrency on one runtime.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;

use super::Request;
use super::backend::WORKLOAD_HEADER;

/// What one request got.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `None` when no response came (connection refused, reset, client timeout).
    pub status: Option<u16>,
    /// Response headers, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// From sending to the end of the body (only ever used as a lower bound).
    pub elapsed: Duration,
    pub error: Option<String>,
}

impl Outcome {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The workload that answered (`SERVICE-VERSION`), if one did.
    pub fn backend(&self) -> Option<&str> {
        self.header(WORKLOAD_HEADER)
    }

    /// `200 reviews-v1`, `502`, `error: ...`: how outcomes are tallied.
    pub fn key(&self) -> String {
        match (self.status, self.backend(), &self.error) {
            (Some(s), Some(b), _) => format!("{s} {b}"),
            (Some(s), None, _) => s.to_string(),
            (None, _, Some(e)) => format!("error: {e}"),
            (None, _, None) => "error".into(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} after {:?}", self.key(), self.elapsed)?;
        if self.status.is_some() {
            let body: String = self.body.chars().take(120).collect();
            write!(f, " headers {:?} body {body:?}", self.headers)?;
        }
        Ok(())
    }
}

/// Sends `count` copies of `request` to `address`, at most `concurrency` at once.
pub fn send_batch(
    address: SocketAddr,
    request: &Request,
    count: usize,
    concurrency: usize,
) -> Vec<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    runtime.block_on(async {
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let permits = permits.clone();
            let request = request.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore");
                send(address, &request).await
            }));
        }
        let mut out = Vec::with_capacity(count);
        for task in tasks {
            out.push(task.await.expect("request task"));
        }
        out
    })
}

/// One request, on its own connection, within `request.timeout`.
pub async fn send(address: SocketAddr, request: &Request) -> Outcome {
    let start = Instant::now();
    let result = tokio::time::timeout(request.timeout, exchange(address, request))
        .await
        .unwrap_or_else(|_| Err(format!("no response within {:?}", request.timeout)));
    let elapsed = start.elapsed();
    match result {
        Ok((status, headers, body)) => Outcome {
            status: Some(status),
            headers,
            body,
            elapsed,
            error: None,
        },
        Err(e) => Outcome {
            status: None,
            headers: Vec::new(),
            body: String::new(),
            elapsed,
            error: Some(e),
        },
    }
}

type Exchange = (u16, Vec<(String, String)>, String);

async fn exchange(address: SocketAddr, request: &Request) -> Result<Exchange, String> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect {address}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(request.method)
        .uri(&request.path)
        .header("host", &request.host);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let req = builder
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}
