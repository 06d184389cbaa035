//! Bad input on the request path, over real sockets with hand-written bytes: a proxy whose
//! one listener is converted from an xDS `Listener` (HTTP connection manager, inline route
//! answering `200 ok` by itself) and run as `trellis proxy` runs it. Each test also keeps a
//! well-behaved client going and requires its every request to get a 200: one abusive
//! connection never harms the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::http_protocol_options::HeadersWithUnderscoresAction;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, DataSource, HttpProtocolOptions, SocketAddress,
};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::FaultDelay;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpFilterConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use envoy_types::util::pack_any;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use trellis_proxy::Proxy;
use trellis_proxy::config::Snapshot;

const FAULT: &str = "envoy.filters.http.fault";

/// Generous bound on any one exchange; never an assertion on speed.
const PATIENCE: Duration = Duration::from_secs(20);

/// Routes: `/slow` answers after a 5 s fault delay, anything else at once (`200 ok`).
fn hcm(edit: impl FnOnce(&mut HttpConnectionManager)) -> HttpConnectionManager {
    let route = |prefix: &str| Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix(prefix.into())),
            ..Default::default()
        }),
        action: Some(Action::DirectResponse(DirectResponseAction {
            status: 200,
            body: Some(DataSource {
                specifier: Some(Specifier::InlineString("ok".into())),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut slow = route("/slow");
    let delay = HttpFault {
        delay: Some(FaultDelay {
            percentage: Some(FractionalPercent {
                numerator: 100,
                denominator: 0,
            }),
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(PbDuration {
                seconds: 5,
                nanos: 0,
            })),
        }),
        ..Default::default()
    };
    slow.typed_per_filter_config
        .insert(FAULT.into(), pack_any(delay));
    let filter = |name: &str, config| HttpFilter {
        name: name.into(),
        config_type: Some(HttpFilterConfig::TypedConfig(config)),
        ..Default::default()
    };
    let mut h = HttpConnectionManager {
        stat_prefix: "bad_input".into(),
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            name: "local".into(),
            virtual_hosts: vec![VirtualHost {
                name: "all".into(),
                domains: vec!["*".into()],
                routes: vec![slow, route("/")],
                ..Default::default()
            }],
            ..Default::default()
        })),
        http_filters: vec![
            filter(FAULT, pack_any(HttpFault::default())),
            filter("envoy.filters.http.router", pack_any(Router::default())),
        ],
        ..Default::default()
    };
    edit(&mut h);
    h
}

/// A running proxy with one listener on a free loopback port serving `hcm`.
async fn proxy(hcm: HttpConnectionManager) -> (Arc<Proxy>, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pb = Listener {
        name: "bad_input".into(),
        address: Some(Address {
            address: Some(AddressKind::SocketAddress(SocketAddress {
                address: "127.0.0.1".into(),
                port_specifier: Some(PortSpecifier::PortValue(port.into())),
                ..Default::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let listener = trellis_proxy::convert::listener::listener(&pb).unwrap();
    let address = listener.address;
    let mut snapshot = Snapshot::default();
    snapshot
        .listeners
        .insert(listener.name.clone(), Arc::new(listener));
    let proxy = Proxy::new(Default::default());
    let errors = proxy.listeners.reconcile(&proxy, &snapshot);
    assert!(errors.is_empty(), "{errors:?}");
    proxy.config.store(Arc::new(snapshot));
    (proxy, address)
}

/// Writes `request`, then reads until the proxy closes the connection (or `PATIENCE`).
/// Returns what was read and whether the connection was closed.
async fn exchange(address: SocketAddr, request: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(address).await.unwrap();
    s.write_all(request).await.unwrap();
    read_to_close(&mut s).await
}

async fn read_to_close(s: &mut TcpStream) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let closed = loop {
        match tokio::time::timeout(PATIENCE, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

fn status(response: &str) -> &str {
    response.get(9..12).unwrap_or(response)
}

/// A client that sends one well-formed request per connection until stopped, counting
/// its 200s and failing on anything else.
struct WellBehaved {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl WellBehaved {
    fn start(address: SocketAddr) -> WellBehaved {
        let (stop, ok) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, o) = (stop.clone(), ok.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let (response, _) = exchange(
                    address,
                    b"GET /fine HTTP/1.1\r\nhost: fine\r\nconnection: close\r\n\r\n",
                )
                .await;
                if status(&response) != "200" {
                    return Err(format!("a well-behaved request got {response:?}"));
                }
                o.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        });
        WellBehaved { stop, ok, task }
    }

    /// Stops it and returns how many 200s it got (at least one more after this call).
    async fn finish(self) -> u64 {
        let before = self.ok.load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.ok.load(Ordering::Relaxed) <= before && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap().unwrap();
        let ok = self.ok.load(Ordering::Relaxed);
        assert!(ok > before, "the well-behaved client stalled");
        ok
    }
}

#[tokio::test]
async fn oversized_and_too_many_headers_get_431() {
    let (_proxy, address) = proxy(hcm(|_| {})).await;
    let fine = WellBehaved::start(address);
    let big = |kib: usize| {
        format!(
            "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\nconnection: close\r\n\r\n",
            "a".repeat(kib * 1024)
        )
    };
    // Envoy's default: 60 KiB of request headers.
    let (under, _) = exchange(address, big(50).as_bytes()).await;
    assert_eq!(status(&under), "200", "{under}");
    let (over, closed) = exchange(address, big(70).as_bytes()).await;
    assert_eq!(status(&over), "431", "{over}");
    assert!(closed);
    let many: String = (0..120).map(|i| format!("x-h{i}: v\r\n")).collect();
    let (over, closed) = exchange(
        address,
        format!("GET / HTTP/1.1\r\nhost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status(&over), "431", "{over}");
    assert!(closed);
    fine.finish().await;
}

#[tokio::test]
async fn invalid_header_names_and_values_get_400() {
    let (_proxy, address) = proxy(hcm(|_| {})).await;
    let fine = WellBehaved::start(address);
    for request in [
        &b"GET / HTTP/1.1\r\nhost: x\r\nbad header: v\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost: x\r\nx-(paren): v\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\nx-ctl: a\x01b\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\nx-nul: a\x00b\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nhost: x\r\n\r\n",
    ] {
        let (response, closed) = exchange(address, request).await;
        assert_eq!(status(&response), "400", "{request:?} → {response}");
        assert!(closed, "{request:?}");
    }
    fine.finish().await;
}

/// Request smuggling: two Content-Length values, or a Transfer-Encoding that does not end
/// in chunked, or one on HTTP/1.0, are refused (400) and the connection closed, so nothing
/// after them is read as another request. Transfer-Encoding with Content-Length is framed
/// by the Transfer-Encoding alone (RFC 9112 §6.3; Content-Length dropped, so the upstream
/// never sees both) and the connection closed after the answer: what follows is never
/// read as a request. (Envoy answers 400 to it.)
#[tokio::test]
async fn conflicting_framing_is_refused_and_the_connection_closed() {
    let (_proxy, address) = proxy(hcm(|_| {})).await;
    let fine = WellBehaved::start(address);
    let smuggled = "GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n";
    for head in [
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\ncontent-length: 40\r\n\r\n",
        "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, identity\r\n\r\n",
        "POST / HTTP/1.0\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
    ] {
        let request = format!("{head}0\r\n\r\n{smuggled}");
        let (response, closed) = exchange(address, request.as_bytes()).await;
        assert_eq!(status(&response), "400", "{head} → {response}");
        assert_eq!(response.matches("HTTP/1.1 ").count(), 1, "{response}");
        assert!(closed, "{head}");
    }
    let both = format!(
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 40\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
    );
    let (response, closed) = exchange(address, both.as_bytes()).await;
    assert_eq!(response.matches("HTTP/1.1 ").count(), 1, "{response}");
    assert!(response.contains("connection: close"), "{response}");
    assert!(closed);
    fine.finish().await;
}

#[tokio::test]
async fn headers_with_underscores_follow_the_configured_action() {
    let reject = hcm(|h| {
        h.common_http_protocol_options = Some(HttpProtocolOptions {
            headers_with_underscores_action: HeadersWithUnderscoresAction::RejectRequest as i32,
            ..Default::default()
        });
    });
    let (_proxy, address) = proxy(reject).await;
    let (response, _) = exchange(
        address,
        b"GET / HTTP/1.1\r\nhost: x\r\nx_user: a\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&response), "400", "{response}");
    let (response, _) = exchange(
        address,
        b"GET / HTTP/1.1\r\nhost: x\r\nx-user: a\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&response), "200", "{response}");
}

/// Slowloris: headers that never finish. With `request_headers_timeout: 1s` the proxy
/// closes the connection (after a 408 or without a word) while the others keep working.
#[tokio::test]
async fn headers_that_never_finish_close_the_connection() {
    let slow = hcm(|h| {
        h.request_headers_timeout = Some(PbDuration {
            seconds: 1,
            nanos: 0,
        });
    });
    let (_proxy, address) = proxy(slow).await;
    let fine = WellBehaved::start(address);
    let mut s = TcpStream::connect(address).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n")
        .await
        .unwrap();
    let writer = async {
        // A header line now and then, never the blank line that ends them.
        for i in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if s.write_all(format!("x-more-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
        }
        false
    };
    let closed = tokio::time::timeout(PATIENCE, writer)
        .await
        .unwrap_or(false);
    let (rest, eof) = read_to_close(&mut s).await;
    assert!(closed || eof, "the slow connection stayed open: {rest}");
    assert!(!rest.contains(" 200 "), "{rest}");
    assert!(fine.finish().await > 0);
}

/// HTTP/2 rapid reset (CVE-2023-44487): a client opening streams to a slow route and
/// resetting them at once gets a GOAWAY and its connection closed (Envoy's premature-reset
/// rule: half of 500 streams reset within a second of opening, before their response);
/// another connection keeps getting 200s.
#[tokio::test]
async fn http2_rapid_reset_ends_the_connection_with_goaway() {
    let (_proxy, address) = proxy(hcm(|_| {})).await;
    let fine = WellBehaved::start(address);
    let tcp = TcpStream::connect(address).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut sent = 0;
    for _ in 0..10_000 {
        let request = hyper::Request::get("http://x/slow").body(()).unwrap();
        let ready = tokio::time::timeout(PATIENCE, client.clone().ready()).await;
        let Ok(Ok(mut ready)) = ready else { break };
        match ready.send_request(request, false) {
            Ok((_response, mut stream)) => stream.send_reset(h2::Reason::CANCEL),
            Err(_) => break,
        }
        sent += 1;
        if connection.is_finished() {
            break;
        }
        client = ready;
    }
    let ended = tokio::time::timeout(PATIENCE, connection)
        .await
        .expect("the abusive connection stayed open")
        .unwrap();
    // The client still holds its handle: only the proxy can have ended the connection.
    drop(client);
    let goaway = match &ended {
        Ok(()) => true,
        Err(e) => e.is_go_away() || e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM),
    };
    assert!(goaway, "after {sent} resets: {ended:?}");
    eprintln!("rapid reset: connection ended after {sent} streams: {ended:?}");
    fine.finish().await;
}
