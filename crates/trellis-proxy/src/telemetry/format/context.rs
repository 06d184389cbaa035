//! What one request or TCP connection offers the format operators: borrowed views of the
//! proxy's own records, read only when a line is rendered.

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use hyper::HeaderMap;

use super::operator::{Address, AddressPart, HeaderArg, Operator};
use super::time::TimeFormat;
use crate::flags::Flags;

/// The request line and headers of an HTTP request (pseudo-headers apart, as hyper keeps them).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authority: &'a str,
    pub scheme: &'a str,
    pub headers: &'a HeaderMap,
}

/// Everything a line can show. Empty strings and `None` are missing values.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    pub start: Option<SystemTime>,
    pub duration: Duration,
    /// Start to the first response byte, when known.
    pub response_duration: Option<Duration>,
    pub request: Option<Request<'a>>,
    pub response_headers: Option<&'a HeaderMap>,
    /// `HTTP/1.1`...; `None` for TCP.
    pub protocol: Option<&'a str>,
    /// 0 for TCP.
    pub response_code: u16,
    pub flags: Flags,
    pub details: &'a str,
    pub transport_failure: &'a str,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub upstream_host: Option<SocketAddr>,
    pub upstream_cluster: &'a str,
    pub upstream_peer_uri_san: &'a str,
    pub route_name: &'a str,
    pub downstream_local: Option<SocketAddr>,
    pub downstream_remote: Option<SocketAddr>,
    pub connection_id: Option<u64>,
    pub server_name: &'a str,
    pub downstream_peer_uri_san: &'a str,
    pub downstream_local_uri_san: &'a str,
    pub downstream_peer_subject: &'a str,
    pub downstream_tls_version: &'a str,
}

/// One operator's value.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Missing,
    Str(&'a str),
    Num(u64),
    Addr(SocketAddr),
    Ip(IpAddr),
    Flags(Flags, bool),
    Time(SystemTime, &'a TimeFormat),
}

impl Value<'_> {
    /// Appends the value as text (nothing for `Missing`).
    pub fn write(self, out: &mut String) {
        // Writing to a String cannot fail.
        let _ = match self {
            Value::Missing => Ok(()),
            Value::Str(s) => out.write_str(s),
            Value::Num(n) => write!(out, "{n}"),
            Value::Addr(a) => write!(out, "{a}"),
            Value::Ip(ip) => write!(out, "{ip}"),
            Value::Flags(f, long) => {
                f.write_to(out, long);
                Ok(())
            }
            Value::Time(t, f) => {
                f.write(t, out);
                Ok(())
            }
        };
    }
}

impl<'a> Context<'a> {
    /// Appends `op`'s value; false (nothing appended) when it is missing.
    pub fn write(&self, op: &Operator, out: &mut String) -> bool {
        match self.value(op) {
            Value::Missing => false,
            v => {
                v.write(out);
                true
            }
        }
    }

    /// `op`'s value in this context.
    pub fn value<'s>(&'s self, op: &'s Operator) -> Value<'s> {
        let s = |v: &'s str| {
            if v.is_empty() {
                Value::Missing
            } else {
                Value::Str(v)
            }
        };
        let ms =
            |d: Option<Duration>| d.map_or(Value::Missing, |d| Value::Num(d.as_millis() as u64));
        match op {
            Operator::StartTime(f) => self.start.map_or(Value::Missing, |t| Value::Time(t, f)),
            Operator::RequestHeader(h) => self
                .request
                .map_or(Value::Missing, |r| request_header(&r, h)),
            Operator::RequestHeaderWithoutQuery(h) => {
                match self.request.map(|r| request_header(&r, h)) {
                    Some(Value::Str(v)) => Value::Str(v.split_once('?').map_or(v, |(p, _)| p)),
                    _ => Value::Missing,
                }
            }
            Operator::ResponseHeader(h) => header(self.response_headers, h),
            Operator::Protocol => self.protocol.map_or(Value::Missing, s),
            Operator::ResponseCode => Value::Num(u64::from(self.response_code)),
            Operator::ResponseFlags => Value::Flags(self.flags, false),
            Operator::ResponseFlagsLong => Value::Flags(self.flags, true),
            Operator::ResponseCodeDetails => s(self.details),
            Operator::UpstreamTransportFailureReason => s(self.transport_failure),
            Operator::BytesReceived => Value::Num(self.bytes_received),
            Operator::BytesSent => Value::Num(self.bytes_sent),
            Operator::Duration => ms(Some(self.duration)),
            Operator::ResponseDuration => ms(self.response_duration),
            Operator::Address(which, part) => address(self.address(*which), *part),
            Operator::UpstreamCluster => s(self.upstream_cluster),
            Operator::RequestedServerName => s(self.server_name),
            Operator::RouteName => s(self.route_name),
            Operator::ConnectionId => self.connection_id.map_or(Value::Missing, Value::Num),
            Operator::Hostname => hostname().map_or(Value::Missing, Value::Str),
            Operator::DownstreamPeerUriSan => s(self.downstream_peer_uri_san),
            Operator::DownstreamLocalUriSan => s(self.downstream_local_uri_san),
            Operator::DownstreamPeerSubject => s(self.downstream_peer_subject),
            Operator::DownstreamTlsVersion => s(self.downstream_tls_version),
            Operator::UpstreamPeerUriSan => s(self.upstream_peer_uri_san),
            // Not recorded by the proxy: trailers, connection termination details, the
            // request's last byte.
            Operator::ResponseTrailer(_)
            | Operator::ConnectionTerminationDetails
            | Operator::RequestDuration
            | Operator::Unimplemented(_) => Value::Missing,
        }
    }

    fn address(&self, which: Address) -> Option<SocketAddr> {
        match which {
            Address::DownstreamLocal => self.downstream_local,
            // A sidecar trusts no x-forwarded-for: the remote address is the peer's.
            Address::DownstreamRemote | Address::DownstreamDirectRemote => self.downstream_remote,
            Address::UpstreamHost => self.upstream_host,
            // Not recorded by the proxy.
            Address::UpstreamLocal => None,
        }
    }
}

fn address(a: Option<SocketAddr>, part: AddressPart) -> Value<'static> {
    match (a, part) {
        (None, _) => Value::Missing,
        (Some(a), AddressPart::Full) => Value::Addr(a),
        (Some(a), AddressPart::WithoutPort) => Value::Ip(a.ip()),
        (Some(a), AddressPart::Port) => Value::Num(u64::from(a.port())),
    }
}

/// `REQ(X?Y)`: the pseudo-headers from the request line, the others from the header map.
fn request_header<'s>(r: &Request<'s>, h: &HeaderArg) -> Value<'s> {
    let one = |name: &str| -> Option<&'s str> {
        match name {
            ":method" => Some(r.method),
            ":path" => Some(r.path),
            ":authority" => Some(r.authority),
            ":scheme" => Some(r.scheme),
            _ => lookup(r.headers, name),
        }
        .filter(|v| !v.is_empty())
    };
    one(&h.main)
        .or_else(|| h.alternative.as_deref().and_then(one))
        .map_or(Value::Missing, Value::Str)
}

fn header<'s>(map: Option<&'s HeaderMap>, h: &HeaderArg) -> Value<'s> {
    let Some(map) = map else {
        return Value::Missing;
    };
    lookup(map, &h.main)
        .or_else(|| h.alternative.as_deref().and_then(|a| lookup(map, a)))
        .map_or(Value::Missing, Value::Str)
}

/// A header's first value, when present, text and not empty.
fn lookup<'s>(map: &'s HeaderMap, name: &str) -> Option<&'s str> {
    map.get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// `%HOSTNAME%`: the machine's name, read once.
fn hostname() -> Option<&'static str> {
    static NAME: OnceLock<Option<String>> = OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}
