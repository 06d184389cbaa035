//! Istio's name table (NDS), `istio.networking.nds.v1.NameTable` (pkg/dns/proto/nds.proto),
//! written by hand: one message with a map does not justify a protoc build step. Field
//! numbers and names follow the proto, so Istio's agent could read what Trellis sends.
//!
//! The control plane sends one table per proxy: every host the proxy can see, with its
//! addresses. Kubernetes services carry their registry, name and namespace as well, and
//! the DNS server derives their short aliases from those ([`crate::table`]); the table
//! itself holds only full host names.

use std::collections::BTreeMap;

use envoy_types::pb::google::protobuf::Any;
use prost::Message;

/// The xDS type URL of [`NameTable`].
pub const TYPE_URL: &str = "type.googleapis.com/istio.networking.nds.v1.NameTable";

/// The registry name of Kubernetes services (Istio's `provider.Kubernetes`).
pub const KUBERNETES: &str = "Kubernetes";

/// Host name → what it resolves to. A `BTreeMap`, so that encoding is deterministic.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NameTable {
    #[prost(btree_map = "string, message", tag = "1")]
    pub table: BTreeMap<String, NameInfo>,
}

/// One host's addresses and, for Kubernetes services, where its aliases come from.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct NameInfo {
    /// The host's addresses (IPv4 or IPv6, as text).
    #[prost(string, repeated, tag = "1")]
    pub ips: Vec<String>,
    /// The service registry holding it (`Kubernetes` for Kubernetes services).
    #[prost(string, tag = "2")]
    pub registry: String,
    /// The Kubernetes service name (registry `Kubernetes` only).
    #[prost(string, tag = "3")]
    pub shortname: String,
    /// The Kubernetes namespace (registry `Kubernetes` only).
    #[prost(string, tag = "4")]
    pub namespace: String,
}

impl prost::Name for NameTable {
    const NAME: &'static str = "NameTable";
    const PACKAGE: &'static str = "istio.networking.nds.v1";

    fn type_url() -> String {
        TYPE_URL.to_string()
    }
}

/// The name table of a state-of-the-world response: its resources merged (Istio sends
/// one; none means an empty table).
pub fn decode(resources: &[Any]) -> Result<NameTable, String> {
    let mut out = NameTable::default();
    for any in resources {
        if any.type_url != TYPE_URL {
            return Err(format!("unexpected resource type {}", any.type_url));
        }
        let table = NameTable::decode(any.value.as_slice())
            .map_err(|e| format!("istio.networking.nds.v1.NameTable: {e}"))?;
        out.table.extend(table.table);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_the_proto_field_numbers() {
        let table = NameTable {
            table: BTreeMap::from([(
                "a".to_string(),
                NameInfo {
                    ips: vec!["1.2.3.4".into()],
                    registry: KUBERNETES.into(),
                    shortname: "a".into(),
                    namespace: "n".into(),
                },
            )]),
        };
        let bytes = table.encode_to_vec();
        // Field 1, length-delimited (the map entry); inside, key field 1 and value field 2.
        assert_eq!(bytes[0], 0x0a);
        assert_eq!(bytes[2], 0x0a);
        assert_eq!(NameTable::decode(bytes.as_slice()).unwrap(), table);
        assert_eq!(<NameTable as prost::Name>::type_url(), TYPE_URL);
        let any = Any {
            type_url: TYPE_URL.into(),
            value: bytes,
        };
        assert_eq!(decode(std::slice::from_ref(&any)).unwrap(), table);
        assert_eq!(decode(&[]).unwrap(), NameTable::default());
        let garbage = Any {
            type_url: TYPE_URL.into(),
            value: vec![0xff, 0xff],
        };
        assert!(decode(&[garbage]).is_err());
        let other = Any {
            type_url: "type.googleapis.com/other".into(),
            value: vec![],
        };
        assert!(decode(&[other]).is_err());
    }
}
