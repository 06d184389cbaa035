//! Behaviour scenarios: Istio configuration, a few workloads, a request script and the
//! outcomes Istio documents — as data, so that the same scenario runs through any data
//! plane (Envoy first, the Trellis proxy next) and the outcomes can be compared.
//!
//! A [`Scenario`] is static: its configuration is written before the control plane starts,
//! and the data plane's readiness (Envoy: `LIVE`, after its initial listeners, routes,
//! clusters and endpoints) means the configuration is in force. Nothing is measured while
//! configuration is still converging, so a proportion is never polluted by the previous
//! routing.
//!
//! - [`catalog`]: the scenarios themselves (bookinfo samples and Istio task YAML verbatim,
//!   plus a few of our own);
//! - [`runner`]: addresses, config files, control plane, data plane, traffic, judgement;
//! - [`data_plane`]: what a data plane must provide ([`DataPlane`]) and [`Envoy`];
//! - [`backend`]: workloads that answer, sleep or fail as scripted and count what they see;
//! - [`client`]: one request with status, headers, body and elapsed time;
//! - [`expect`]: pure judgement of a batch of outcomes (binomial tolerances live here);
//! - [`corpus`]: Istio's samples and task snippets from `shared/corpus`.
//!
//! Every loop is bounded in count and time; timing is only ever checked as a lower bound.

pub mod backend;
pub mod catalog;
pub mod client;
pub mod corpus;
pub mod data_plane;
pub mod expect;
pub mod runner;

use std::time::Duration;

pub use data_plane::{DataPlane, Envoy, NodeSpec, RunningDataPlane, start_ready};
pub use expect::Expect;
pub use runner::{CheckReport, Lease, Report, Runner};

/// One behaviour to prove: configuration, workloads and checks.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    /// What Istio documents, in a sentence (printed on failure).
    pub summary: &'static str,
    /// Config files written to the control plane's directory, verbatim: (file name, YAML).
    pub config: Vec<(String, String)>,
    /// The MeshConfig (`--mesh-config`), if not Istio's defaults.
    pub mesh_config: Option<String>,
    /// `Sidecar.outboundTrafficPolicy.mode` for the client sidecar (`REGISTRY_ONLY`...).
    pub outbound_traffic_policy: Option<&'static str>,
    /// Services in namespace `default`, each with its workloads (WorkloadEntries).
    pub services: Vec<Service>,
    /// Run in order; all are run and judged even when one fails.
    pub checks: Vec<Check>,
}

/// A Kubernetes Service (`selector: {app: NAME}`, one HTTP port) and its workloads.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: &'static str,
    pub port: u16,
    pub workloads: Vec<Workload>,
}

/// One workload of a service: labels `app: SERVICE, version: VERSION`. It answers with
/// header `x-trellis-workload: SERVICE-VERSION` and that name as its body.
#[derive(Debug, Clone)]
pub struct Workload {
    pub version: &'static str,
    pub behaviour: Behaviour,
}

/// How a workload answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 with its name.
    Ok,
    /// 200 after sleeping this long (holds the connection: timeouts, circuit breaking).
    Slow(Duration),
    /// Answers `status` to `failures` requests, then 200 once, and again: with sequential
    /// requests each one needs exactly `failures + 1` attempts.
    FailThenOk { failures: u32, status: u16 },
    /// Always `status`.
    Fail(u16),
}

/// A batch of identical requests and what must hold of it.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub request: Request,
    pub count: usize,
    /// How many requests are in flight at once (1: sequential).
    pub concurrency: usize,
    pub expect: Vec<Expect>,
}

/// A request from the client workload through its sidecar: to the sidecar's egress
/// listener on `port`, with `Host: host`.
#[derive(Debug, Clone)]
pub struct Request {
    pub host: String,
    pub port: u16,
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Per request; generous (a fault delay of 7 s must fit), never an assertion.
    pub timeout: Duration,
}

impl Request {
    pub fn get(host: &str, port: u16, path: &str) -> Request {
        Request {
            host: host.to_string(),
            port,
            method: "GET",
            path: path.to_string(),
            headers: Vec::new(),
            timeout: Duration::from_secs(15),
        }
    }

    /// The same request with another method (`OPTIONS` for a CORS preflight).
    pub fn method(mut self, method: &'static str) -> Request {
        self.method = method;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

impl Service {
    pub fn new(name: &'static str, port: u16, versions: &[&'static str]) -> Service {
        Service {
            name,
            port,
            workloads: versions
                .iter()
                .map(|v| Workload {
                    version: v,
                    behaviour: Behaviour::Ok,
                })
                .collect(),
        }
    }

    /// The same service with `version` behaving as `behaviour`.
    pub fn with(mut self, version: &str, behaviour: Behaviour) -> Service {
        for w in self.workloads.iter_mut().filter(|w| w.version == version) {
            w.behaviour = behaviour;
        }
        self
    }
}

impl Check {
    pub fn new(name: &'static str, request: Request, count: usize) -> Check {
        Check {
            name,
            request,
            count,
            concurrency: 1,
            expect: Vec::new(),
        }
    }

    pub fn concurrency(mut self, n: usize) -> Check {
        self.concurrency = n.max(1);
        self
    }

    pub fn expect(mut self, e: Expect) -> Check {
        self.expect.push(e);
        self
    }
}

/// A workload's name as it answers: `SERVICE-VERSION`.
pub fn workload_name(service: &str, version: &str) -> String {
    format!("{service}-{version}")
}
