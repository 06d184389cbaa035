//! Logging failed handshakes without letting a retry storm flood the log. Every failure is
//! counted (`ssl.connection_error`, `downstream_cx_transport_socket_connect_timeout`, the
//! cluster's `upstream_cx_connect_fail`); the log gets the first failure of each reason as
//! a warning, then at most one warning per reason every [`WARN_EVERY`] saying how many
//! were held back in between, which are logged at debug. The decision ([`FailureLog::level`])
//! is pure over the time it is given.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The least time between two warnings for one reason.
pub const WARN_EVERY: Duration = Duration::from_secs(60);
/// The most reasons remembered; reasons may carry text a peer chooses (names in its
/// certificate), so beyond this they share one more entry.
const MAX_REASONS: usize = 64;
/// The longest reason key kept; the rest of a message is detail, not a different reason.
const MAX_REASON_LEN: usize = 64;
const OTHER: &str = "other";

/// How to log one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A warning; `held_back` failures of the same reason were logged at debug since the
    /// last one.
    Warn {
        held_back: u64,
    },
    Debug,
}

/// The per-reason state of one TLS context's failures.
#[derive(Debug, Default)]
pub struct FailureLog {
    reasons: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    warned: Instant,
    held_back: u64,
}

impl FailureLog {
    /// How a failure for `reason` happening `now` is logged.
    pub fn level(&self, reason: &str, now: Instant) -> Level {
        let mut reasons = self.reasons.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key = reason_key(reason);
        if !reasons.contains_key(key) && reasons.len() >= MAX_REASONS {
            reasons.retain(|_, e| now.saturating_duration_since(e.warned) < WARN_EVERY);
            if reasons.len() >= MAX_REASONS {
                key = OTHER;
            }
        }
        match reasons.get_mut(key) {
            Some(e) if now.saturating_duration_since(e.warned) < WARN_EVERY => {
                e.held_back += 1;
                Level::Debug
            }
            Some(e) => {
                let held_back = std::mem::take(&mut e.held_back);
                e.warned = now;
                Level::Warn { held_back }
            }
            None => {
                reasons.insert(
                    key.to_string(),
                    Entry {
                        warned: now,
                        held_back: 0,
                    },
                );
                Level::Warn { held_back: 0 }
            }
        }
    }
}

/// The part of a failure's description that names its reason: up to the first quote (what
/// follows is the peer's text) and at most [`MAX_REASON_LEN`] bytes.
fn reason_key(reason: &str) -> &str {
    let end = reason.find('"').unwrap_or(reason.len());
    let mut end = end.min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// The reason of a failed handshake's I/O error: the TLS error when there is one
/// (`InvalidCertificate(UnknownIssuer)`, `NoCertificatesPresented`...), else the I/O error
/// kind (`UnexpectedEof`, `ConnectionReset`...).
pub fn io_reason(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => format!("{tls:?}"),
        None => format!("{:?}", e.kind()),
    }
}

/// Logs a failure at `level` ([`FailureLog::level`]): `log_failure!(level, "message";
/// field = %value, ...)`, with `held_back` added to warnings.
macro_rules! log_failure {
    ($level:expr, $what:literal; $($field:tt)*) => {
        match $level {
            $crate::tls::failures::Level::Warn { held_back } => {
                tracing::warn!($($field)*, held_back, $what)
            }
            $crate::tls::failures::Level::Debug => tracing::debug!($($field)*, $what),
        }
    };
}
pub(crate) use log_failure;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_per_reason_warns_then_one_per_period() {
        let log = FailureLog::default();
        let t0 = Instant::now();
        let later = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(log.level("UnexpectedEof", t0), Level::Warn { held_back: 0 });
        assert_eq!(log.level("UnexpectedEof", later(1)), Level::Debug);
        assert_eq!(log.level("UnexpectedEof", later(59)), Level::Debug);
        // Another reason is visible at once.
        assert_eq!(
            log.level("InvalidCertificate(UnknownIssuer)", later(2)),
            Level::Warn { held_back: 0 }
        );
        // A period later the reason warns again and says how many were held back.
        assert_eq!(
            log.level("UnexpectedEof", later(60)),
            Level::Warn { held_back: 2 }
        );
        assert_eq!(log.level("UnexpectedEof", later(61)), Level::Debug);
        assert_eq!(
            log.level("UnexpectedEof", later(200)),
            Level::Warn { held_back: 1 }
        );
    }

    #[test]
    fn peer_text_does_not_make_new_reasons() {
        let log = FailureLog::default();
        let t0 = Instant::now();
        let san =
            |s: &str| format!("InvalidCertificate(Other(OtherError(\"{s} is not expected\")))");
        assert_eq!(
            log.level(&san("spiffe://a"), t0),
            Level::Warn { held_back: 0 }
        );
        assert_eq!(log.level(&san("spiffe://b"), t0), Level::Debug);
        // However many reasons arrive, the state stays bounded and still answers.
        for i in 0..1000 {
            log.level(&format!("reason {i}"), t0);
        }
        assert!(log.reasons.lock().unwrap().len() <= MAX_REASONS + 1);
        assert_eq!(log.level("reason 999", t0), Level::Debug);
        // Once the period passed, old reasons make room again.
        assert_eq!(
            log.level("fresh", t0 + WARN_EVERY),
            Level::Warn { held_back: 0 }
        );
    }

    #[test]
    fn reasons_name_the_tls_error_else_the_io_kind() {
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::NoCertificatesPresented,
        );
        assert_eq!(io_reason(&tls), "NoCertificatesPresented");
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(io_reason(&eof), "UnexpectedEof");
        assert_eq!(reason_key(&format!("a{}", "é".repeat(40))).len(), 63);
    }
}
