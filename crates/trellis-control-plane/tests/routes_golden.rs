//! Golden tests for HTTP route translation: each bookinfo networking sample from Istio,
//! applied verbatim on top of the bookinfo Services and `destination-rule-all.yaml`, is
//! translated for the productpage sidecar (and, for samples with a Gateway, for the
//! ingress gateway), and the route configurations are compared with the reviewed files in
//! `tests/golden/routes/`. `TRELLIS_UPDATE_GOLDEN=1` rewrites the files; review the diff.
//!
//! Also checks the property that every cluster a route names is one CDS provides (or
//! Istio's passthrough / black-hole clusters).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use trellis_config::store::{Snapshot, SourceFile, StoreState};
use trellis_control_plane::mesh::MeshSnapshot;
use trellis_control_plane::proxy::{ProxyKind, ProxyNode};
use trellis_control_plane::translate::routes::gateway;
use trellis_control_plane::translate::{self, clusters, names, scope::Scope};

const NETWORKING: &str = "../../../shared/corpus/istio/samples/bookinfo/networking";
const PLATFORM: &str = "../../../shared/corpus/istio/samples/bookinfo/platform/kube/bookinfo.yaml";

fn corpus(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn snapshot(files: &[PathBuf]) -> Arc<Snapshot> {
    let sources: Vec<SourceFile> = files
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            SourceFile {
                path: p.clone(),
                decoded: trellis_api::decode_bytes(&p.display().to_string(), &bytes, "default"),
            }
        })
        .collect();
    StoreState::default().apply(&sources, vec![]).state.snapshot
}

fn mesh_for(sample: &Path) -> MeshSnapshot {
    let files = [
        corpus(PLATFORM),
        corpus(&format!("{NETWORKING}/destination-rule-all.yaml")),
        sample.to_path_buf(),
    ];
    MeshSnapshot::new(snapshot(&files), &[], Arc::new(Default::default()))
}

fn productpage() -> ProxyNode {
    let id = ProxyNode::node_id(ProxyKind::Sidecar, "10.1.0.7", "productpage-v1", "default");
    let labels = [("app", "productpage"), ("version", "v1")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ProxyNode::from_parts(&id, &Default::default(), labels).expect("node id")
}

fn ingress_gateway() -> ProxyNode {
    let id = ProxyNode::node_id(
        ProxyKind::Router,
        "10.1.0.2",
        "istio-ingressgateway",
        "istio-system",
    );
    let labels = [("istio", "ingressgateway"), ("app", "istio-ingressgateway")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ProxyNode::from_parts(&id, &Default::default(), labels).expect("node id")
}

/// The gateway's route configurations, one per RDS name its servers use.
fn gateway_routes(mesh: &MeshSnapshot, proxy: &ProxyNode) -> Vec<RouteConfiguration> {
    let names: BTreeSet<String> = gateway::gateways_for(mesh, proxy)
        .flat_map(|(r, g)| {
            g.servers
                .iter()
                .filter_map(move |s| gateway::server_route_name(s, r))
        })
        .collect();
    names
        .iter()
        .filter_map(|n| gateway::route_configuration(mesh, proxy, n))
        .collect()
}

fn samples() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(corpus(NETWORKING))
        .expect("bookinfo networking samples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

#[test]
fn bookinfo_route_goldens() {
    let update = std::env::var_os("TRELLIS_UPDATE_GOLDEN").is_some();
    let dir = corpus("tests/golden/routes");
    let mut mismatched = Vec::new();
    for sample in samples() {
        let mesh = mesh_for(&sample);
        let mut text = String::new();
        let sidecar = translate::translate(&mesh, &productpage());
        text.push_str("# sidecar productpage-v1.default\n");
        for rc in &sidecar.routes {
            text.push_str(&render(rc));
        }
        let gateway = gateway_routes(&mesh, &ingress_gateway());
        if !gateway.is_empty() {
            text.push_str("\n# router istio-ingressgateway.istio-system\n");
            for rc in &gateway {
                text.push_str(&render(rc));
            }
        }
        let stem = sample
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("sample");
        let golden = dir.join(format!("{stem}.txt"));
        if update {
            std::fs::create_dir_all(&dir).expect("golden dir");
            std::fs::write(&golden, &text).expect("write golden");
        } else {
            let want = std::fs::read_to_string(&golden).unwrap_or_default();
            if want != text {
                mismatched.push(golden.display().to_string());
            }
        }
    }
    assert!(
        mismatched.is_empty(),
        "route configurations differ from the golden files (TRELLIS_UPDATE_GOLDEN=1 to rewrite, then review): {mismatched:#?}"
    );
}

#[test]
fn every_routed_cluster_exists() {
    for sample in samples() {
        for proxy in [productpage(), ingress_gateway()] {
            let mesh = mesh_for(&sample);
            let scope = Scope::of(&mesh, &proxy);
            let known: BTreeSet<String> = clusters::clusters(&mesh, &proxy, &scope)
                .into_iter()
                .map(|c| c.name)
                .collect();
            let routes = match proxy.kind {
                ProxyKind::Sidecar => translate::translate(&mesh, &proxy).routes,
                ProxyKind::Router => gateway_routes(&mesh, &proxy),
            };
            for rc in &routes {
                for vh in &rc.virtual_hosts {
                    for r in &vh.routes {
                        for cluster in referenced_clusters(r) {
                            // A destination outside the registry has no cluster in Istio
                            // either: Envoy answers 503 NC (validate_clusters is off).
                            let outside = names::parse_outbound_cluster(&cluster)
                                .is_some_and(|(_, _, host)| mesh.registry.service(host).is_none());
                            assert!(
                                outside
                                    || known.contains(&cluster)
                                    || cluster == names::PASSTHROUGH_CLUSTER
                                    || cluster == names::BLACKHOLE_CLUSTER,
                                "{}: {} route {}/{} names unknown cluster {cluster}",
                                sample.display(),
                                proxy.id,
                                vh.name,
                                r.name
                            );
                        }
                    }
                }
            }
        }
    }
}

fn referenced_clusters(r: &Route) -> Vec<String> {
    let Some(Action::Route(action)) = &r.action else {
        return Vec::new();
    };
    let mut out: Vec<String> = action
        .request_mirror_policies
        .iter()
        .map(|m| m.cluster.clone())
        .collect();
    match &action.cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => out.push(c.clone()),
        Some(ClusterSpecifier::WeightedClusters(w)) => {
            out.extend(w.clusters.iter().map(|c| c.name.clone()))
        }
        _ => {}
    }
    out
}

/// A readable, stable text form: Debug output without default-valued fields, wrapper
/// types collapsed, per-filter configs decoded.
fn render(rc: &RouteConfiguration) -> String {
    let mut rc = rc.clone();
    let mut filters = Vec::new();
    for vh in &mut rc.virtual_hosts {
        for r in &mut vh.routes {
            let mut configs: Vec<(String, Any)> = r.typed_per_filter_config.drain().collect();
            configs.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, any) in configs {
                filters.push(format!(
                    "per-filter config of route {:?} in {:?}: {name} = {}",
                    r.name,
                    vh.name,
                    decode_filter(&any)
                ));
            }
        }
    }
    let mut out = compact(&format!("{rc:#?}"));
    for f in filters {
        out.push_str(&compact(&f));
    }
    out.push('\n');
    out
}

fn decode_filter(any: &Any) -> String {
    match any.type_url.rsplit('/').next() {
        Some("envoy.extensions.filters.http.fault.v3.HTTPFault") => {
            format!(
                "{:#?}",
                HttpFault::decode(any.value.as_slice()).unwrap_or_default()
            )
        }
        Some("envoy.extensions.filters.http.cors.v3.CorsPolicy") => {
            format!(
                "{:#?}",
                CorsPolicy::decode(any.value.as_slice()).unwrap_or_default()
            )
        }
        _ => format!("{any:?}"),
    }
}

fn compact(debug: &str) -> String {
    let rules = [
        (r"BoolValue \{\s*value: (true|false),\s*\}", "BoolValue($1)"),
        (r"UInt32Value \{\s*value: (\d+),\s*\}", "UInt32Value($1)"),
        (
            r"Duration \{\s*seconds: (-?\d+),\s*nanos: (-?\d+),\s*\}",
            "Duration(${1}s ${2}ns)",
        ),
        (
            r#"Any \{\s*type_url: "([^"]*)",\s*value: \[[^\]]*\],\s*\}"#,
            "Any($1)",
        ),
    ];
    let mut text = debug.to_string();
    for (pattern, replacement) in rules {
        let re = regex::Regex::new(pattern).expect("compaction regex");
        text = re.replace_all(&text, replacement).into_owned();
    }
    let default_field =
        regex::Regex::new(r#"^\s*[a-z_0-9]+: (None|\[\]|\{\}|0|false|""),?$"#).expect("regex");
    // Enum fields at their zero value print as names.
    let default_enum = regex::Regex::new(
        r"^\s*(cluster_not_found_response_code: ServiceUnavailable|priority: Default|internal_redirect_action: PassThroughInternalRedirect|append_action: AppendIfExistsOrAdd|require_tls: None|response_code: MovedPermanently|denominator: Hundred),$",
    )
    .expect("regex");
    text.lines()
        .filter(|l| !default_field.is_match(l) && !default_enum.is_match(l))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
