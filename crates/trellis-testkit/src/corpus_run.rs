//! The "accepts everything" corpus run, shared by the tests that feed every YAML file of
//! Istio's samples (`shared/corpus/istio/samples/**`) and docs tasks
//! (`shared/corpus/istio-docs-tasks`) that Trellis can host to a running `trellis
//! control-plane` and a set of real proxies — a sidecar in each namespace that matters and
//! an ingress gateway router (`istio: ingressgateway` in `istio-system`) — and record what
//! the proxies accept and reject. The data plane is a [`CorpusDataPlane`]: Envoy or the
//! Trellis proxy.
//!
//! To stay within a few minutes on two cores, samples run in [`groups`]: one control plane
//! and one set of proxies per sample directory, with the directory's platform manifests
//! (bookinfo, httpbin, sleep...) loaded once, and the sample files swapped in one at a time
//! as `mesh.yaml`. After each swap the run waits until the control plane publishes the new
//! revision and every proxy has ACKed (or NACKed) what it was sent (`/debug/syncz`), then
//! reads the outcome: the NACKs new since the last step and the rise of the proxies'
//! `update_rejected` counters. Files with no object Trellis hosts (Gateway API kinds only,
//! cert-manager, Ingress...) are skipped with the reason. [`report`] prints the table of
//! file × outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::corpus::{corpus_dir, in_namespace};
use crate::mesh::start_control_plane;
use crate::sds::Agent;
use crate::{Process, free_port, get, temp_dir};

const START: Duration = Duration::from_secs(30);
const SYNC: Duration = Duration::from_secs(20);

/// One proxy of a group: a sidecar of a workload, or the ingress gateway router.
#[derive(Debug, Clone)]
pub struct ProxySpec {
    pub name: &'static str,
    pub namespace: &'static str,
    pub service_account: &'static str,
    /// `k=v,k2=v2`.
    pub labels: &'static str,
    pub router: bool,
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

/// Istio's ingress gateway (`istio: ingressgateway` in `istio-system`).
pub const ROUTER: ProxySpec = ProxySpec {
    name: "istio-ingressgateway",
    namespace: "istio-system",
    service_account: "istio-ingressgateway-service-account",
    labels: "istio=ingressgateway,app=istio-ingressgateway",
    router: true,
};

/// A file of the corpus, applied in a namespace (`kubectl apply -n`).
#[derive(Debug, Clone)]
pub struct Applied {
    pub path: PathBuf,
    pub namespace: &'static str,
}

/// A sample directory: its platform manifests, its Envoys, and the files to try.
#[derive(Debug)]
pub struct Group {
    pub name: String,
    pub setup: Vec<Applied>,
    pub proxies: Vec<ProxySpec>,
    pub steps: Vec<Step>,
}

/// One corpus file to try.
#[derive(Debug)]
pub struct Step {
    pub file: Applied,
    /// Manifests this file needs besides the group's setup (applied with it).
    pub extra: Vec<Applied>,
}

/// Istio's samples in the corpus.
pub fn samples() -> PathBuf {
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
pub fn groups() -> Vec<Group> {
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
    crate::corpus::documents(&read(applied))
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

/// A NACK a proxy sent, as the control plane's `/debug/syncz` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// The proxy's node id.
    pub proxy: String,
    /// `cds`, `eds`, `lds`, `rds`.
    pub type_name: String,
    /// The NACK's `error_detail` message.
    pub detail: String,
}

/// The outcome of one file (or one stage of a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every proxy ACKed; `problems` are the objects the store did not put in force.
    Accepted {
        problems: Vec<String>,
    },
    Skipped(String),
    /// Some proxy rejected what it was sent: its NACKs, and how much the proxies'
    /// `update_rejected` counters rose.
    Rejected {
        nacks: Vec<Nack>,
        rejected: u64,
    },
    /// The proxies did not answer in time, or a process failed.
    Failed(String),
}

/// One line of the table: group, file (with its stage), outcome.
#[derive(Debug, Clone)]
pub struct Row {
    pub group: String,
    pub file: String,
    pub outcome: Outcome,
}

/// What a proxy of the run needs: who it is, where its control plane is, where it lives.
#[derive(Debug)]
pub struct ProxyStart<'a> {
    pub spec: &'a ProxySpec,
    /// The group's directory, for logs and files.
    pub dir: &'a Path,
    /// The proxy's position in its group, to name its files.
    pub index: usize,
    /// Its own loopback address.
    pub ip: IpAddr,
    pub xds: SocketAddr,
}

/// A running proxy of the run.
pub struct StartedProxy {
    /// The admin address (`/stats`, `/ready`).
    pub admin: SocketAddr,
    pub process: Process,
    /// Its stand-in node agent, when it has one.
    pub agent: Option<Agent>,
}

/// The data plane under test.
pub trait CorpusDataPlane {
    /// Shared by the proxies of one group (Envoy: the test CA), made in the group's
    /// directory.
    type Shared;

    fn prepare(&self, dir: &Path) -> Self::Shared;

    /// Starts one proxy; it need not be ready yet (the run waits for its admin).
    fn start(&self, shared: &Self::Shared, at: &ProxyStart<'_>) -> StartedProxy;

    /// The rejections the proxy itself reports (its last `error_detail` per type), read from
    /// its admin at the end of a group: each must be one the control plane saw as a NACK.
    /// None by default (Envoy's admin keeps no such record).
    fn own_rejections(&self, _admin: SocketAddr) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

/// The node id a proxy of `spec` at `ip` introduces itself with (`trellis bootstrap`'s).
pub fn node_id(spec: &ProxySpec, ip: IpAddr) -> String {
    let kind = if spec.router { "router" } else { "sidecar" };
    format!(
        "{kind}~{ip}~{}.{}~{}.svc.cluster.local",
        spec.name, spec.namespace, spec.namespace
    )
}

/// One running group: control plane and proxies.
struct Running {
    dir: tempfile::TempDir,
    debug: SocketAddr,
    control_plane: Process,
    proxies: Vec<(String, StartedProxy)>,
    /// NACKs already seen, by (proxy, type, nonce).
    seen_nacks: BTreeSet<(String, String, String)>,
    rejected: u64,
    revision: u64,
}

impl Running {
    fn write(&self, name: &str, text: &str) {
        let staging = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&staging, text).expect("write");
        std::fs::rename(&staging, self.dir.path().join("config").join(name)).expect("rename");
    }

    fn logs(&self) -> String {
        std::iter::once(&self.control_plane)
            .chain(self.proxies.iter().map(|(_, p)| &p.process))
            .map(|p| p.tail(15))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn json(&self, path: &str) -> Result<Value, String> {
        let reply = get(self.debug, path, &[], Duration::from_secs(5))?;
        serde_json::from_str(&reply.body).map_err(|e| format!("{path}: {e}: {}", reply.body))
    }

    /// The sum of the proxies' `update_rejected` counters.
    fn rejected(&self) -> Result<u64, String> {
        self.proxies
            .iter()
            .map(|(_, p)| crate::corpus::envoy_stat_sum(p.admin, "update_rejected"))
            .sum()
    }
}

fn start<D: CorpusDataPlane>(
    trellis: &Path,
    data_plane: &D,
    group: &Group,
    index: usize,
    setup: &[Document],
) -> Running {
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
    let control_plane = start_control_plane(trellis, dir.path(), xds, debug, START);
    let shared = data_plane.prepare(dir.path());
    let mut proxies = Vec::new();
    for (i, spec) in group.proxies.iter().enumerate() {
        // Each proxy its own loopback address, each group its own range.
        let ip = IpAddr::V4(Ipv4Addr::new(127, 42, index as u8 + 1, i as u8 + 10));
        let at = ProxyStart {
            spec,
            dir: dir.path(),
            index: i,
            ip,
            xds,
        };
        proxies.push((node_id(spec, ip), data_plane.start(&shared, &at)));
    }
    for (_, proxy) in &mut proxies {
        let admin = proxy.admin;
        let process = &mut proxy.process;
        crate::wait_until("proxy admin up", START, || {
            if !process.running() {
                panic!("proxy exited\n{}", process.tail(30));
            }
            get(admin, "/ready", &[], Duration::from_secs(2)).map(|_| ())
        });
    }
    Running {
        dir,
        debug,
        control_plane,
        proxies,
        seen_nacks: BTreeSet::new(),
        rejected: 0,
        revision: 0,
    }
}

/// Waits until the control plane serves a revision after `after` (or `wait` passes with
/// none), then until every proxy has answered everything it was sent for that generation.
/// Returns the NACKs new since the last call and the store's problems with `mesh.yaml`.
fn settle(
    running: &mut Running,
    after: u64,
    wait: Duration,
) -> Result<(Vec<Nack>, Vec<String>), String> {
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
    let ids: BTreeSet<String> = running.proxies.iter().map(|(id, _)| id.clone()).collect();

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
        // Twice in a row: a type the proxy subscribes to after an ACK (EDS after CDS, RDS
        // after LDS) has time to show up.
        if stable >= 2 {
            return Ok((new_nacks(&syncz, &mut running.seen_nacks), problems));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not synced within {SYNC:?} (generation {generation}): {last}"
            ));
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// The NACKs of `syncz` not in `seen` (by proxy, type and nonce), now added to it.
fn new_nacks(syncz: &Value, seen: &mut BTreeSet<(String, String, String)>) -> Vec<Nack> {
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
            if seen.insert(key) {
                nacks.push(Nack {
                    proxy: name.to_string(),
                    type_name: t.clone(),
                    detail: nack["detail"].as_str().unwrap_or("").to_string(),
                });
            }
        }
    }
    nacks
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

/// The outcome of a settled step: new NACKs and the rise of `update_rejected`.
fn outcome(running: &mut Running, settled: Result<(Vec<Nack>, Vec<String>), String>) -> Outcome {
    match settled {
        Err(e) => Outcome::Failed(format!("{e}\n{}", running.logs())),
        Ok((nacks, problems)) => {
            let now = match running.rejected() {
                Ok(now) => now,
                Err(e) => return Outcome::Failed(format!("stats: {e}")),
            };
            let rejected = now.saturating_sub(running.rejected);
            running.rejected = now;
            if nacks.is_empty() && rejected == 0 {
                Outcome::Accepted { problems }
            } else {
                Outcome::Rejected { nacks, rejected }
            }
        }
    }
}

/// Applies each step of the group, one after the other, adding a row per step (and stage).
fn run_group<D: CorpusDataPlane>(
    trellis: &Path,
    data_plane: &D,
    group: &Group,
    index: usize,
    table: &mut Vec<Row>,
) {
    let started = Instant::now();
    let setup: Vec<Document> = group.setup.iter().flat_map(documents).collect();
    let mut running = start(trellis, data_plane, group, index, &setup);
    let settled = settle(&mut running, 0, Duration::ZERO);
    if let Err(e) = &settled {
        panic!("group {}: setup: {e}\n{}", group.name, running.logs());
    }
    let row = |file: String, outcome| Row {
        group: group.name.clone(),
        file,
        outcome,
    };
    let setup_outcome = outcome(&mut running, settled);
    table.push(row("(setup)".into(), setup_outcome));

    for step in &group.steps {
        let file = relative(&step.file.path);
        if let Some(reason) = skip_reason(&step.file) {
            table.push(row(file, Outcome::Skipped(reason)));
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
            let settled = settle(&mut running, after, SYNC);
            let outcome = outcome(&mut running, settled);
            let name = if staged {
                format!("{file} [stage {}]", k + 1)
            } else {
                file.clone()
            };
            table.push(row(name, outcome));
        }
    }
    if let Some(unseen) = unseen_rejections(data_plane, &running, table) {
        table.push(row("(proxy admin)".into(), Outcome::Failed(unseen)));
    }
    eprintln!(
        "group {}: {} files in {:.1}s",
        group.name,
        group.steps.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The rejections the group's proxies report themselves that no NACK of `table` carried,
/// if any.
fn unseen_rejections<D: CorpusDataPlane>(
    data_plane: &D,
    running: &Running,
    table: &[Row],
) -> Option<String> {
    let nacked: BTreeSet<(&str, &str)> = table
        .iter()
        .filter_map(|row| match &row.outcome {
            Outcome::Rejected { nacks, .. } => Some(nacks),
            _ => None,
        })
        .flatten()
        .map(|n| (n.proxy.as_str(), n.detail.as_str()))
        .collect();
    let mut unseen = Vec::new();
    for (id, proxy) in &running.proxies {
        match data_plane.own_rejections(proxy.admin) {
            Err(e) => unseen.push(format!("{id}: {e}")),
            Ok(rejections) => unseen.extend(
                rejections
                    .into_iter()
                    .filter(|r| !nacked.contains(&(id.as_str(), r.as_str())))
                    .map(|r| format!("{id} reports a rejection never NACKed: {r}")),
            ),
        }
    }
    (!unseen.is_empty()).then(|| unseen.join("\n"))
}

/// Runs every group of the corpus through `trellis control-plane` (the binary at
/// `trellis`) and `data_plane`: the table, a row per file (and stage).
pub fn run<D: CorpusDataPlane>(trellis: &Path, data_plane: &D) -> Vec<Row> {
    assert!(
        samples().is_dir(),
        "corpus not found at {} (set TRELLIS_CORPUS)",
        samples().display()
    );
    let mut table = Vec::new();
    for (i, group) in groups().iter().enumerate() {
        run_group(trellis, data_plane, group, i, &mut table);
    }
    table
}

/// The table as text (`group | file | outcome`, the store's problems below it) and the
/// number of rows per outcome (`accepted`, `skipped`, `REJECTED`, `FAILED`).
pub fn report(table: &[Row]) -> (String, BTreeMap<&'static str, usize>) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut text = String::from("\ngroup           | file | outcome\n");
    let mut notes =
        String::from("\nObjects the store did not put in force (validation, conflicts):\n");
    for Row {
        group,
        file,
        outcome,
    } in table
    {
        let (key, line) = match outcome {
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
            Outcome::Rejected { nacks, rejected } => {
                let nacks: Vec<String> = nacks
                    .iter()
                    .map(|n| format!("{} NACK from {}: {}", n.type_name, n.proxy, n.detail))
                    .collect();
                (
                    "REJECTED",
                    format!("REJECTED: {} update_rejected+{rejected}", nacks.join("; ")),
                )
            }
            Outcome::Failed(why) => ("FAILED", format!("FAILED: {why}")),
        };
        *counts.entry(key).or_default() += 1;
        text.push_str(&format!("{group:<15} | {file} | {line}\n"));
    }
    text.push_str(&notes);
    text.push_str(&format!("\n{counts:?}\n"));
    (text, counts)
}
