//! Retries and timeouts, Istio's way.
//!
//! Without `retries` a route gets Istio's default policy (or the mesh config's
//! `defaultHttpRetryPolicy`): 2 retries on `connect-failure,refused-stream,unavailable,
//! cancelled,retriable-status-codes`, avoiding hosts already tried (unless the destination
//! uses consistent hashing, where another host would break affinity), with up to 5 host
//! selection attempts. `attempts: 0` disables retries. Numbers in `retryOn` are retriable
//! status codes. Istio sets no route timeout by default: `0s` disables Envoy's 15 s.
//!
//! Istio up to 1.23 also listed 503 as a retriable status code by default; since 1.24
//! (`EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY`, on by default) it does not, because a 503 may
//! come after the upstream already acted on a non-idempotent request. We follow current
//! Istio: [`DEFAULT_RETRIABLE_STATUS_CODES`] is empty.

use envoy_types::pb::envoy::config::route::v3::RetryPolicy;
use envoy_types::pb::envoy::config::route::v3::RouteAction;
use envoy_types::pb::envoy::config::route::v3::retry_policy::{
    RetryBackOff, RetryHostPredicate, RetryPriority, retry_host_predicate, retry_priority,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;
use trellis_api::istio::networking::HttpRetry;

use crate::translate::pb_duration;

pub(super) const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
pub(super) const DEFAULT_ATTEMPTS: u32 = 2;
/// See the module documentation: Istio ≥ 1.24 adds no status code by default.
pub(super) const DEFAULT_RETRIABLE_STATUS_CODES: &[u32] = &[];
const HOST_SELECTION_RETRY_MAX_ATTEMPTS: i64 = 5;
const PREVIOUS_HOSTS: &str = "envoy.retry_host_predicates.previous_hosts";
const PREVIOUS_PRIORITIES: &str = "envoy.retry_priorities.previous_priorities";

/// The Envoy retry policy for an Istio one (`None`: Istio's default); `None` out means no
/// retries. `consistent_hash` drops the previous-hosts predicate from the default.
pub(super) fn retry_policy(
    input: Option<&HttpRetry>,
    consistent_hash: bool,
) -> Option<RetryPolicy> {
    let mut out = RetryPolicy {
        num_retries: Some(UInt32Value {
            value: DEFAULT_ATTEMPTS,
        }),
        retry_on: DEFAULT_RETRY_ON.to_string(),
        retriable_status_codes: DEFAULT_RETRIABLE_STATUS_CODES.to_vec(),
        host_selection_retry_max_attempts: HOST_SELECTION_RETRY_MAX_ATTEMPTS,
        retry_host_predicate: if consistent_hash {
            Vec::new()
        } else {
            vec![previous_hosts()]
        },
        ..Default::default()
    };
    let Some(input) = input else {
        return Some(out);
    };
    let attempts = u32::try_from(input.attempts).unwrap_or(0);
    if attempts == 0 {
        return None;
    }
    out.num_retries = Some(UInt32Value { value: attempts });
    if !input.retry_on.is_empty() {
        let (retry_on, codes) = parse_retry_on(&input.retry_on);
        out.retry_on = retry_on;
        out.retriable_status_codes = codes;
        if !out.retriable_status_codes.is_empty()
            && !out.retry_on.contains("retriable-status-codes")
        {
            if !out.retry_on.is_empty() {
                out.retry_on.push(',');
            }
            out.retry_on.push_str("retriable-status-codes");
        }
    }
    if let Some(per_try) = &input.per_try_timeout {
        out.per_try_timeout = Some(pb_duration(per_try.to_std()));
    }
    if let Some(ignore) = input.retry_ignore_previous_hosts {
        out.retry_host_predicate = if ignore {
            vec![previous_hosts()]
        } else {
            Vec::new()
        };
    }
    if input.retry_remote_localities == Some(true) {
        out.retry_priority = Some(RetryPriority {
            name: PREVIOUS_PRIORITIES.to_string(),
            config_type: Some(retry_priority::ConfigType::TypedConfig(pack_any(
                PreviousPrioritiesConfig {
                    update_frequency: 2,
                },
            ))),
        });
    }
    if let Some(backoff) = &input.backoff {
        out.retry_back_off = Some(RetryBackOff {
            base_interval: Some(pb_duration(backoff.to_std())),
            max_interval: None,
        });
    }
    Some(out)
}

fn previous_hosts() -> RetryHostPredicate {
    RetryHostPredicate {
        name: PREVIOUS_HOSTS.to_string(),
        config_type: Some(retry_host_predicate::ConfigType::TypedConfig(pack_any(
            PreviousHostsPredicate {},
        ))),
    }
}

/// Splits `retryOn` into Envoy's policy names and the HTTP status codes among them.
fn parse_retry_on(retry_on: &str) -> (String, Vec<u32>) {
    let mut names = Vec::new();
    let mut codes = Vec::new();
    for part in retry_on.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u32>() {
            Ok(code) if is_known_status(code) => codes.push(code),
            _ => names.push(part),
        }
    }
    (names.join(","), codes)
}

/// The status codes Go's `http.StatusText` knows, which is what Istio accepts as codes.
fn is_known_status(code: u32) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428
        | 429 | 431 | 451 | 500..=508 | 510 | 511)
}

/// Istio's route timeout: the VirtualService's, else none (`0s`), and the same bound on
/// gRPC's `grpc-timeout` header.
pub(super) fn set_timeout(action: &mut RouteAction, timeout: Option<&trellis_api::Duration>) {
    let timeout = pb_duration(timeout.map(|t| t.to_std()).unwrap_or_default());
    #[allow(deprecated)]
    {
        action.max_grpc_timeout = Some(timeout);
    }
    action.timeout = Some(timeout);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy() {
        let p = retry_policy(None, false).unwrap();
        assert_eq!(p.num_retries, Some(UInt32Value { value: 2 }));
        assert_eq!(p.retry_on, DEFAULT_RETRY_ON);
        assert_eq!(p.host_selection_retry_max_attempts, 5);
        assert_eq!(p.retry_host_predicate[0].name, PREVIOUS_HOSTS);
        assert!(
            retry_policy(None, true)
                .unwrap()
                .retry_host_predicate
                .is_empty()
        );
    }

    #[test]
    fn zero_attempts_disables() {
        let r = HttpRetry::default();
        assert_eq!(retry_policy(Some(&r), false), None);
    }

    #[test]
    fn status_codes_in_retry_on() {
        let r = HttpRetry {
            attempts: 3,
            retry_on: "gateway-error, 503 ,connect-failure,999".into(),
            per_try_timeout: Some(trellis_api::Duration::from_millis(1500)),
            retry_remote_localities: Some(true),
            backoff: Some(trellis_api::Duration::from_millis(25)),
            ..Default::default()
        };
        let p = retry_policy(Some(&r), false).unwrap();
        assert_eq!(p.num_retries, Some(UInt32Value { value: 3 }));
        assert_eq!(
            p.retry_on,
            "gateway-error,connect-failure,999,retriable-status-codes"
        );
        assert_eq!(p.retriable_status_codes, [503]);
        let per_try = p.per_try_timeout.unwrap();
        assert_eq!((per_try.seconds, per_try.nanos), (1, 500_000_000));
        assert_eq!(p.retry_priority.unwrap().name, PREVIOUS_PRIORITIES);
        assert!(p.retry_back_off.is_some());
    }

    #[test]
    fn only_codes() {
        let (names, codes) = parse_retry_on("503,504");
        assert_eq!((names.as_str(), codes), ("", vec![503, 504]));
        let r = HttpRetry {
            attempts: 1,
            retry_on: "503".into(),
            retry_ignore_previous_hosts: Some(false),
            ..Default::default()
        };
        let p = retry_policy(Some(&r), false).unwrap();
        assert_eq!(p.retry_on, "retriable-status-codes");
        assert!(p.retry_host_predicate.is_empty());
    }

    #[test]
    fn timeouts() {
        let mut a = RouteAction::default();
        set_timeout(&mut a, None);
        assert_eq!(a.timeout.map(|t| (t.seconds, t.nanos)), Some((0, 0)));
        set_timeout(&mut a, Some(&trellis_api::Duration::from_millis(500)));
        assert_eq!(
            a.timeout.map(|t| (t.seconds, t.nanos)),
            Some((0, 500_000_000))
        );
    }
}
