//! The DNS server on real loopback sockets: UDP and TCP answers from the current table,
//! SERVFAIL before the first, garbage survived.

use std::collections::BTreeMap;
use std::str::FromStr;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use trellis_dns::nds::{KUBERNETES, NameInfo, NameTable};
use trellis_dns::{Names, ProxyScope};

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_str(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

fn table() -> NameTable {
    NameTable {
        table: BTreeMap::from([(
            "reviews.default.svc.cluster.local".to_string(),
            NameInfo {
                ips: vec!["240.240.90.3".into()],
                registry: KUBERNETES.into(),
                shortname: "reviews".into(),
                namespace: "default".into(),
            },
        )]),
    }
}

async fn udp(socket: &UdpSocket, bytes: &[u8]) -> Message {
    socket.send(bytes).await.unwrap();
    let mut buffer = vec![0u8; 4096];
    let len = socket.recv(&mut buffer).await.unwrap();
    Message::from_vec(&buffer[..len]).unwrap()
}

#[tokio::test]
async fn answers_over_udp_and_tcp_from_the_latest_table() {
    let names = Names::new(ProxyScope::new("default", "svc.cluster.local"));
    let address = trellis_dns::spawn("127.0.0.1:0".parse().unwrap(), names.clone())
        .await
        .unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(address).await.unwrap();

    let r = udp(&socket, &query(1, "reviews.")).await;
    assert_eq!(r.response_code(), ResponseCode::ServFail, "no table yet");

    names.update(&table());
    // Garbage first: the server drops it and keeps serving.
    socket.send(&[0xde, 0xad]).await.unwrap();
    let r = udp(&socket, &query(2, "reviews.")).await;
    assert_eq!(r.id(), 2);
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert_eq!(r.answers()[0].data(), &RData::A(A::new(240, 240, 90, 3)));
    let r = udp(&socket, &query(3, "nothing.example.")).await;
    assert_eq!(r.response_code(), ResponseCode::NXDomain);

    let mut tcp = TcpStream::connect(address).await.unwrap();
    for (id, name, code) in [
        (4, "reviews.default.", ResponseCode::NoError),
        (5, "ratings.", ResponseCode::NXDomain),
    ] {
        let q = query(id, name);
        tcp.write_all(&(q.len() as u16).to_be_bytes())
            .await
            .unwrap();
        tcp.write_all(&q).await.unwrap();
        let len = tcp.read_u16().await.unwrap();
        let mut body = vec![0u8; usize::from(len)];
        tcp.read_exact(&mut body).await.unwrap();
        let r = Message::from_vec(&body).unwrap();
        assert_eq!((r.id(), r.response_code()), (id, code));
    }
}
