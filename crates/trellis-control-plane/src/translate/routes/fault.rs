//! Fault injection → per-route configuration of Envoy's fault filter
//! (`envoy.filters.http.fault`, which the listeners put before the router): a fixed delay
//! and an HTTP or gRPC abort, each with its percentage (`percentage`, or the deprecated
//! integer `percent` for delays). Faults Envoy's filter cannot express the way Istio means
//! them (exponential delays, HTTP/2 errors) fail the route rather than vanish.

use envoy_types::pb::envoy::extensions::filters::common::fault::v3::FaultDelay;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault};
use trellis_api::istio::networking::HttpFaultInjection;

use super::Skip;
use super::mirror::{hundredths, percent};
use crate::translate::pb_duration;

/// The fault filter's per-route config; `None` when the fault injects nothing.
pub(super) fn http_fault(input: &HttpFaultInjection) -> Result<Option<HttpFault>, Skip> {
    let mut out = HttpFault::default();
    if let Some(delay) = &input.delay {
        let Some(fixed) = &delay.fixed_delay else {
            return Err(Skip::new("only fixed delays can be injected"));
        };
        let percentage = match &delay.percentage {
            Some(p) => percent(p),
            None => hundredths(u32::try_from(delay.percent).unwrap_or(0)),
        };
        out.delay = Some(FaultDelay {
            percentage: Some(percentage),
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(pb_duration(fixed.to_std()))),
        });
    }
    if let Some(abort) = &input.abort {
        let error = if let Some(status) = abort.http_status {
            match u32::try_from(status) {
                Ok(s) if (200..600).contains(&s) => ErrorType::HttpStatus(s),
                _ => {
                    return Err(Skip::new(format!(
                        "abort status {status} is outside 200-599"
                    )));
                }
            }
        } else if let Some(name) = &abort.grpc_status {
            match grpc_status(name) {
                Some(code) => ErrorType::GrpcStatus(code),
                None => return Err(Skip::new(format!("unknown gRPC status {name:?}"))),
            }
        } else {
            return Err(Skip::new("only HTTP and gRPC aborts can be injected"));
        };
        out.abort = Some(FaultAbort {
            percentage: abort.percentage.as_ref().map(percent),
            error_type: Some(error),
            ..Default::default()
        });
    }
    Ok((out.delay.is_some() || out.abort.is_some()).then_some(out))
}

/// gRPC status codes by the names Istio accepts.
fn grpc_status(name: &str) -> Option<u32> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u32::try_from(i).ok())
}

#[cfg(test)]
mod tests {
    use trellis_api::istio::networking::{
        HttpFaultInjectionAbort, HttpFaultInjectionDelay, Percent,
    };

    use super::*;

    #[test]
    fn delay_and_abort() {
        let f = HttpFaultInjection {
            delay: Some(HttpFaultInjectionDelay {
                fixed_delay: Some(trellis_api::Duration::from_secs(7)),
                percentage: Some(Percent { value: 100.0 }),
                ..Default::default()
            }),
            abort: Some(HttpFaultInjectionAbort {
                http_status: Some(500),
                percentage: Some(Percent { value: 100.0 }),
                ..Default::default()
            }),
        };
        let out = http_fault(&f).unwrap().unwrap();
        assert_eq!(out.delay.unwrap().percentage.unwrap().numerator, 1_000_000);
        assert_eq!(
            out.abort.unwrap().error_type,
            Some(ErrorType::HttpStatus(500))
        );
    }

    #[test]
    fn grpc_and_unsupported() {
        let f = HttpFaultInjection {
            abort: Some(HttpFaultInjectionAbort {
                grpc_status: Some("UNAVAILABLE".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let out = http_fault(&f).unwrap().unwrap();
        assert_eq!(
            out.abort.unwrap().error_type,
            Some(ErrorType::GrpcStatus(14))
        );
        let f = HttpFaultInjection {
            delay: Some(HttpFaultInjectionDelay {
                exponential_delay: Some(trellis_api::Duration::from_secs(1)),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(http_fault(&f).is_err());
        assert_eq!(http_fault(&HttpFaultInjection::default()).unwrap(), None);
    }
}
