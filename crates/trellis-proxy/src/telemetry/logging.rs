//! `/logging` on the admin port, like Envoy's: `GET` shows the active filter, `POST
//! /logging?level=debug` sets every module's level, `POST /logging?trellis_proxy::http=trace`
//! sets one module's (added to the filter, replacing an earlier directive for it).

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};

/// The process's log filter, changeable at run time through `/logging`. The binary owns
/// the tracing subscriber; this is the handle it lends the proxy.
pub trait LogLevel: Send + Sync + std::fmt::Debug {
    /// The current filter directives (`warn`, `warn,trellis_proxy::http=debug`).
    fn get(&self) -> String;
    /// Replaces the filter; the error says why the directives are invalid.
    fn set(&self, directives: &str) -> Result<(), String>;
}

/// Levels by Envoy's and tracing's names.
fn level(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "critical" => "error",
        "off" => "off",
        _ => return None,
    })
}

fn is_module(name: &str) -> bool {
    !name.is_empty()
        && name
            .split("::")
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

/// The filter after applying a `/logging` query to `current`.
pub fn apply(current: &str, query: &str) -> Result<String, String> {
    let mut directives: Vec<String> = current
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?}: expected name=level"))?;
        let lvl = level(value).ok_or_else(|| format!("{value:?} is not a log level"))?;
        if key == "level" {
            directives = vec![lvl.to_string()];
        } else if is_module(key) {
            let prefix = format!("{key}=");
            directives.retain(|d| !d.starts_with(&prefix));
            directives.push(format!("{key}={lvl}"));
        } else {
            return Err(format!("{key:?} is not a module path"));
        }
    }
    Ok(directives.join(","))
}

pub fn handle(logging: Option<&dyn LogLevel>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(logging) = logging else {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "log levels cannot be changed\n".into(),
        );
    };
    let query = req.uri().query().unwrap_or_default();
    if query.is_empty() {
        return text(
            StatusCode::OK,
            format!("active filter: {}\n", logging.get()),
        );
    }
    if req.method() != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST to change levels\n".into(),
        );
    }
    match apply(&logging.get(), query).and_then(|f| logging.set(&f).map(|()| f)) {
        Ok(f) => text(StatusCode::OK, format!("active filter: {f}\n")),
        Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_modules() {
        assert_eq!(apply("warn", "level=debug").unwrap(), "debug");
        assert_eq!(apply("warn", "level=warning").unwrap(), "warn");
        assert_eq!(
            apply("warn", "trellis_proxy::http=trace").unwrap(),
            "warn,trellis_proxy::http=trace"
        );
        assert_eq!(
            apply("warn,trellis_proxy::http=trace", "trellis_proxy::http=info").unwrap(),
            "warn,trellis_proxy::http=info"
        );
        assert_eq!(apply("info", "level=critical").unwrap(), "error");
        assert!(apply("warn", "level=loud").is_err());
        assert!(apply("warn", "a b=debug").is_err());
        assert!(apply("warn", "justaword").is_err());
    }
}
