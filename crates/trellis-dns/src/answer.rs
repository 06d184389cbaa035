//! One DNS message in, one answer out (or nothing): the whole behaviour of the server,
//! without sockets. The wire format is hickory-proto's.
//!
//! As Istio's DNS proxy answers (pkg/dns/client `ServeDNS`), except that nothing is
//! forwarded upstream — in the local mesh anything unknown fails fast:
//! - a known name: `A`/`AAAA` with its addresses (TTL 30 s), authoritative; any other
//!   type, or a family it has no address of, is an empty NOERROR (never NXDOMAIN, which
//!   would make a client asking A and AAAA together give up on the name);
//! - an unknown name: NXDOMAIN;
//! - no question, or no name table yet: SERVFAIL;
//! - an opcode other than QUERY: NOTIMP;
//! - bytes that do not parse: FORMERR when a header can be read, else nothing; responses
//!   are never answered.
//!
//! Over UDP an answer longer than the client accepts (512 bytes, or its EDNS size) is
//! sent truncated (TC), so that the client retries over TCP.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};

use crate::table::Lookup;

/// The TTL of every answer (Istio's).
pub const TTL: u32 = 30;

/// The classic DNS limit on a UDP message without EDNS.
const UDP_LIMIT: usize = 512;

/// How the query came, which bounds the answer's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The answer to the message `query`, encoded; `None` when nothing should be sent.
pub fn answer(lookup: Option<&Lookup>, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let request = match Message::from_vec(query) {
        Ok(m) => m,
        Err(error) => {
            tracing::debug!(%error, len = query.len(), "malformed DNS query");
            return format_error(query);
        }
    };
    if request.message_type() != MessageType::Query {
        return None;
    }
    let response = respond(lookup, &request);
    let limit = match transport {
        Transport::Udp => UDP_LIMIT.max(usize::from(request.max_payload())),
        Transport::Tcp => usize::from(u16::MAX),
    };
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    response.truncate().to_vec().ok()
}

/// The response message for a parsed query.
pub fn respond(lookup: Option<&Lookup>, request: &Message) -> Message {
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .add_queries(request.queries().iter().cloned());
    if request.op_code() != OpCode::Query {
        response.set_response_code(ResponseCode::NotImp);
        return response;
    }
    // Clients ask one question per message; like Istio, the first is answered.
    let (Some(question), Some(lookup)) = (request.queries().first(), lookup) else {
        response.set_response_code(ResponseCode::ServFail);
        return response;
    };
    let name = question.name();
    let Some(addresses) = lookup.get(&name.to_ascii()) else {
        response.set_response_code(ResponseCode::NXDomain);
        return response;
    };
    response.set_authoritative(true);
    let records: Vec<Record> = match question.query_type() {
        RecordType::A => addresses
            .v4
            .iter()
            .map(|ip| Record::from_rdata(name.clone(), TTL, RData::A(A(*ip))))
            .collect(),
        RecordType::AAAA => addresses
            .v6
            .iter()
            .map(|ip| Record::from_rdata(name.clone(), TTL, RData::AAAA(AAAA(*ip))))
            .collect(),
        _ => Vec::new(),
    };
    response.add_answers(records);
    response
}

/// FORMERR for a message whose header is readable and says it is a query.
fn format_error(query: &[u8]) -> Option<Vec<u8>> {
    let header = query.get(..12)?;
    let id = u16::from_be_bytes([*header.first()?, *header.get(1)?]);
    let flags = *header.get(2)?;
    if flags & 0x80 != 0 {
        return None;
    }
    let op_code = OpCode::from_u8((flags >> 3) & 0x0f);
    Message::error_msg(id, op_code, ResponseCode::FormErr)
        .to_vec()
        .ok()
}

#[cfg(test)]
mod tests;
