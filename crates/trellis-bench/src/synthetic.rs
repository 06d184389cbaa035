//! A synthetic mesh written as Istio YAML and loaded through the store, as
//! `trellis control-plane` would load a directory: `services` Services of one HTTP port in
//! namespaces of 100, each with `endpoints` WorkloadEntries (versions v1..v3); every tenth
//! service also has a DestinationRule with three subsets and a VirtualService splitting
//! 90/10 between two of them. One file per service, so a change re-reads one file.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use trellis_config::store::{Snapshot, SourceFile, StoreState};
use trellis_control_plane::proxy::{ProxyKind, ProxyNode};

pub const SERVICES_PER_NAMESPACE: usize = 100;
pub const PORT: u32 = 8080;

/// The parameters of a synthetic mesh.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub services: usize,
    pub endpoints: usize,
}

pub fn namespace(service: usize) -> String {
    format!("ns-{}", service / SERVICES_PER_NAMESPACE)
}

pub fn service_name(service: usize) -> String {
    format!("svc-{service}")
}

/// The address of endpoint `j` of service `i`; `generation` moves it (an endpoint change).
pub fn endpoint_address(i: usize, j: usize, generation: usize) -> String {
    let n = i * 64 + j;
    format!(
        "10.{}.{}.{}",
        (n >> 16) & 0xff,
        (n >> 8) & 0xff,
        ((n & 0xff) + generation * 7) % 250 + 1
    )
}

/// A version of a service's config: `endpoints` moves its endpoints, `routes` its
/// VirtualService's traffic split (v1 gets `90 - routes % 80` percent).
#[derive(Debug, Clone, Copy, Default)]
pub struct Generation {
    pub endpoints: usize,
    pub routes: usize,
}

/// Whether service `i` has a DestinationRule and a VirtualService.
pub fn has_routes(i: usize) -> bool {
    i.is_multiple_of(10)
}

/// The YAML of service `i` at `generation`.
pub fn service_yaml(shape: Shape, i: usize, generation: Generation) -> String {
    let v1 = 90 - generation.routes % 80;
    let v3 = 100 - v1;
    let ns = namespace(i);
    let name = service_name(i);
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{app: {name}}}\n  ports:\n  - {{name: http, port: {PORT}, targetPort: 8000}}\n"
    );
    for j in 0..shape.endpoints {
        out.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}-{j}, namespace: {ns}}}\nspec:\n  address: {}\n  labels: {{app: {name}, version: v{}}}\n",
            endpoint_address(i, j, generation.endpoints),
            j % 3 + 1
        ));
    }
    if has_routes(i) {
        out.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: {name}\n  trafficPolicy: {{loadBalancer: {{simple: LEAST_REQUEST}}}}\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n  - {{name: v3, labels: {{version: v3}}}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: [{name}]\n  http:\n  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]\n    route: [{{destination: {{host: {name}, subset: v2}}}}]\n  - route:\n    - {{destination: {{host: {name}, subset: v1}}, weight: {v1}}}\n    - {{destination: {{host: {name}, subset: v3}}, weight: {v3}}}\n    retries: {{attempts: 2, perTryTimeout: 1s}}\n    timeout: 5s\n"
        ));
    }
    out
}

pub fn source(shape: Shape, i: usize, generation: usize) -> SourceFile {
    let file = format!("{}.yaml", service_name(i));
    SourceFile {
        decoded: trellis_api::decode_bytes(
            &file,
            service_yaml(
                shape,
                i,
                Generation {
                    endpoints: generation,
                    routes: 0,
                },
            )
            .as_bytes(),
            "default",
        ),
        path: PathBuf::from(file),
    }
}

/// All sources of the mesh at generation 0.
pub fn sources(shape: Shape) -> Vec<SourceFile> {
    (0..shape.services).map(|i| source(shape, i, 0)).collect()
}

/// Applies the sources to an empty store; panics on a problem (the mesh is generated valid).
pub fn snapshot(sources: &[SourceFile]) -> Arc<Snapshot> {
    let applied = StoreState::default().apply(sources, vec![]);
    assert!(
        applied.problems.is_empty(),
        "synthetic mesh has problems: {:?}",
        &applied.problems[..applied.problems.len().min(3)]
    );
    applied.state.snapshot
}

/// Proxy `k` of `proxies`: a sidecar of a service spread evenly over the mesh.
pub fn proxy(shape: Shape, k: usize, proxies: usize) -> ProxyNode {
    let service = k * shape.services / proxies.max(1);
    let ns = namespace(service);
    let name = service_name(service);
    let ip = IpAddr::from([10, 250, (k >> 8) as u8, (k & 0xff) as u8]);
    let workload = format!("{name}-proxy-{k}");
    ProxyNode {
        id: ProxyNode::node_id(ProxyKind::Sidecar, &ip.to_string(), &workload, &ns),
        kind: ProxyKind::Sidecar,
        ips: vec![ip],
        namespace: ns,
        service_account: "default".into(),
        labels: BTreeMap::from([("app".into(), name), ("version".into(), "v1".into())]),
        workload_name: workload,
        ports: vec![],
        sds: false,
        dns_capture: false,
    }
}
