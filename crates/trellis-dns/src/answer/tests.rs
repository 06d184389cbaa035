use std::collections::BTreeMap;
use std::str::FromStr;

use hickory_proto::op::{Edns, Query};
use hickory_proto::rr::Name;

use super::*;
use crate::nds::{KUBERNETES, NameInfo, NameTable};
use crate::table::ProxyScope;

fn bookinfo() -> Lookup {
    let mut table = BTreeMap::new();
    table.insert(
        "reviews.default.svc.cluster.local".to_string(),
        NameInfo {
            ips: vec!["240.240.90.3".into()],
            registry: KUBERNETES.into(),
            shortname: "reviews".into(),
            namespace: "default".into(),
        },
    );
    table.insert(
        "many.example.com".to_string(),
        NameInfo {
            ips: (0..40).map(|i| format!("240.240.7.{i}")).collect(),
            registry: "External".into(),
            ..Default::default()
        },
    );
    Lookup::new(
        &NameTable { table },
        &ProxyScope::new("default", "default.svc.cluster.local"),
    )
}

fn query(name: &str, t: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(4242)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_str(name).unwrap(), t));
    m
}

fn ask(lookup: Option<&Lookup>, q: &Message, transport: Transport) -> Message {
    let bytes = answer(lookup, &q.to_vec().unwrap(), transport).expect("an answer");
    Message::from_vec(&bytes).unwrap()
}

#[test]
fn known_names_get_their_vip_in_every_alias() {
    let l = bookinfo();
    for name in [
        "reviews.",
        "reviews.default.",
        "reviews.default.svc.",
        "reviews.default.svc.cluster.local.",
    ] {
        let r = ask(Some(&l), &query(name, RecordType::A), Transport::Udp);
        assert_eq!(r.id(), 4242);
        assert_eq!(r.message_type(), MessageType::Response);
        assert_eq!(r.response_code(), ResponseCode::NoError, "{name}");
        assert!(r.authoritative());
        assert!(r.recursion_desired());
        assert_eq!(r.queries(), query(name, RecordType::A).queries());
        let answers = r.answers();
        assert_eq!(answers.len(), 1, "{name}");
        assert_eq!(answers[0].name().to_ascii(), name);
        assert_eq!(answers[0].ttl(), TTL);
        assert_eq!(answers[0].data(), &RData::A(A::new(240, 240, 90, 3)));
    }
}

#[test]
fn other_types_of_a_known_name_are_empty_noerror() {
    let l = bookinfo();
    for t in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
        let r = ask(Some(&l), &query("reviews.", t), Transport::Udp);
        assert_eq!(r.response_code(), ResponseCode::NoError, "{t}");
        assert!(r.answers().is_empty(), "{t}");
    }
}

#[test]
fn unknown_names_are_nxdomain() {
    let l = bookinfo();
    for name in [
        "ratings.",
        "example.com.",
        "reviews.default.default.svc.cluster.local.",
    ] {
        for t in [RecordType::A, RecordType::AAAA] {
            let r = ask(Some(&l), &query(name, t), Transport::Udp);
            assert_eq!(r.response_code(), ResponseCode::NXDomain, "{name} {t}");
            assert!(r.answers().is_empty());
        }
    }
}

#[test]
fn before_the_first_table_and_without_a_question_servfail() {
    let r = ask(None, &query("reviews.", RecordType::A), Transport::Udp);
    assert_eq!(r.response_code(), ResponseCode::ServFail);
    let mut empty = query("reviews.", RecordType::A);
    empty.take_queries();
    let r = ask(Some(&bookinfo()), &empty, Transport::Udp);
    assert_eq!(r.response_code(), ResponseCode::ServFail);
}

#[test]
fn other_opcodes_are_not_implemented() {
    let mut q = query("reviews.", RecordType::A);
    q.set_op_code(OpCode::Update);
    let r = ask(Some(&bookinfo()), &q, Transport::Udp);
    assert_eq!(r.response_code(), ResponseCode::NotImp);
}

#[test]
fn long_answers_are_truncated_over_udp_only() {
    let l = bookinfo();
    let q = query("many.example.com.", RecordType::A);
    let udp = ask(Some(&l), &q, Transport::Udp);
    assert!(udp.truncated());
    assert!(udp.answers().is_empty());
    let tcp = ask(Some(&l), &q, Transport::Tcp);
    assert!(!tcp.truncated());
    assert_eq!(tcp.answers().len(), 40);
    // A client that announces a larger EDNS buffer gets it all over UDP.
    let mut big = q.clone();
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    big.set_edns(edns);
    let r = ask(Some(&l), &big, Transport::Udp);
    assert!(!r.truncated());
    assert_eq!(r.answers().len(), 40);
}

#[test]
fn malformed_queries_get_formerr_or_nothing() {
    let l = bookinfo();
    // A header claiming one question, and no question.
    let mut bytes = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    bytes.extend_from_slice(&[0x07, b'r']);
    let r = Message::from_vec(&answer(Some(&l), &bytes, Transport::Udp).unwrap()).unwrap();
    assert_eq!(r.id(), 0x1234);
    assert_eq!(r.response_code(), ResponseCode::FormErr);
    assert_eq!(r.message_type(), MessageType::Response);
    // Too short for a header: dropped.
    assert!(answer(Some(&l), &[1, 2, 3], Transport::Udp).is_none());
    assert!(answer(Some(&l), &[], Transport::Tcp).is_none());
    // A response is never answered, parsed or not.
    let mut response = query("reviews.", RecordType::A);
    response.set_message_type(MessageType::Response);
    assert!(answer(Some(&l), &response.to_vec().unwrap(), Transport::Udp).is_none());
    bytes[2] |= 0x80;
    assert!(answer(Some(&l), &bytes, Transport::Udp).is_none());
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        let l = bookinfo();
        for transport in [Transport::Udp, Transport::Tcp] {
            if let Some(out) = answer(Some(&l), &bytes, transport) {
                let parsed = Message::from_vec(&out).unwrap();
                proptest::prop_assert_eq!(parsed.message_type(), MessageType::Response);
            }
        }
    }

    #[test]
    fn mutated_queries_never_panic(pos in 0usize..64, value in proptest::num::u8::ANY) {
        let mut bytes = query("reviews.default.svc.cluster.local.", RecordType::A).to_vec().unwrap();
        if let Some(b) = bytes.get_mut(pos) {
            *b = value;
        }
        let _ = answer(Some(&bookinfo()), &bytes, Transport::Udp);
    }
}
