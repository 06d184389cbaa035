//! WebSocket-style upgrades through the proxy and through Envoy, on the same configuration:
//! a connection manager with `upgrade_configs: websocket`, a route that turns it off
//! (`/off`), and a second connection manager without it, all to one backend that answers
//! an upgrade with 101 and then echoes, and says `bye` after the client's half-close.
//! Both data planes must pass the 101, splice the bytes both ways, deliver the backend's
//! last words when it closes, end the connection when the client closes its sending half
//! (Envoy carries no half-close on upgrades), and refuse the upgrades not enabled with 403. The Envoy half runs when `envoy` is on
//! PATH (`scripts/test.sh` installs it) and says so when it is not.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::{ClusterSpecifier, UpgradeConfig};
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    RouteSpecifier, UpgradeConfig as HcmUpgrade,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType as HttpFilterConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use trellis_proxy::Proxy;
use trellis_proxy::config::Snapshot;

const PATIENCE: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn address(port: u16) -> Option<Address> {
    Some(Address {
        address: Some(AddressKind::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(PortSpecifier::PortValue(port.into())),
            ..Default::default()
        })),
    })
}

/// Reads up to the end of an HTTP head; returns it (lower-cased).
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

/// The backend: 101 and echo to upgrades (on `close`: `bye`, then it closes), 200 `plain`
/// to anything else.
async fn echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                if !head.contains("upgrade: websocket") {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain")
                        .await;
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
                    .await;
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if &buf[..n] == b"close" {
                        let _ = s.write_all(b"bye").await;
                        return;
                    }
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    address
}

fn route(prefix: &str, upgrades: Vec<UpgradeConfig>) -> Route {
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix(prefix.into())),
            ..Default::default()
        }),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster("echo".into())),
            upgrade_configs: upgrades,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A listener on `port`; with `websocket`, its connection manager enables the upgrade,
/// and route `/off` disables it again.
fn listener(name: &str, port: u16, websocket: bool) -> Listener {
    let off = UpgradeConfig {
        upgrade_type: "websocket".into(),
        enabled: Some(BoolValue { value: false }),
        ..Default::default()
    };
    let hcm = HttpConnectionManager {
        stat_prefix: name.into(),
        upgrade_configs: if websocket {
            vec![HcmUpgrade {
                upgrade_type: "websocket".into(),
                ..Default::default()
            }]
        } else {
            vec![]
        },
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            name: name.into(),
            virtual_hosts: vec![VirtualHost {
                name: "all".into(),
                domains: vec!["*".into()],
                routes: vec![route("/off", vec![off]), route("/", vec![])],
                ..Default::default()
            }],
            ..Default::default()
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(HttpFilterConfig::TypedConfig(pack_any(Router::default()))),
            ..Default::default()
        }],
        ..Default::default()
    };
    Listener {
        name: name.into(),
        address: address(port),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn cluster(backend: SocketAddr) -> Cluster {
    Cluster {
        name: "echo".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
            seconds: 5,
            nanos: 0,
        }),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: "echo".into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                        address: address(backend.port()),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Trellis proxy on both listeners (ports `on`, `off`).
async fn trellis(backend: SocketAddr, on: u16, off: u16) -> Arc<Proxy> {
    let mut snapshot = Snapshot::default();
    for l in [listener("ws_on", on, true), listener("ws_off", off, false)] {
        let l = trellis_proxy::convert::listener::listener(&l).unwrap();
        snapshot.listeners.insert(l.name.clone(), Arc::new(l));
    }
    let c =
        trellis_proxy::convert::cluster::cluster(&cluster(backend), &Default::default()).unwrap();
    snapshot.clusters.insert(c.name.clone(), Arc::new(c));
    let proxy = Proxy::new(Default::default());
    let errors = proxy.listeners.reconcile(&proxy, &snapshot);
    assert!(errors.is_empty(), "{errors:?}");
    proxy.config.store(Arc::new(snapshot));
    proxy
}

/// The same configuration as an Envoy bootstrap.
fn envoy_bootstrap(backend: SocketAddr, on: u16, off: u16, admin: u16) -> String {
    let listener = |name: &str, port: u16, websocket: bool| {
        let upgrades = if websocket {
            "          upgrade_configs: [{upgrade_type: websocket}]\n"
        } else {
            ""
        };
        format!(
            "  - name: {name}
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
{upgrades}          route_config:
            name: {name}
            virtual_hosts:
            - name: all
              domains: ['*']
              routes:
              - match: {{prefix: /off}}
                route:
                  cluster: echo
                  upgrade_configs: [{{upgrade_type: websocket, enabled: false}}]
              - match: {{prefix: /}}
                route: {{cluster: echo}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              '@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"
        )
    };
    format!(
        "admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
{}{}  clusters:
  - name: echo
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: echo
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{socket_address: {{address: 127.0.0.1, port_value: {}}}}}
",
        listener("ws_on", on, true),
        listener("ws_off", off, false),
        backend.port()
    )
}

const UPGRADE: &str = "connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A connection upgraded through `to`, its echo checked both ways.
async fn upgraded(data_plane: &str, to: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(to).await.unwrap();
    s.write_all(format!("GET /chat HTTP/1.1\r\nhost: echo\r\n{UPGRADE}").as_bytes())
        .await
        .unwrap();
    let head = tokio::time::timeout(PATIENCE, read_head(&mut s))
        .await
        .unwrap();
    assert!(head.starts_with("http/1.1 101"), "{data_plane}: {head}");
    assert!(head.contains("upgrade: websocket"), "{data_plane}: {head}");
    for message in ["hello", "world, twice as long"] {
        s.write_all(message.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; message.len()];
        tokio::time::timeout(PATIENCE, s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(buf, message.as_bytes(), "{data_plane}");
    }
    s
}

/// Upgrades through `on`; refusals on `/off` and on `off`; a plain request still works.
async fn check(data_plane: &str, on: u16, off: u16) {
    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    // Upgraded: 101, echo both ways; the backend's last words arrive before its close.
    let mut s = upgraded(data_plane, at(on)).await;
    s.write_all(b"close").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rest, b"bye", "{data_plane}: after the backend closed");
    // The client closes its sending half: the connection ends.
    let mut s = upgraded(data_plane, at(on)).await;
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(PATIENCE, s.read_to_end(&mut rest)).await;
    assert!(
        ended.is_ok(),
        "{data_plane}: still open after the client's half-close"
    );

    // Not enabled: on the route, or on the connection manager.
    for (port, path) in [(on, "/off"), (off, "/chat")] {
        let mut s = TcpStream::connect(at(port)).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: echo\r\n{UPGRADE}").as_bytes())
            .await
            .unwrap();
        let head = tokio::time::timeout(PATIENCE, read_head(&mut s))
            .await
            .unwrap();
        assert!(
            head.starts_with("http/1.1 403"),
            "{data_plane} {port}{path}: {head}"
        );
    }
    let mut s = TcpStream::connect(at(off)).await.unwrap();
    s.write_all(b"GET /chat HTTP/1.1\r\nhost: echo\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut plain = String::new();
    tokio::time::timeout(PATIENCE, s.read_to_string(&mut plain))
        .await
        .unwrap()
        .unwrap();
    assert!(
        plain.starts_with("HTTP/1.1 200") && plain.ends_with("plain"),
        "{data_plane}: {plain}"
    );
}

#[tokio::test]
async fn websocket_upgrades_through_the_trellis_proxy() {
    let backend = echo_backend().await;
    let (on, off) = (free_port(), free_port());
    let _proxy = trellis(backend, on, off).await;
    check("trellis", on, off).await;
}

#[tokio::test]
async fn websocket_upgrades_through_envoy() {
    let Some(envoy) = trellis_testkit::envoy() else {
        eprintln!("skipped: envoy is not on PATH");
        return;
    };
    let backend = echo_backend().await;
    let (on, off, admin) = (free_port(), free_port(), free_port());
    let dir = trellis_testkit::temp_dir();
    let bootstrap = dir.path().join("envoy.yaml");
    std::fs::write(&bootstrap, envoy_bootstrap(backend, on, off, admin)).unwrap();
    let _envoy = trellis_testkit::Process::start(
        "envoy",
        trellis_testkit::mesh::envoy_command(&envoy, &bootstrap),
        &dir.path().join("envoy.log"),
    );
    wait_listening(&[on, off], dir.path()).await;
    check("envoy", on, off).await;
}

async fn wait_listening(ports: &[u16], dir: &Path) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for port in ports {
        while TcpStream::connect(("127.0.0.1", *port)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "envoy never listened on {port}: {}",
                std::fs::read_to_string(dir.join("envoy.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
