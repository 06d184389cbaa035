//! Golden files and Envoy's own verdict for the clusters and listeners of a few
//! representative meshes (`tests/golden/meshes/*.yaml`; the first document comment names
//! the proxy). Golden files are Debug text with packed `Any`s expanded and proto3 defaults
//! left out; `TRELLIS_UPDATE_GOLDEN=1` rewrites them. Every mesh is also packed into a
//! static Envoy bootstrap (EDS clusters turned STATIC with their endpoints inline) and
//! checked with `envoy --mode validate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::bootstrap::v3::bootstrap::{DynamicResources, StaticResources};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::api_config_source::ApiType;
use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::core::v3::{ApiConfigSource, ApiVersion, GrpcService, Node};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use prost::Message;

use crate::mesh::MeshSnapshot;
use crate::proxy::{ProxyKind, ProxyNode};
use crate::testing::snapshot;
use crate::translate::translate;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// A mesh file and the proxy it is translated for: the first line reads
/// `# proxy: sidecar|router IP NAME NAMESPACE [k=v,...] [sds]` (`sds`: the proxy has a
/// node agent, so it gets Istio mTLS); a second line `# mesh: {JSON}` gives the mesh
/// config.
fn load(path: &Path) -> (MeshSnapshot, ProxyNode) {
    let text = std::fs::read_to_string(path).unwrap();
    let header = text.lines().next().unwrap_or_default();
    let fields: Vec<&str> = header
        .strip_prefix("# proxy:")
        .unwrap_or_else(|| panic!("{}: first line must be '# proxy: ...'", path.display()))
        .split_whitespace()
        .collect();
    let kind = if fields[0] == "router" {
        ProxyKind::Router
    } else {
        ProxyKind::Sidecar
    };
    let labels: BTreeMap<String, String> = fields
        .get(4)
        .map(|l| {
            l.split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let id = ProxyNode::node_id(kind, fields[1], fields[2], fields[3]);
    let metadata: BTreeMap<String, String> = fields
        .get(5)
        .filter(|f| **f == "sds")
        .map(|_| (crate::proxy::SDS_METADATA.to_string(), "true".to_string()))
        .into_iter()
        .collect();
    let proxy = ProxyNode::from_parts(&id, &metadata, labels).unwrap();
    let mesh_config = text
        .lines()
        .nth(1)
        .and_then(|l| l.strip_prefix("# mesh:"))
        .map(|json| trellis_api::decode_mesh_config("mesh", json.as_bytes()).unwrap())
        .unwrap_or_default();
    let mesh = MeshSnapshot::new(snapshot(&text), &[], Arc::new(mesh_config));
    (mesh, proxy)
}

fn meshes() -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(root().join("meshes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    all.sort();
    assert!(!all.is_empty());
    all
}

/// Decodes a packed message by type URL into its Debug text.
fn expand_any(type_url: &str, bytes: &[u8]) -> Option<String> {
    use envoy_types::pb::envoy::extensions as ext;
    macro_rules! try_types {
        ($($t:ty),* $(,)?) => {
            $(
                if type_url == <$t as prost::Name>::type_url() {
                    return <$t>::decode(bytes).ok().map(|m| format!("{m:#?}"));
                }
            )*
        };
    }
    try_types!(
        ext::filters::network::http_connection_manager::v3::HttpConnectionManager,
        ext::filters::network::tcp_proxy::v3::TcpProxy,
        ext::access_loggers::file::v3::FileAccessLog,
        ext::access_loggers::filters::cel::v3::ExpressionFilter,
        ext::filters::http::router::v3::Router,
        ext::filters::http::fault::v3::HttpFault,
        ext::filters::http::cors::v3::Cors,
        ext::filters::listener::tls_inspector::v3::TlsInspector,
        ext::filters::listener::http_inspector::v3::HttpInspector,
        ext::filters::listener::original_dst::v3::OriginalDst,
        ext::transport_sockets::tls::v3::UpstreamTlsContext,
        ext::transport_sockets::tls::v3::DownstreamTlsContext,
        ext::transport_sockets::raw_buffer::v3::RawBuffer,
        ext::upstreams::http::v3::HttpProtocolOptions,
        ext::path::r#match::uri_template::v3::UriTemplateMatchConfig,
        crate::translate::authz::rbac::HttpRbac,
        crate::translate::authz::rbac::NetworkRbac,
        crate::translate::authn::jwt::JwtAuthentication,
    );
    None
}

/// Pretty Debug text with `Any` payloads expanded and proto3 defaults dropped.
pub fn render<T: std::fmt::Debug>(value: &T) -> String {
    tidy(&format!("{value:#?}"))
}

fn tidy(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(url) = trimmed
            .strip_prefix("type_url: \"")
            .and_then(|s| s.strip_suffix("\","))
            && lines.get(i + 1).is_some_and(|l| l.trim() == "value: [")
        {
            let mut j = i + 2;
            let mut bytes = Vec::new();
            while j < lines.len() && lines[j].trim() != "]," {
                bytes.push(lines[j].trim().trim_end_matches(',').parse::<u8>().unwrap());
                j += 1;
            }
            out.push(line.to_string());
            match expand_any(url, &bytes) {
                Some(debug) => {
                    let inner = tidy(&debug);
                    let mut inner_lines = inner.lines();
                    out.push(format!(
                        "{indent}value: {}",
                        inner_lines.next().unwrap_or_default()
                    ));
                    for l in inner_lines {
                        out.push(format!("{indent}{l}"));
                    }
                    if let Some(last) = out.last_mut() {
                        last.push(',');
                    }
                }
                None => out.push(format!("{indent}value: <{} bytes>,", bytes.len())),
            }
            i = j + 1;
            continue;
        }
        let is_default = trimmed.split_once(": ").is_some_and(|(key, value)| {
            key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && ["None,", "[],", "\"\",", "0,", "false,", "0.0,", "{},"].contains(&value)
        });
        if !is_default {
            out.push(line.to_string());
        }
        i += 1;
    }
    out.join("\n") + "\n"
}

fn check_golden(path: &Path, actual: &str) {
    if std::env::var_os("TRELLIS_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "missing golden file {}; run with TRELLIS_UPDATE_GOLDEN=1 and review it",
            path.display()
        )
    });
    if expected != actual {
        let diff_at = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the translation at line {}: expected {:?}, got {:?} \
             (TRELLIS_UPDATE_GOLDEN=1 rewrites it; review the diff)",
            path.display(),
            diff_at + 1,
            expected.lines().nth(diff_at),
            actual.lines().nth(diff_at)
        );
    }
}

#[test]
fn golden_clusters_and_listeners() {
    for mesh_path in meshes() {
        let (mesh, proxy) = load(&mesh_path);
        let out = translate(&mesh, &proxy);
        let stem = mesh_path.file_stem().unwrap().to_string_lossy().to_string();
        let clusters: String = out.clusters.iter().map(render).collect();
        let listeners: String = out.listeners.iter().map(render).collect();
        check_golden(&root().join(format!("clusters/{stem}.txt")), &clusters);
        check_golden(&root().join(format!("listeners/{stem}.txt")), &listeners);
    }
}

/// EDS clusters become STATIC with their endpoints inline, so that the bootstrap is
/// complete without a control plane.
fn with_inline_endpoints(mesh: &MeshSnapshot, clusters: &[Cluster]) -> Vec<Cluster> {
    clusters
        .iter()
        .cloned()
        .map(|mut c| {
            if c.cluster_discovery_type
                == Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
            {
                c.cluster_discovery_type =
                    Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32));
                c.eds_cluster_config = None;
                c.load_assignment =
                    Some(crate::translate::endpoints::load_assignment(mesh, &c.name));
            }
            c
        })
        .collect()
}

/// The node agent's `sds-grpc` cluster, as `trellis bootstrap envoy --sds-socket` writes it.
fn sds_cluster() -> Cluster {
    use envoy_types::pb::envoy::config::core::v3::{Address, Pipe, address};
    use envoy_types::pb::envoy::config::endpoint::v3::{
        ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
    };
    let name = crate::translate::mtls::SDS_CLUSTER.to_string();
    let mut sds = crate::translate::clusters::Building::new(name.clone());
    sds.cluster.cluster_discovery_type =
        Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32));
    sds.cluster.load_assignment = Some(ClusterLoadAssignment {
        cluster_name: name,
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(Address {
                        address: Some(address::Address::Pipe(Pipe {
                            path: "/tmp/trellis-golden-sds.sock".to_string(),
                            ..Default::default()
                        })),
                    }),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    });
    sds.set_http2();
    sds.finish()
}

fn bootstrap(proxy: &ProxyNode, listeners: Vec<Listener>, mut clusters: Vec<Cluster>) -> Bootstrap {
    let mut xds = crate::translate::clusters::Building::new("xds-grpc".to_string());
    xds.cluster.cluster_discovery_type =
        Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32));
    xds.cluster.load_assignment = Some(
        envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment {
            cluster_name: "xds-grpc".to_string(),
            ..Default::default()
        },
    );
    xds.set_http2();
    clusters.push(xds.finish());
    if proxy.sds {
        clusters.push(sds_cluster());
    }
    Bootstrap {
        node: Some(Node {
            id: proxy.id.clone(),
            cluster: "trellis-test".to_string(),
            ..Default::default()
        }),
        static_resources: Some(StaticResources {
            listeners,
            clusters,
            ..Default::default()
        }),
        dynamic_resources: Some(DynamicResources {
            ads_config: Some(ApiConfigSource {
                api_type: ApiType::Grpc as i32,
                transport_api_version: ApiVersion::V3 as i32,
                grpc_services: vec![GrpcService {
                    target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                        cluster_name: "xds-grpc".to_string(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn envoy_accepts_generated_listeners_and_clusters() {
    let Ok(version) = Command::new("envoy").arg("--version").output() else {
        eprintln!(
            "\n\n!!! SKIPPED: `envoy` is not on PATH; Envoy did NOT validate the translation !!!\n"
        );
        return;
    };
    assert!(version.status.success());
    let dir = std::env::temp_dir().join(format!("trellis-envoy-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for mesh_path in meshes() {
        let (mesh, proxy) = load(&mesh_path);
        let out = translate(&mesh, &proxy);
        let clusters = with_inline_endpoints(&mesh, &out.clusters);
        let counts = (
            out.listeners.len(),
            clusters.len() + 1 + usize::from(proxy.sds),
        );
        let config = bootstrap(&proxy, out.listeners, clusters);
        let stem = mesh_path.file_stem().unwrap().to_string_lossy().to_string();
        let file = dir.join(format!("{stem}.pb"));
        std::fs::write(&file, config.encode_to_vec()).unwrap();
        let result = Command::new("envoy")
            .args(["--mode", "validate", "--log-level", "info", "-c"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "Envoy rejects the translation of {}:\n{}\n{}",
            mesh_path.display(),
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
        // Envoy says "OK" to a file it could not make sense of, too: check it read ours.
        let log = String::from_utf8_lossy(&result.stderr).to_string()
            + &String::from_utf8_lossy(&result.stdout);
        for expected in [
            format!("loading {} listener(s)", counts.0),
            format!("loading {} cluster(s)", counts.1),
        ] {
            assert!(
                log.contains(&expected),
                "{}: Envoy did not report {expected:?}:\n{log}",
                mesh_path.display()
            );
        }
    }
    if std::env::var_os("TRELLIS_KEEP_BOOTSTRAP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("bootstraps kept in {}", dir.display());
    }
}
