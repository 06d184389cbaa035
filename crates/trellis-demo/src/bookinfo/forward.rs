//! The request headers Bookinfo's apps copy onto the calls they make, so that tracing,
//! `x-request-id`, the signed-in user (`end-user`) and credentials follow the request
//! through the mesh. The list is the one Bookinfo's details and reviews keep, plus the
//! single `b3` header.

use hyper::header::HeaderMap;

/// Headers copied from an incoming request to the calls it causes.
pub const FORWARDED: &[&str] = &[
    "x-request-id",
    "x-ot-span-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "traceparent",
    "tracestate",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "sw8",
    "end-user",
    "user-agent",
    "cookie",
    "authorization",
    "jwt",
];

/// The headers of `incoming` named in `names`, every value kept.
pub fn select(incoming: &HeaderMap, names: &[&'static str]) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in names {
        for value in incoming.get_all(*name) {
            out.append(*name, value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn only_listed_headers_pass() {
        let mut incoming = HeaderMap::new();
        incoming.insert("x-request-id", HeaderValue::from_static("r1"));
        incoming.insert("x-b3-traceid", HeaderValue::from_static("t1"));
        incoming.insert("x-secret", HeaderValue::from_static("s"));
        incoming.insert("host", HeaderValue::from_static("productpage"));
        let out = select(&incoming, FORWARDED);
        assert_eq!(out.len(), 2);
        assert_eq!(out["x-request-id"], "r1");
        assert_eq!(out["x-b3-traceid"], "t1");
    }
}
