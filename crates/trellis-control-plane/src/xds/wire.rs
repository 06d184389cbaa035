//! ADS responses as they go on the wire, assembled from resources encoded once.
//!
//! A response of one type may carry a megabyte of clusters, and thousands of streams may
//! be sent it at once. Encoding it per stream (prost copies every resource's bytes into the
//! message, tonic copies the message into a per-stream buffer that keeps the capacity of
//! the largest response ever sent) costs that megabyte per stream, for as long as the
//! stream lives. Here a response is its small fields (version, nonce, type, removed names)
//! encoded, plus shared references to its resources' encodings ([`Cached::encoded`]); the
//! gRPC frame is produced in [`Chunks`] of at most about [`CHUNK`] bytes only as the
//! transport asks for them, so a stream holds at most a chunk or two in flight and nothing
//! once the proxy has read it. Large resources are not even copied: their shared bytes
//! become a chunk of their own.
//!
//! The bytes are a standard `DiscoveryResponse` / `DeltaDiscoveryResponse` (protobuf
//! fields may come in any order); [`Wire::decode`] reads one back.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, DiscoveryResponse};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

use super::resources::Cached;

/// The field of `resources` in both responses, and of `resource` in a delta `Resource`.
const RESOURCES: u32 = 2;
/// `Resource.version` and `Resource.name` in delta responses.
const RESOURCE_VERSION: u32 = 1;
const RESOURCE_NAME: u32 = 3;

/// Bytes gathered into one chunk before it is handed to the transport.
pub const CHUNK: usize = 32 * 1024;

/// Resources at least this large are sent as their shared bytes, not copied into a chunk.
const SHARE_FROM: usize = 8 * 1024;

/// The gRPC message prefix: a compression flag and a 32-bit length.
const GRPC_PREFIX: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `DiscoveryResponse.resources`: each an `Any`.
    Sotw,
    /// `DeltaDiscoveryResponse.resources`: each a `Resource` with name, version and `Any`.
    Delta,
}

/// One response, ready to be framed.
#[derive(Debug)]
pub struct Wire {
    layout: Layout,
    /// The response's fields other than its resources, encoded.
    head: Vec<u8>,
    resources: Vec<Arc<Cached>>,
    /// Resources carried plus names removed.
    count: usize,
    /// The encoded message's length.
    len: usize,
}

impl Wire {
    /// A state-of-the-world response: `response` (whose own `resources` are ignored) with
    /// `resources`.
    pub fn sotw(response: DiscoveryResponse, resources: Vec<Arc<Cached>>) -> Wire {
        let head = DiscoveryResponse {
            resources: Vec::new(),
            ..response
        }
        .encode_to_vec();
        Wire::new(Layout::Sotw, head, resources, 0)
    }

    /// An incremental response: `response` (whose own `resources` are ignored) with
    /// `resources`, each under its own name and version.
    pub fn delta(response: DeltaDiscoveryResponse, resources: Vec<Arc<Cached>>) -> Wire {
        let removed = response.removed_resources.len();
        let head = DeltaDiscoveryResponse {
            resources: Vec::new(),
            ..response
        }
        .encode_to_vec();
        Wire::new(Layout::Delta, head, resources, removed)
    }

    fn new(layout: Layout, head: Vec<u8>, resources: Vec<Arc<Cached>>, removed: usize) -> Wire {
        let len = head.len()
            + resources
                .iter()
                .map(|r| layout.prefix_len(r) + r.encoded().len())
                .sum::<usize>();
        Wire {
            layout,
            head,
            count: resources.len() + removed,
            resources,
            len,
        }
    }

    /// Resources carried plus names removed.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The encoded message's length, without the gRPC prefix.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the message encodes to nothing (an all-default response).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The message read back, as a client would.
    pub fn decode<M: Message + Default>(&self) -> Result<M, prost::DecodeError> {
        let mut message = BytesMut::with_capacity(self.len);
        message.put_slice(&self.head);
        for r in &self.resources {
            self.layout.prefix(r, &mut message);
            message.put_slice(r.encoded());
        }
        M::decode(message.freeze())
    }

    /// The gRPC frame, in pieces made as they are asked for. `None` when the message is
    /// too large for a gRPC frame (4 GiB).
    pub fn chunks(self) -> Option<Chunks> {
        let len = u32::try_from(self.len).ok()?;
        let mut first = BytesMut::with_capacity(GRPC_PREFIX + self.head.len());
        first.put_u8(0);
        first.put_u32(len);
        first.put_slice(&self.head);
        Some(Chunks {
            wire: self,
            next: 0,
            start: Some(first),
            shared: None,
        })
    }
}

impl Layout {
    /// What precedes a resource's encoding in the message.
    fn prefix(self, r: &Cached, buf: &mut impl BufMut) {
        let any = r.encoded().len();
        encode_key(RESOURCES, WireType::LengthDelimited, buf);
        match self {
            Layout::Sotw => encode_varint(any as u64, buf),
            Layout::Delta => {
                let (name, version) = (r.name(), r.version());
                let inner = string_len(RESOURCE_NAME, name)
                    + string_len(RESOURCE_VERSION, version)
                    + key_len(RESOURCES)
                    + encoded_len_varint(any as u64)
                    + any;
                encode_varint(inner as u64, buf);
                string(RESOURCE_VERSION, version, buf);
                string(RESOURCE_NAME, name, buf);
                encode_key(RESOURCES, WireType::LengthDelimited, buf);
                encode_varint(any as u64, buf);
            }
        }
    }

    fn prefix_len(self, r: &Cached) -> usize {
        let any = r.encoded().len();
        let inner = match self {
            Layout::Sotw => any,
            Layout::Delta => {
                string_len(RESOURCE_NAME, r.name())
                    + string_len(RESOURCE_VERSION, r.version())
                    + key_len(RESOURCES)
                    + encoded_len_varint(any as u64)
                    + any
            }
        };
        key_len(RESOURCES) + encoded_len_varint(inner as u64) + inner - any
    }
}

fn string(tag: u32, s: &str, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(s.len() as u64, buf);
    buf.put_slice(s.as_bytes());
}

fn string_len(tag: u32, s: &str) -> usize {
    key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
}

/// A response's gRPC frame as a sequence of chunks, each made when asked for.
#[derive(Debug)]
pub struct Chunks {
    wire: Wire,
    /// The next resource to frame.
    next: usize,
    /// The gRPC prefix and the response's head, until the first chunk is made.
    start: Option<BytesMut>,
    /// A large resource's shared bytes, to send after the chunk holding its prefix.
    shared: Option<Bytes>,
}

impl Iterator for Chunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if let Some(shared) = self.shared.take() {
            return Some(shared);
        }
        let mut chunk = match self.start.take() {
            Some(start) => start,
            None if self.next < self.wire.resources.len() => {
                // Room for a chunk's worth and the last resource copied into it.
                BytesMut::with_capacity(CHUNK + SHARE_FROM)
            }
            None => return None,
        };
        while chunk.len() < CHUNK {
            let Some(r) = self.wire.resources.get(self.next) else {
                break;
            };
            self.next += 1;
            self.wire.layout.prefix(r, &mut chunk);
            let encoded = r.encoded();
            if encoded.len() >= SHARE_FROM {
                self.shared = Some(encoded.clone());
                break;
            }
            chunk.put_slice(encoded);
        }
        Some(chunk.freeze())
    }
}

#[cfg(test)]
mod tests;
