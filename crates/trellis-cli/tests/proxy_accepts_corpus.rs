//! "Envoy accepts everything", for the Trellis proxy: the same run as
//! `envoy_accepts_corpus.rs` (testkit's `corpus_run`: every hostable YAML file of Istio's
//! samples and docs tasks through `trellis control-plane`, a sidecar per namespace that
//! matters and an ingress gateway router), with `trellis proxy` as every sidecar and the
//! router, each on its own loopback address with no status port.
//!
//! The proxies have no node agent: they do not terminate or originate TLS yet, so they say
//! nothing of SDS and the control plane sends them no Istio mTLS (docs/mtls.md) — STRICT
//! ports become `BlackHoleCluster` chains, clusters stay plain text. What they still NACK
//! is what the proxy does not implement: every `error_detail` (from `/debug/syncz`, the
//! same text the proxy's `/config_dump` shows as `last_rejection`, which the run checks) is
//! split into its
//! rejections, each reduced to a reason (the resource kind and the field path, names and
//! indexes left out). The test prints the table of file × outcome and the distinct reasons
//! with the number of files that hit each.
//!
//! The reasons are held by `tests/ratchets/proxy_nacks.txt`: a reason not in it fails the
//! test (implement it, or name it in docs/proxy-differences.md and add it); a listed reason
//! that no longer occurs is printed, so the list can shrink (`TRELLIS_RATCHET_UPDATE=1`
//! rewrites the file).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use trellis_testkit::corpus_run::{self, CorpusDataPlane, Outcome, ProxyStart, Row, StartedProxy};
use trellis_testkit::trellis_proxy::{self, ProxyIdentity};
use trellis_testkit::{Process, free_port, get};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");

/// `trellis proxy`, without SDS.
struct TrellisProxy;

impl CorpusDataPlane for TrellisProxy {
    type Shared = ();

    fn prepare(&self, _dir: &Path) {}

    fn start(&self, _: &(), at: &ProxyStart<'_>) -> StartedProxy {
        let spec = at.spec;
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let admin = SocketAddr::new(localhost, free_port(localhost));
        let who = ProxyIdentity {
            name: spec.name,
            namespace: spec.namespace,
            service_account: spec.service_account,
            labels: spec.labels,
            ip: at.ip,
        };
        let mut command = trellis_proxy::command(Path::new(TRELLIS), at.xds, admin, &who, 0);
        command.args(["--concurrency", "1"]);
        if spec.router {
            command.args(["--type", "router"]);
        }
        let process = Process::start(
            &format!("trellis proxy {}.{}", spec.name, spec.namespace),
            command,
            &at.dir.join(format!("proxy-{}.log", at.index)),
        );
        StartedProxy {
            admin,
            process,
            agent: None,
        }
    }

    /// `last_rejection` of each type in the proxy's `/config_dump`.
    fn own_rejections(&self, admin: SocketAddr) -> Result<Vec<String>, String> {
        let reply = get(admin, "/config_dump", &[], Duration::from_secs(5))?;
        let dump: Value = serde_json::from_str(&reply.body).map_err(|e| e.to_string())?;
        let xds = dump["xds"].as_object().ok_or("no xds in /config_dump")?;
        Ok(xds
            .values()
            .filter_map(|t| t["last_rejection"].as_str())
            .map(str::to_string)
            .collect())
    }
}

/// Host-name endings that end a resource name made of dotted words.
const NAME_ENDINGS: [&str; 6] = [
    ".svc.cluster.local",
    ".local",
    ".com",
    ".org",
    ".io",
    ".net",
];

/// The reason of one rejection: `KIND NAME.field[i].field (...): why` without the name
/// and the indexes, so that one missing feature is one reason whatever resource hit it.
fn reason(rejection: &str) -> String {
    let rejection = rejection.trim();
    let Some((kind, rest)) = rejection.split_once(' ') else {
        return rejection.to_string();
    };
    // The name is in the first word (up to a space, `: ` or `[`): it ends at the first `.`
    // followed by a field's first letter, counting after its host-name ending if it has one
    // (`outbound|9080|v1|reviews.default.svc.cluster.local`, `0.0.0.0_8080`, `http.8080`).
    let word_end = [rest.find(' '), rest.find(": "), rest.find('[')]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
    let word = &rest[..word_end];
    let host_end = NAME_ENDINGS
        .iter()
        .flat_map(|e| word.match_indices(e).map(|(i, _)| i + e.len()))
        .filter(|end| {
            !word[*end..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .max()
        .unwrap_or(0);
    let name_end = word[host_end..]
        .char_indices()
        .zip(word[host_end..].chars().skip(1))
        .find(|((_, c), next)| *c == '.' && (next.is_ascii_lowercase() || *next == '_'))
        .map_or(word.len(), |((i, _), _)| host_end + i);
    let path = &rest[name_end..];
    let mut out = format!("{kind} *");
    let mut in_brackets = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_brackets = true;
                out.push_str("[*]");
            }
            ']' => in_brackets = false,
            _ if in_brackets => {}
            c => out.push(c),
        }
    }
    out
}

/// Each rejected row's reasons.
fn reasons(table: &[Row]) -> Vec<(&Row, BTreeSet<String>)> {
    table
        .iter()
        .filter_map(|row| match &row.outcome {
            Outcome::Rejected { nacks, rejected } => {
                let mut set: BTreeSet<String> = nacks
                    .iter()
                    .flat_map(|n| n.detail.split("; "))
                    .map(reason)
                    .collect();
                if nacks.is_empty() {
                    set.insert(format!("update_rejected rose by {rejected} without a NACK"));
                }
                Some((row, set))
            }
            _ => None,
        })
        .collect()
}

fn ratchet_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ratchets/proxy_nacks.txt")
}

const RATCHET_HEADER: &str = "# The reasons the Trellis proxy NACKs configuration generated for Istio's samples and\n\
     # docs tasks (tests/proxy_accepts_corpus.rs); each is named in docs/proxy-differences.md.\n\
     # A new reason fails the test. Rewrite with TRELLIS_RATCHET_UPDATE=1.\n";

#[test]
fn proxy_accepts_corpus_or_nacks_only_known_fields() {
    let started = Instant::now();
    let table = corpus_run::run(Path::new(TRELLIS), &TrellisProxy);
    let (report, counts) = corpus_run::report(&table);
    println!("{report}in {:.1}s", started.elapsed().as_secs_f64());
    assert!(!counts.contains_key("FAILED"), "the run failed:{report}");

    let mut files: BTreeMap<String, usize> = BTreeMap::new();
    println!("\nNACK reasons per file:");
    for (row, set) in reasons(&table) {
        println!(
            "{:<15} | {} | {}",
            row.group,
            row.file,
            set.iter().cloned().collect::<Vec<_>>().join(" ; ")
        );
        for r in set {
            *files.entry(r).or_default() += 1;
        }
    }
    println!("\nDistinct NACK reasons (files):");
    for (r, n) in &files {
        println!("{n:>4}  {r}");
    }

    let allowed: BTreeSet<String> = std::fs::read_to_string(ratchet_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let seen: BTreeSet<String> = files.keys().cloned().collect();
    if std::env::var("TRELLIS_RATCHET_UPDATE").is_ok() {
        let body: String = seen.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(ratchet_path(), format!("{RATCHET_HEADER}{body}")).expect("write ratchet");
        return;
    }
    for gone in allowed.difference(&seen) {
        println!(
            "note: {gone:?} no longer occurs: remove it from {}",
            ratchet_path().display()
        );
    }
    let new: Vec<&String> = seen.difference(&allowed).collect();
    assert!(
        new.is_empty(),
        "the proxy NACKs for reasons not in {}: {new:#?}\n(implement them, or name them in docs/proxy-differences.md and add them)",
        ratchet_path().display()
    );
}

#[test]
fn reasons_leave_out_names_and_indexes() {
    assert_eq!(
        reason(
            "cluster outbound|9080|v1|reviews.default.svc.cluster.local.transport_socket is not implemented"
        ),
        "cluster *.transport_socket is not implemented"
    );
    assert_eq!(
        reason(
            "listener 0.0.0.0_8080.filter_chains[2].filters[0] (envoy.filters.network.http_connection_manager).http_filters[1]: HTTP filter envoy.filters.http.cors is not implemented"
        ),
        "listener *.filter_chains[*].filters[*] (envoy.filters.network.http_connection_manager).http_filters[*]: HTTP filter envoy.filters.http.cors is not implemented"
    );
    assert_eq!(
        reason(
            "route 9080.virtual_hosts[reviews.default.svc.cluster.local:9080].routes[0].cors is not implemented"
        ),
        "route *.virtual_hosts[*].routes[*].cors is not implemented"
    );
    assert_eq!(
        reason("cluster BlackHoleCluster.type: unknown discovery type 9"),
        "cluster *.type: unknown discovery type 9"
    );
    assert_eq!(
        reason(
            "route reviews.default.svc.cluster.local:9080.virtual_hosts[a.b:80].routes[1].cors is not implemented"
        ),
        "route *.virtual_hosts[*].routes[*].cors is not implemented"
    );
    assert_eq!(
        reason("cluster outbound|80||a.com.common_lb_config.x is not implemented"),
        "cluster *.common_lb_config.x is not implemented"
    );
    assert_eq!(
        reason("listener 0.0.0.0_8080: cannot bind 0.0.0.0:8080: in use"),
        "listener *: cannot bind 0.0.0.0:8080: in use"
    );
}
