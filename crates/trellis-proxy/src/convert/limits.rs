//! The connection manager's bounds on bad input → [`crate::limits::HttpLimits`]:
//! `max_request_headers_kb`, `request_headers_timeout`,
//! `common_http_protocol_options.headers_with_underscores_action` and
//! `http2_protocol_options.max_concurrent_streams`; every other field of those two option
//! messages is NACKed.

use envoy_types::pb::envoy::config::core::v3::http_protocol_options::HeadersWithUnderscoresAction;
use envoy_types::pb::envoy::config::core::v3::{Http2ProtocolOptions, HttpProtocolOptions};
use envoy_types::pb::google::protobuf::{Duration as PbDuration, UInt32Value};

use super::{Result, duration};
use crate::limits::{HttpLimits, Underscores};

pub fn http_limits(
    max_request_headers_kb: Option<&UInt32Value>,
    request_headers_timeout: Option<&PbDuration>,
    common: Option<&HttpProtocolOptions>,
    http2: Option<&Http2ProtocolOptions>,
    p: &str,
) -> Result<HttpLimits> {
    let mut limits = HttpLimits::default();
    if let Some(kb) = max_request_headers_kb {
        if kb.value == 0 || kb.value > 8192 {
            return Err(format!(
                "{p}.max_request_headers_kb: {} is not in 1..=8192",
                kb.value
            ));
        }
        limits.max_request_headers_kb = kb.value;
    }
    // 0 disables it in Envoy, where the stream idle timeout then ends slow headers: the
    // default here is that timeout.
    if let Some(t) = request_headers_timeout
        .map(duration)
        .filter(|t| !t.is_zero())
    {
        limits.request_headers_timeout = t;
    }
    if let Some(c) = common {
        let only = HttpProtocolOptions {
            headers_with_underscores_action: c.headers_with_underscores_action,
            ..Default::default()
        };
        if *c != only {
            return Err(format!(
                "{p}.common_http_protocol_options: only headers_with_underscores_action is implemented"
            ));
        }
        limits.underscores = match HeadersWithUnderscoresAction::try_from(
            c.headers_with_underscores_action,
        ) {
            Ok(HeadersWithUnderscoresAction::Allow) => Underscores::Allow,
            Ok(HeadersWithUnderscoresAction::RejectRequest) => Underscores::Reject,
            Ok(HeadersWithUnderscoresAction::DropHeader) => Underscores::Drop,
            Err(_) => {
                return Err(format!(
                    "{p}.common_http_protocol_options.headers_with_underscores_action: unknown value"
                ));
            }
        };
    }
    if let Some(h2) = http2 {
        let only = Http2ProtocolOptions {
            max_concurrent_streams: h2.max_concurrent_streams,
            ..Default::default()
        };
        if *h2 != only {
            return Err(format!(
                "{p}.http2_protocol_options: only max_concurrent_streams is implemented"
            ));
        }
        if let Some(n) = &h2.max_concurrent_streams {
            limits.max_concurrent_streams = n.value.max(1);
        }
    }
    Ok(limits)
}
