//! `trellis demo --check`: Istio's request-routing, fault-injection and mTLS migration
//! tasks on Bookinfo, step by step, with Istio's samples applied unchanged. Each step
//! changes the config, waits until the pages show the change has arrived (bounded), then
//! requests a sample of pages and judges the counts against what Istio's documentation
//! says. Pages come from the meshed client pod, or from `legacy/sleep`, which has no
//! sidecar and asks productpage's pod in plain text (the mTLS migration task's `legacy`
//! client); the mTLS steps also read the servers' sidecars to see mutual TLS in use.

use std::time::{Duration, Instant};

use super::summary::Counts;
use super::traffic::{Client, Observation, Outcome, Visitor};
use super::{Demo, STRICT_MTLS, mtls};

/// How long a step may wait for its configuration to reach the sidecars.
const CONVERGE: Duration = Duration::from_secs(60);

/// The user Istio's tasks sign in as.
pub const USER: &str = "jason";

/// How one step went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub title: String,
    pub verdict: Verdict,
    /// What was observed, one line per visitor (or why the step is pending).
    pub observed: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
}

/// Where pages are asked from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    /// The client pod, through its sidecar, by productpage's service address.
    Meshed,
    /// `legacy/sleep`: no sidecar, productpage's pod address, plain text.
    Plain,
}

/// What a sample of pages must show.
struct Expect {
    from: From,
    visitor: Visitor,
    pages: usize,
    judge: fn(&Counts) -> Result<(), String>,
}

/// What the servers' sidecars counted of mutual TLS, judged: an observation line, or why
/// it is wrong.
type MtlsJudge = fn(&[(String, Result<mtls::Inbound, String>)]) -> Result<String, String>;

/// One step: config changes, when the change counts as arrived, what the sample must show.
struct Step {
    title: &'static str,
    delete: &'static [&'static str],
    apply: &'static [&'static str],
    /// Who is asked while waiting, and when the pages seen so far show the new config.
    probe: (From, Visitor),
    arrived: fn(&[Observation]) -> bool,
    expect: Vec<Expect>,
    /// What the sidecars must have counted afterwards.
    mtls: Option<MtlsJudge>,
}

fn anonymous() -> Visitor {
    Visitor::Anonymous
}

fn jason() -> Visitor {
    Visitor::User(USER.to_string())
}

const V1: Outcome = Outcome::Reviews("v1");
const V2: Outcome = Outcome::Reviews("v2");
const V3: Outcome = Outcome::Reviews("v3");

/// Every page showed `outcome`.
fn all(counts: &Counts, outcome: &Outcome) -> Result<(), String> {
    if counts.total() > 0 && counts.get(outcome) == counts.total() {
        Ok(())
    } else {
        Err(format!("expected only {outcome}"))
    }
}

/// Every page showed one of `outcomes`, each with a share in `range`.
fn split(counts: &Counts, outcomes: &[Outcome], range: (f64, f64)) -> Result<(), String> {
    let inside: usize = outcomes.iter().map(|o| counts.get(o)).sum();
    if inside != counts.total() || counts.total() == 0 {
        return Err(format!("expected only {outcomes:?}"));
    }
    match outcomes
        .iter()
        .find(|o| !(range.0..=range.1).contains(&counts.share(o)))
    {
        Some(o) => Err(format!(
            "{o}: {:.0}%, expected {:.0}–{:.0}%",
            100.0 * counts.share(o),
            100.0 * range.0,
            100.0 * range.1
        )),
        None => Ok(()),
    }
}

/// The last `n` pages all showed `outcome`.
fn last_n(seen: &[Observation], n: usize, outcome: &Outcome) -> bool {
    seen.len() >= n && seen.iter().rev().take(n).all(|o| &o.outcome == outcome)
}

fn steps() -> Vec<Step> {
    vec![
        Step {
            title: "(a) no VirtualService: reviews v1, v2 and v3 share the traffic",
            delete: &[],
            apply: &[],
            probe: (From::Meshed, anonymous()),
            arrived: |seen| {
                [V1, V2, V3]
                    .iter()
                    .all(|v| seen.iter().any(|o| &o.outcome == v))
            },
            expect: vec![Expect {
                from: From::Meshed,
                visitor: anonymous(),
                pages: 90,
                judge: |c| split(c, &[V1, V2, V3], (0.15, 0.55)),
            }],
            mtls: None,
        },
        Step {
            title: "(b) virtual-service-all-v1.yaml: everyone sees reviews v1",
            delete: &[],
            apply: &["virtual-service-all-v1.yaml"],
            probe: (From::Meshed, anonymous()),
            arrived: |seen| last_n(seen, 10, &V1),
            expect: vec![
                Expect {
                    from: From::Meshed,
                    visitor: anonymous(),
                    pages: 30,
                    judge: |c| all(c, &V1),
                },
                Expect {
                    from: From::Meshed,
                    visitor: jason(),
                    pages: 30,
                    judge: |c| all(c, &V1),
                },
            ],
            mtls: None,
        },
        Step {
            title: "(c) virtual-service-reviews-test-v2.yaml: jason sees v2, everyone else v1",
            delete: &["virtual-service-all-v1.yaml"],
            apply: &["virtual-service-reviews-test-v2.yaml"],
            probe: (From::Meshed, jason()),
            arrived: |seen| last_n(seen, 5, &V2),
            expect: vec![
                Expect {
                    from: From::Meshed,
                    visitor: jason(),
                    pages: 20,
                    judge: |c| all(c, &V2),
                },
                Expect {
                    from: From::Meshed,
                    visitor: anonymous(),
                    pages: 20,
                    judge: |c| all(c, &V1),
                },
            ],
            mtls: None,
        },
        Step {
            title: "(d) virtual-service-reviews-50-v3.yaml: half v1, half v3",
            delete: &["virtual-service-reviews-test-v2.yaml"],
            apply: &["virtual-service-reviews-50-v3.yaml"],
            probe: (From::Meshed, jason()),
            arrived: |seen| {
                seen.iter().any(|o| o.outcome == V3)
                    && seen.len() >= 10
                    && seen
                        .iter()
                        .rev()
                        .take(10)
                        .all(|o| o.outcome == V1 || o.outcome == V3)
            },
            expect: vec![Expect {
                from: From::Meshed,
                visitor: anonymous(),
                pages: 100,
                judge: |c| split(c, &[V1, V3], (0.3, 0.7)),
            }],
            mtls: None,
        },
        Step {
            title: "(e) virtual-service-ratings-test-delay.yaml (with reviews-test-v2): a 7 s \
                    ratings delay for jason; productpage gives up on reviews after ~6 s",
            delete: &["virtual-service-reviews-50-v3.yaml"],
            apply: &[
                "virtual-service-reviews-test-v2.yaml",
                "virtual-service-ratings-test-delay.yaml",
            ],
            probe: (From::Meshed, jason()),
            arrived: |seen| {
                seen.last()
                    .is_some_and(|o| o.outcome == Outcome::ReviewsError)
            },
            expect: vec![
                Expect {
                    from: From::Meshed,
                    visitor: jason(),
                    pages: 1,
                    judge: |c| all(c, &Outcome::ReviewsError),
                },
                Expect {
                    from: From::Meshed,
                    visitor: anonymous(),
                    pages: 10,
                    judge: |c| all(c, &V1),
                },
            ],
            mtls: None,
        },
        Step {
            title: "(e) virtual-service-ratings-test-abort.yaml: ratings answer 500 to jason; \
                    \"Ratings service is currently unavailable\"",
            delete: &["virtual-service-ratings-test-delay.yaml"],
            apply: &["virtual-service-ratings-test-abort.yaml"],
            probe: (From::Meshed, jason()),
            arrived: |seen| last_n(seen, 3, &Outcome::RatingsUnavailable),
            expect: vec![
                Expect {
                    from: From::Meshed,
                    visitor: jason(),
                    pages: 10,
                    judge: |c| all(c, &Outcome::RatingsUnavailable),
                },
                Expect {
                    from: From::Meshed,
                    visitor: anonymous(),
                    pages: 10,
                    judge: |c| all(c, &V1),
                },
            ],
            mtls: None,
        },
        Step {
            title: "(f) PERMISSIVE, Istio's default: the sidecars talk mutual TLS, and the \
                    plain-text client (legacy/sleep, no sidecar) still gets productpage",
            delete: &[],
            apply: &[],
            probe: (From::Plain, anonymous()),
            arrived: |seen| last_n(seen, 3, &V1),
            expect: vec![
                Expect {
                    from: From::Plain,
                    visitor: anonymous(),
                    pages: 10,
                    judge: |c| all(c, &V1),
                },
                Expect {
                    from: From::Meshed,
                    visitor: anonymous(),
                    pages: 10,
                    judge: |c| all(c, &V1),
                },
            ],
            mtls: Some(sidecars_use_mtls),
        },
        Step {
            title: "(g) PeerAuthentication default STRICT (mtls-migration, lock down by \
                    namespace): the plain-text client is refused, the meshed client still \
                    gets 200",
            delete: &[],
            apply: &[STRICT_MTLS],
            probe: (From::Plain, anonymous()),
            arrived: |seen| last_n(seen, 3, &Outcome::NoResponse),
            expect: vec![
                Expect {
                    from: From::Plain,
                    visitor: anonymous(),
                    pages: 5,
                    judge: |c| all(c, &Outcome::NoResponse),
                },
                Expect {
                    from: From::Meshed,
                    visitor: anonymous(),
                    pages: 10,
                    judge: |c| all(c, &V1),
                },
            ],
            mtls: Some(sidecars_use_mtls),
        },
        Step {
            title: "(h) the STRICT policy deleted (PERMISSIVE again): plain text works again",
            delete: &[STRICT_MTLS],
            apply: &[],
            probe: (From::Plain, anonymous()),
            arrived: |seen| last_n(seen, 3, &V1),
            expect: vec![
                Expect {
                    from: From::Plain,
                    visitor: anonymous(),
                    pages: 10,
                    judge: |c| all(c, &V1),
                },
                Expect {
                    from: From::Meshed,
                    visitor: anonymous(),
                    pages: 10,
                    judge: |c| all(c, &V1),
                },
            ],
            mtls: None,
        },
    ]
}

/// Every server reached only by other sidecars (all but productpage) was reached over
/// mutual TLS only, details and reviews v1 at least once; productpage, which the
/// plain-text client reaches too, saw mutual TLS from the meshed client.
fn sidecars_use_mtls(
    inbound: &[(String, Result<mtls::Inbound, String>)],
) -> Result<String, String> {
    let mut seen = Vec::new();
    for (name, counted) in inbound {
        let i = counted.as_ref().map_err(|e| format!("{name}: {e}"))?;
        seen.push(format!("{name} {}/{}", i.mutual_tls, i.total));
        let must_see = ["details-v1", "reviews-v1", "productpage-v1"].contains(&name.as_str());
        if must_see && i.total == 0 {
            return Err(format!("{name}: no inbound traffic counted"));
        }
        if name.starts_with("productpage") {
            if i.mutual_tls == 0 {
                return Err(format!("{name}: {i}, expected some"));
            }
        } else if i.mutual_tls != i.total {
            return Err(format!("{name}: {i}, expected all"));
        }
    }
    Ok(format!("inbound over mTLS (of all): {}", seen.join(", ")))
}

/// Runs every step in order, handing each report to `report` as it ends; returns them all.
/// A step whose config never arrives fails and the tour goes on; once `stop` returns true
/// (Ctrl-C) the remaining steps fail unrun.
pub fn run(
    demo: &Demo,
    stop: &dyn Fn() -> bool,
    report: &mut dyn FnMut(&StepReport),
) -> Vec<StepReport> {
    let mut reports = Vec::new();
    for step in steps() {
        let r = if stop() {
            StepReport {
                title: step.title.to_string(),
                verdict: Verdict::Fail,
                observed: vec!["not run: stopped".to_string()],
            }
        } else {
            run_step(demo, &step)
        };
        report(&r);
        reports.push(r);
    }
    reports
}

fn client(demo: &Demo, from: From) -> Result<&Client, String> {
    match from {
        From::Meshed => Ok(demo.client()),
        From::Plain => demo
            .plain_client()
            .ok_or_else(|| "no plain-text client (productpage's pod not found)".to_string()),
    }
}

fn run_step(demo: &Demo, step: &Step) -> StepReport {
    let failed = |observed: Vec<String>| StepReport {
        title: step.title.to_string(),
        verdict: Verdict::Fail,
        observed,
    };
    for name in step.delete {
        if let Err(e) = demo.delete(name) {
            return failed(vec![format!("delete {name}: {e}")]);
        }
    }
    for name in step.apply {
        if let Err(e) = demo.apply(name) {
            return failed(vec![format!("apply {name}: {e}")]);
        }
    }
    let (probe_from, probe) = &step.probe;
    let probe_client = match client(demo, *probe_from) {
        Ok(c) => c,
        Err(e) => return failed(vec![e]),
    };
    let started = Instant::now();
    let mut seen = Vec::new();
    while !(step.arrived)(&seen) {
        if started.elapsed() > CONVERGE {
            let counts = Counts::of(&seen);
            let why = demo.broken().map(|b| format!("; {b}")).unwrap_or_default();
            return failed(vec![format!(
                "the change did not show within {CONVERGE:?}: {} saw {counts}{why}",
                label(*probe_from, probe)
            )]);
        }
        seen.push(probe_client.page(probe));
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut verdict = Verdict::Pass;
    let mut observed = vec![format!(
        "config in place after {:.1} s; {} while waiting: {}",
        started.elapsed().as_secs_f64(),
        label(*probe_from, probe),
        Counts::of(&seen)
    )];
    for expect in &step.expect {
        let pages = match client(demo, expect.from) {
            Ok(c) => c.pages(&expect.visitor, expect.pages),
            Err(e) => return failed(vec![e]),
        };
        let counts = Counts::of(&pages);
        let slowest = pages.iter().map(|o| o.latency).max().unwrap_or_default();
        let judged = (expect.judge)(&counts);
        if judged.is_err() {
            verdict = Verdict::Fail;
        }
        observed.push(format!(
            "{}: {counts} (slowest {} ms){}",
            label(expect.from, &expect.visitor),
            slowest.as_millis(),
            judged.err().map(|e| format!(" — {e}")).unwrap_or_default()
        ));
    }
    if let Some(judge) = step.mtls {
        match judge(&demo.inbound_mtls()) {
            Ok(line) => observed.push(line),
            Err(e) => {
                verdict = Verdict::Fail;
                observed.push(format!("mTLS: {e}"));
            }
        }
    }
    StepReport {
        title: step.title.to_string(),
        verdict,
        observed,
    }
}

fn label(from: From, visitor: &Visitor) -> String {
    let who = match visitor {
        Visitor::Anonymous => "anonymous",
        Visitor::User(user) => user,
    };
    match from {
        From::Meshed => who.to_string(),
        From::Plain => format!("{who} (plain text, legacy/sleep)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(Outcome, usize)]) -> Counts {
        Counts(pairs.iter().cloned().collect())
    }

    #[test]
    fn judges_follow_the_documented_outcomes() {
        assert!(all(&counts(&[(V1, 30)]), &V1).is_ok());
        assert!(all(&counts(&[(V1, 29), (V2, 1)]), &V1).is_err());
        assert!(all(&Counts::default(), &V1).is_err());
        let even = counts(&[(V1, 31), (V2, 29), (V3, 30)]);
        assert!(split(&even, &[V1, V2, V3], (0.15, 0.55)).is_ok());
        let skewed = counts(&[(V1, 80), (V3, 10)]);
        assert!(
            split(&skewed, &[V1, V3], (0.3, 0.7))
                .unwrap_err()
                .contains("reviews v1: 89%")
        );
        let stray = counts(&[(V1, 50), (V3, 49), (Outcome::NoResponse, 1)]);
        assert!(split(&stray, &[V1, V3], (0.3, 0.7)).is_err());
    }

    #[test]
    fn every_sample_the_tour_applies_is_one_of_istios() {
        let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/corpus/istio/samples/bookinfo/networking");
        if !samples.is_dir() {
            println!("skipped: no Istio samples at {}", samples.display());
            return;
        }
        for step in steps() {
            for name in step.apply.iter().chain(step.delete) {
                assert!(
                    *name == STRICT_MTLS || samples.join(name).is_file(),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn mtls_is_judged_from_the_servers_sidecars() {
        let counted = |m, t| {
            Ok(mtls::Inbound {
                mutual_tls: m,
                total: t,
                unit: "connections",
            })
        };
        let mut inbound = vec![
            ("details-v1".to_string(), counted(5, 5)),
            ("reviews-v1".to_string(), counted(9, 9)),
            ("reviews-v2".to_string(), counted(0, 0)),
            ("productpage-v1".to_string(), counted(20, 30)),
        ];
        assert_eq!(
            sidecars_use_mtls(&inbound).unwrap(),
            "inbound over mTLS (of all): details-v1 5/5, reviews-v1 9/9, reviews-v2 0/0, \
             productpage-v1 20/30"
        );
        inbound[1].1 = counted(8, 9);
        assert!(
            sidecars_use_mtls(&inbound)
                .unwrap_err()
                .contains("reviews-v1")
        );
        inbound[1].1 = counted(0, 0);
        assert!(
            sidecars_use_mtls(&inbound)
                .unwrap_err()
                .contains("no inbound")
        );
        inbound[1].1 = counted(9, 9);
        inbound[3].1 = counted(0, 30);
        assert!(sidecars_use_mtls(&inbound).is_err());
        inbound[3].1 = Err("connection refused".to_string());
        assert!(sidecars_use_mtls(&inbound).is_err());
    }
}
