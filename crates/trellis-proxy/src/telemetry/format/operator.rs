//! Envoy's command operators: the ones the proxy renders, the ones Envoy has that the
//! proxy renders as `-` (named so that config conversion can warn about them), and the
//! rest, which Envoy rejects and so does the proxy.

use super::FormatError;
use super::time::TimeFormat;

/// A header operator's argument: `X` or `X?Y` (Y when X is absent), lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderArg {
    pub main: String,
    pub alternative: Option<String>,
}

/// Which address an address operator reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    DownstreamLocal,
    DownstreamRemote,
    DownstreamDirectRemote,
    UpstreamHost,
    UpstreamLocal,
}

/// Which part of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPart {
    Full,
    WithoutPort,
    Port,
}

/// One operator the proxy renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    StartTime(TimeFormat),
    RequestHeader(HeaderArg),
    /// `REQ_WITHOUT_QUERY` (the `envoy.formatter.req_without_query` extension).
    RequestHeaderWithoutQuery(HeaderArg),
    ResponseHeader(HeaderArg),
    ResponseTrailer(HeaderArg),
    Protocol,
    ResponseCode,
    ResponseFlags,
    ResponseFlagsLong,
    ResponseCodeDetails,
    ConnectionTerminationDetails,
    UpstreamTransportFailureReason,
    BytesReceived,
    BytesSent,
    Duration,
    RequestDuration,
    ResponseDuration,
    Address(Address, AddressPart),
    UpstreamCluster,
    RequestedServerName,
    RouteName,
    ConnectionId,
    Hostname,
    DownstreamPeerUriSan,
    DownstreamLocalUriSan,
    DownstreamPeerSubject,
    DownstreamTlsVersion,
    UpstreamPeerUriSan,
    /// An operator of Envoy's that the proxy does not implement: always `-`.
    Unimplemented(String),
}

impl Operator {
    /// The operator `%name(arg)%`.
    pub fn parse(name: &str, arg: Option<&str>) -> Result<Operator, FormatError> {
        use Address as A;
        use AddressPart as P;
        let plain = |op: Operator| match arg {
            None => Ok(op),
            Some(_) => Err(FormatError::Argument {
                operator: name.to_string(),
                why: "takes no argument",
            }),
        };
        match name {
            "START_TIME" => Ok(Operator::StartTime(
                arg.map_or_else(TimeFormat::default, TimeFormat::parse),
            )),
            "REQ" | "REQUEST_HEADER" => header(name, arg).map(Operator::RequestHeader),
            "REQ_WITHOUT_QUERY" => header(name, arg).map(Operator::RequestHeaderWithoutQuery),
            "RESP" | "RESPONSE_HEADER" => header(name, arg).map(Operator::ResponseHeader),
            "TRAILER" | "RESPONSE_TRAILER" => header(name, arg).map(Operator::ResponseTrailer),
            "PROTOCOL" => plain(Operator::Protocol),
            "RESPONSE_CODE" => plain(Operator::ResponseCode),
            "RESPONSE_FLAGS" => plain(Operator::ResponseFlags),
            "RESPONSE_FLAGS_LONG" => plain(Operator::ResponseFlagsLong),
            "RESPONSE_CODE_DETAILS" => plain(Operator::ResponseCodeDetails),
            "CONNECTION_TERMINATION_DETAILS" => plain(Operator::ConnectionTerminationDetails),
            "UPSTREAM_TRANSPORT_FAILURE_REASON" => plain(Operator::UpstreamTransportFailureReason),
            "BYTES_RECEIVED" => plain(Operator::BytesReceived),
            "BYTES_SENT" => plain(Operator::BytesSent),
            "DURATION" => plain(Operator::Duration),
            "REQUEST_DURATION" => plain(Operator::RequestDuration),
            "RESPONSE_DURATION" => plain(Operator::ResponseDuration),
            "UPSTREAM_HOST" | "UPSTREAM_REMOTE_ADDRESS" => {
                plain(Operator::Address(A::UpstreamHost, P::Full))
            }
            "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => {
                plain(Operator::Address(A::UpstreamHost, P::WithoutPort))
            }
            "UPSTREAM_REMOTE_PORT" => plain(Operator::Address(A::UpstreamHost, P::Port)),
            "UPSTREAM_LOCAL_ADDRESS" => plain(Operator::Address(A::UpstreamLocal, P::Full)),
            "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => {
                plain(Operator::Address(A::UpstreamLocal, P::WithoutPort))
            }
            "UPSTREAM_LOCAL_PORT" => plain(Operator::Address(A::UpstreamLocal, P::Port)),
            "DOWNSTREAM_LOCAL_ADDRESS" => plain(Operator::Address(A::DownstreamLocal, P::Full)),
            "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => {
                plain(Operator::Address(A::DownstreamLocal, P::WithoutPort))
            }
            "DOWNSTREAM_LOCAL_PORT" => plain(Operator::Address(A::DownstreamLocal, P::Port)),
            "DOWNSTREAM_REMOTE_ADDRESS" => plain(Operator::Address(A::DownstreamRemote, P::Full)),
            "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => {
                plain(Operator::Address(A::DownstreamRemote, P::WithoutPort))
            }
            "DOWNSTREAM_REMOTE_PORT" => plain(Operator::Address(A::DownstreamRemote, P::Port)),
            "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => {
                plain(Operator::Address(A::DownstreamDirectRemote, P::Full))
            }
            "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT" => {
                plain(Operator::Address(A::DownstreamDirectRemote, P::WithoutPort))
            }
            "DOWNSTREAM_DIRECT_REMOTE_PORT" => {
                plain(Operator::Address(A::DownstreamDirectRemote, P::Port))
            }
            "UPSTREAM_CLUSTER" | "UPSTREAM_CLUSTER_RAW" => plain(Operator::UpstreamCluster),
            "REQUESTED_SERVER_NAME" => plain(Operator::RequestedServerName),
            "ROUTE_NAME" => plain(Operator::RouteName),
            "CONNECTION_ID" => plain(Operator::ConnectionId),
            "HOSTNAME" => plain(Operator::Hostname),
            "DOWNSTREAM_PEER_URI_SAN" => plain(Operator::DownstreamPeerUriSan),
            "DOWNSTREAM_LOCAL_URI_SAN" => plain(Operator::DownstreamLocalUriSan),
            "DOWNSTREAM_PEER_SUBJECT" => plain(Operator::DownstreamPeerSubject),
            "DOWNSTREAM_TLS_VERSION" => plain(Operator::DownstreamTlsVersion),
            "UPSTREAM_PEER_URI_SAN" => plain(Operator::UpstreamPeerUriSan),
            other if ENVOY_ONLY.contains(&other) => Ok(Operator::Unimplemented(other.to_string())),
            other => Err(FormatError::Unsupported(other.to_string())),
        }
    }

    /// Whether Envoy's typed JSON writes this operator's value as a number.
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            Operator::ResponseCode
                | Operator::BytesReceived
                | Operator::BytesSent
                | Operator::Duration
                | Operator::RequestDuration
                | Operator::ResponseDuration
                | Operator::ConnectionId
                | Operator::Address(_, AddressPart::Port)
        )
    }
}

/// `X` or `X?Y`, lower-cased (header names are case-insensitive).
fn header(name: &str, arg: Option<&str>) -> Result<HeaderArg, FormatError> {
    let arg = arg.filter(|a| !a.is_empty()).ok_or(FormatError::Argument {
        operator: name.to_string(),
        why: "needs a header name",
    })?;
    let (main, alternative) = match arg.split_once('?') {
        Some((m, a)) => (m, Some(a.to_ascii_lowercase())),
        None => (arg, None),
    };
    Ok(HeaderArg {
        main: main.to_ascii_lowercase(),
        alternative,
    })
}

/// Operators Envoy 1.40 knows that the proxy renders as `-` (docs/proxy-differences.md).
const ENVOY_ONLY: &[&str] = &[
    "START_TIME_LOCAL",
    "EMIT_TIME",
    "EMIT_TIME_LOCAL",
    "REQUEST_HEADERS_BYTES",
    "RESPONSE_HEADERS_BYTES",
    "RESPONSE_TRAILERS_BYTES",
    "BYTES_RETRANSMITTED",
    "PACKETS_RETRANSMITTED",
    "UPSTREAM_WIRE_BYTES_RECEIVED",
    "UPSTREAM_HEADER_BYTES_RECEIVED",
    "DOWNSTREAM_WIRE_BYTES_RECEIVED",
    "DOWNSTREAM_HEADER_BYTES_RECEIVED",
    "UPSTREAM_WIRE_BYTES_SENT",
    "UPSTREAM_HEADER_BYTES_SENT",
    "DOWNSTREAM_WIRE_BYTES_SENT",
    "DOWNSTREAM_HEADER_BYTES_SENT",
    "UPSTREAM_PROTOCOL",
    "COMMON_DURATION",
    "REQUEST_TX_DURATION",
    "RESPONSE_TX_DURATION",
    "DOWNSTREAM_HANDSHAKE_DURATION",
    "ROUNDTRIP_DURATION",
    "UPSTREAM_HOST_NAME",
    "UPSTREAM_HOST_NAME_WITHOUT_PORT",
    "UPSTREAM_REQUEST_ATTEMPT_COUNT",
    "UPSTREAM_CONNECTION_ID",
    "UPSTREAM_FILTER_STATE",
    "UPSTREAM_TLS_CIPHER",
    "UPSTREAM_TLS_VERSION",
    "UPSTREAM_TLS_SESSION_ID",
    "UPSTREAM_PEER_ISSUER",
    "UPSTREAM_PEER_CERT",
    "UPSTREAM_PEER_SUBJECT",
    "UPSTREAM_PEER_DNS_SAN",
    "UPSTREAM_PEER_IP_SAN",
    "UPSTREAM_PEER_CERT_V_START",
    "UPSTREAM_PEER_CERT_V_END",
    "UPSTREAM_LOCAL_URI_SAN",
    "UPSTREAM_LOCAL_DNS_SAN",
    "UPSTREAM_LOCAL_IP_SAN",
    "UPSTREAM_LOCAL_SUBJECT",
    "UPSTREAM_DETECTED_CLOSE_TYPE",
    "DOWNSTREAM_DIRECT_LOCAL_ADDRESS",
    "DOWNSTREAM_DIRECT_LOCAL_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_DIRECT_LOCAL_PORT",
    "DOWNSTREAM_TRANSPORT_FAILURE_REASON",
    "DOWNSTREAM_DETECTED_CLOSE_TYPE",
    "DOWNSTREAM_PEER_DNS_SAN",
    "DOWNSTREAM_PEER_IP_SAN",
    "DOWNSTREAM_PEER_EMAIL_SAN",
    "DOWNSTREAM_PEER_OTHERNAME_SAN",
    "DOWNSTREAM_LOCAL_DNS_SAN",
    "DOWNSTREAM_LOCAL_IP_SAN",
    "DOWNSTREAM_LOCAL_EMAIL_SAN",
    "DOWNSTREAM_LOCAL_OTHERNAME_SAN",
    "DOWNSTREAM_LOCAL_SUBJECT",
    "DOWNSTREAM_PEER_ISSUER",
    "DOWNSTREAM_TLS_SESSION_ID",
    "DOWNSTREAM_TLS_CIPHER",
    "DOWNSTREAM_PEER_FINGERPRINT_256",
    "DOWNSTREAM_PEER_FINGERPRINT_1",
    "DOWNSTREAM_PEER_SERIAL",
    "DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_256",
    "DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_1",
    "DOWNSTREAM_PEER_CHAIN_SERIALS",
    "DOWNSTREAM_PEER_CERT",
    "DOWNSTREAM_PEER_CERT_V_START",
    "DOWNSTREAM_PEER_CERT_V_END",
    "VIRTUAL_CLUSTER_NAME",
    "FILTER_CHAIN_NAME",
    "LOCAL_REPLY_BODY",
    "ACCESS_LOG_TYPE",
    "UNIQUE_ID",
    "STREAM_ID",
    "TRACE_ID",
    "ENVIRONMENT",
    "DYNAMIC_METADATA",
    "CLUSTER_METADATA",
    "UPSTREAM_METADATA",
    "METADATA",
    "FILTER_STATE",
    "CEL",
    "QUERY_PARAM",
    "PATH",
    "GRPC_STATUS",
    "GRPC_STATUS_NUMBER",
    "CUSTOM_FLAGS",
];
