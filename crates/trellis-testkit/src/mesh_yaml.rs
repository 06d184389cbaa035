//! Config documents the end-to-end tests write into a control plane's config directory:
//! a Service, a Sidecar with one explicit egress listener, the reviews WorkloadEntries, and
//! the bookinfo samples of the corpus.

use std::fmt::Display;

use crate::corpus::corpus_dir;

/// A Service `name` in `default` selecting `app: name`, with one HTTP port 9080.
pub fn service(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{app: {name}}}
  ports:
  - {{name: http, port: 9080}}
"
    )
}

/// A Sidecar `name` in `default` whose HTTP egress listener binds `bind:9080` without
/// capture; with `selector`, it applies only to workloads labelled `app: selector`.
pub fn sidecar_egress(name: &str, selector: Option<&str>, bind: impl Display) -> String {
    let selector = selector
        .map(|app| format!("  workloadSelector:\n    labels: {{app: {app}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {name}, namespace: default}}
spec:
{selector}  egress:
  - port: {{number: 9080, protocol: HTTP, name: http}}
    bind: {bind}
    captureMode: NONE
    hosts: [./*]
"
    )
}

/// The WorkloadEntry of reviews `v{version}` at `127.0.0.1{version}:port`.
pub fn workload_entry(version: usize, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v{version}, namespace: default}}
spec:
  address: 127.0.0.1{version}
  ports: {{http: {port}}}
  labels: {{app: reviews, version: v{version}, security.istio.io/tlsMode: disabled}}
"
    )
}

/// Documents joined into one YAML stream.
pub fn stream<S: AsRef<str>>(documents: &[S]) -> String {
    documents
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A file of Istio's bookinfo samples in the corpus (`path` below `samples/bookinfo`).
pub fn bookinfo_sample(path: &str) -> String {
    let path = corpus_dir().join("istio/samples/bookinfo").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A file of Istio's bookinfo networking samples in the corpus.
pub fn bookinfo(file: &str) -> String {
    bookinfo_sample(&format!("networking/{file}"))
}

/// The Sidecar of reviews: port 9080 served on `bind:9080` without capture, delivered to
/// `127.0.0.1:app_port`.
pub fn sidecar_ingress(bind: impl Display, app_port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: reviews, namespace: default}}
spec:
  workloadSelector:
    labels: {{app: reviews}}
  ingress:
  - port: {{number: 9080, protocol: HTTP, name: http}}
    bind: {bind}
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:{app_port}
"
    )
}

/// The namespace-wide PeerAuthentication of `default` in `mode` (STRICT, PERMISSIVE...).
pub fn peer_authentication(mode: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: default}}
spec:
  mtls: {{mode: {mode}}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selected_sidecar_names_its_workloads() {
        let yaml = sidecar_egress("c", Some("c"), "127.0.0.9");
        assert!(yaml.contains("spec:\n  workloadSelector:\n    labels: {app: c}\n  egress:\n"));
        let yaml = sidecar_egress("default", None, "127.0.0.9");
        assert!(yaml.contains("spec:\n  egress:\n"), "{yaml}");
        assert!(yaml.contains("bind: 127.0.0.9\n"), "{yaml}");
    }

    #[test]
    fn a_stream_separates_documents() {
        assert_eq!(stream(&["a: 1\n", "b: 2\n"]), "a: 1\n---\nb: 2\n");
    }
}
