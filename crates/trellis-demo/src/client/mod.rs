//! A client that sends a fixed number of requests and reports what came back (see
//! [`Report`]): how tests and the demo check that traffic split, failed or was denied as
//! configured. Each of `concurrency` workers keeps one HTTP/1.1 connection alive and opens
//! a new one when the server closes it; with a rate, request `i` is not sent before
//! `i / rate` seconds after the start. Latency is measured from the actual send.

pub mod report;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;

pub use report::{ErrorKind, Latency, Outcome, Report};

/// A client run's parameters.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub target: Target,
    pub count: u64,
    /// Requests per second over the whole run; `None`: as fast as the workers go.
    pub rate: Option<f64>,
    pub concurrency: usize,
    pub method: Method,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// Deadline of each request, from connect to the end of the body.
    pub timeout: Duration,
    /// Count responses by this header's value.
    pub group_by: Option<HeaderName>,
}

impl ClientConfig {
    /// `count` sequential GETs of `target` with a 5 s timeout.
    pub fn new(target: Target, count: u64) -> ClientConfig {
        ClientConfig {
            target,
            count,
            rate: None,
            concurrency: 1,
            method: Method::GET,
            headers: Vec::new(),
            body: Bytes::new(),
            timeout: Duration::from_secs(5),
            group_by: None,
        }
    }
}

/// A bad client argument.
#[derive(Debug, thiserror::Error)]
pub enum ArgError {
    #[error("invalid URL {0:?}: expected http://HOST[:PORT][/PATH]")]
    Url(String),
    #[error("invalid header {0:?}: expected NAME:VALUE")]
    Header(String),
    #[error("invalid duration {0:?}: expected e.g. 5s, 250ms, 1.5s, 2m")]
    Duration(String),
    #[error("invalid rate {0:?}: expected requests per second, e.g. 50 or 50/s")]
    Rate(String),
}

/// Where requests go: the address dialled, the `Host` header and the request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port` to connect to.
    pub address: String,
    /// The `Host` header (the URL's authority as written).
    pub host: String,
    pub path_and_query: String,
}

impl Target {
    /// Parses an `http://` URL.
    pub fn parse(url: &str) -> Result<Target, ArgError> {
        let bad = || ArgError::Url(url.to_string());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("http") {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?;
        if authority.host().is_empty() || authority.as_str().contains('@') {
            return Err(bad());
        }
        let port = authority.port_u16().unwrap_or(80);
        Ok(Target {
            address: format!("{}:{port}", authority.host()),
            host: authority.as_str().to_string(),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        })
    }
}

/// Parses `NAME:VALUE` (spaces around the value trimmed).
pub fn parse_header(arg: &str) -> Result<(HeaderName, HeaderValue), ArgError> {
    let bad = || ArgError::Header(arg.to_string());
    let (name, value) = arg.split_once(':').ok_or_else(bad)?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
    Ok((name, value))
}

/// Parses `5s`, `250ms`, `1.5s`, `2m`, or a bare number of seconds.
pub fn parse_duration(arg: &str) -> Result<Duration, ArgError> {
    let bad = || ArgError::Duration(arg.to_string());
    let (number, unit) = match arg.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => arg.split_at(at),
        None => (arg, "s"),
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

/// Parses a positive rate in requests per second: `50`, `50/s`, `0.5`.
pub fn parse_rate(arg: &str) -> Result<f64, ArgError> {
    let number = arg.strip_suffix("/s").unwrap_or(arg);
    match number.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(ArgError::Rate(arg.to_string())),
    }
}

/// Sends `config.count` requests and aggregates what came back.
pub async fn run(config: &ClientConfig) -> Report {
    let config = Arc::new(config.clone());
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers = u64::try_from(config.concurrency.max(1))
        .unwrap_or(1)
        .min(config.count.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        tasks.spawn(worker(config.clone(), next.clone(), start));
    }
    let mut outcomes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(mut mine) => outcomes.append(&mut mine),
            Err(error) => tracing::warn!(%error, "client worker failed"),
        }
    }
    let group_by = config.group_by.as_ref().map(HeaderName::as_str);
    Report::new(&outcomes, group_by, start.elapsed())
}

async fn worker(config: Arc<ClientConfig>, next: Arc<AtomicU64>, start: Instant) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut connection = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= config.count {
            return outcomes;
        }
        if let Some(rate) = config.rate.filter(|r| *r > 0.0) {
            let due = Duration::try_from_secs_f64(i as f64 / rate).unwrap_or(Duration::MAX);
            if let Some(at) = start.checked_add(due) {
                tokio::time::sleep_until(at.into()).await;
            }
        }
        outcomes.push(one(&config, &mut connection).await);
    }
}

type Sender = SendRequest<Full<Bytes>>;

async fn one(config: &ClientConfig, connection: &mut Option<Sender>) -> Outcome {
    let began = Instant::now();
    match tokio::time::timeout(config.timeout, exchange(config, connection)).await {
        Ok(Ok((status, group))) => Outcome::Response {
            status,
            group,
            latency: began.elapsed(),
        },
        Ok(Err(kind)) => {
            *connection = None;
            Outcome::Error(kind)
        }
        Err(_) => {
            *connection = None;
            Outcome::Error(ErrorKind::Timeout)
        }
    }
}

async fn exchange(
    config: &ClientConfig,
    connection: &mut Option<Sender>,
) -> Result<(u16, Option<String>), ErrorKind> {
    let reusable = match connection.as_mut() {
        Some(sender) => sender.ready().await.is_ok(),
        None => false,
    };
    if !reusable {
        *connection = Some(connect(&config.target.address).await?);
    }
    let sender = connection.as_mut().ok_or(ErrorKind::Other)?;
    let response = sender
        .send_request(request(config)?)
        .await
        .map_err(|e| classify(&e))?;
    let status = response.status().as_u16();
    let group = config
        .group_by
        .as_ref()
        .and_then(|name| response.headers().get(name))
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| classify(&e))?;
    Ok((status, group))
}

fn request(config: &ClientConfig) -> Result<Request<Full<Bytes>>, ErrorKind> {
    let mut request = Request::builder()
        .method(config.method.clone())
        .uri(config.target.path_and_query.as_str())
        .body(Full::new(config.body.clone()))
        .map_err(|_| ErrorKind::Other)?;
    let headers = request.headers_mut();
    let host = HeaderValue::from_str(&config.target.host).map_err(|_| ErrorKind::Other)?;
    headers.insert(HOST, host);
    for (name, value) in &config.headers {
        if name == HOST {
            headers.insert(HOST, value.clone());
        } else {
            headers.append(name.clone(), value.clone());
        }
    }
    Ok(request)
}

async fn connect(address: &str) -> Result<Sender, ErrorKind> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
            _ => ErrorKind::ConnectError,
        })?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| classify(&e))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Resets, aborts, broken pipes and connections closed mid-exchange are `Reset`.
fn classify(error: &hyper::Error) -> ErrorKind {
    if error.is_incomplete_message() || error.is_canceled() {
        return ErrorKind::Reset;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as Io;
            return match io.kind() {
                Io::ConnectionReset
                | Io::ConnectionAborted
                | Io::BrokenPipe
                | Io::UnexpectedEof => ErrorKind::Reset,
                Io::TimedOut => ErrorKind::Timeout,
                _ => ErrorKind::Other,
            };
        }
        source = cause.source();
    }
    ErrorKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_address_host_and_path() {
        let t = Target::parse("http://reviews:9080/reviews/0?x=1").unwrap();
        assert_eq!(t.address, "reviews:9080");
        assert_eq!(t.host, "reviews:9080");
        assert_eq!(t.path_and_query, "/reviews/0?x=1");
        let t = Target::parse("http://productpage").unwrap();
        assert_eq!(t.address, "productpage:80");
        assert_eq!(t.host, "productpage");
        assert_eq!(t.path_and_query, "/");
        let t = Target::parse("http://[::1]:8000/get").unwrap();
        assert_eq!(t.address, "[::1]:8000");
        for bad in ["https://x/", "x:80", "", "http://", "http://u@x/", "/path"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_durations_and_rates_parse() {
        let (name, value) = parse_header("end-user: jason").unwrap();
        assert_eq!(
            (name.as_str(), value.to_str().unwrap()),
            ("end-user", "jason")
        );
        assert!(parse_header("no-colon").is_err());
        assert!(parse_header("bad name: x").is_err());
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        for bad in ["", "s", "-1s", "5h", "1e400s", "NaNs"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_rate("50/s").unwrap(), 50.0);
        assert_eq!(parse_rate("0.5").unwrap(), 0.5);
        for bad in ["0", "-1", "inf", "x/s", "/s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
