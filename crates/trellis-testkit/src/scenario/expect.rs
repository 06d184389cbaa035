//! What must hold of a batch of outcomes, judged as a pure function of the outcomes and
//! of what the workloads and the data plane observed meanwhile ([`Observed`]).
//!
//! Proportions are judged with a binomial tolerance: with `n` requests and share `p`, the
//! count must lie within `sigmas · sqrt(n·p·(1−p))` of `n·p`. At 4σ a correct data plane
//! fails about once in 16 000 runs per share, so the checks do not flake; a data plane that
//! ignores weights (uniform over the subsets, or all to one) lands far outside.
//! Time is only ever a lower bound (a delay was injected), never an upper one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::client::Outcome;

/// One expectation of a [`super::Check`].
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Every response has this status.
    Status(u16),
    /// Every response is a 200 from this workload (`SERVICE-VERSION`).
    Backend(String),
    /// Every response is a 200 from one of these workloads, in these proportions
    /// (weights, any scale), each within `sigmas` binomial standard deviations.
    Weights {
        shares: Vec<(String, u32)>,
        sigmas: f64,
    },
    /// This status makes up `share` of the responses, within `sigmas` binomial standard
    /// deviations (a fault at a percentage).
    StatusShare {
        status: u16,
        share: f64,
        sigmas: f64,
    },
    /// Every response is a 200, all from the same workload (consistent hashing).
    OneBackend,
    /// At least `at_least` responses have this status.
    SomeStatus { status: u16, at_least: usize },
    /// Every response has one of these statuses.
    OnlyStatuses(Vec<u16>),
    /// Every response carries this header with this value.
    Header { name: String, value: String },
    /// No response carries this header (CORS headers for an origin not allowed).
    NoHeader(String),
    /// Every response has this body.
    Body(String),
    /// Every request took at least this long (an injected delay, a route timeout), less
    /// [`TIMER_SLACK`]. Never an upper bound.
    TookAtLeast(Duration),
    /// During the check this workload received exactly `n` requests (retries: attempts).
    Hits { workload: String, n: u64 },
    /// During the check this workload received at least `n` requests (may arrive after
    /// the responses: mirrors are fire and forget).
    HitsAtLeast { workload: String, n: u64 },
    /// During the check this workload received at least one request, and every `Host` it
    /// saw contains `contains` (a mirror's `-shadow` host).
    HostsContain { workload: String, contains: String },
    /// The sum of the data plane's counters whose names end with `.LAST` (the last of
    /// `parts`, an Envoy stat name such as `upstream_rq_pending_overflow`) and contain
    /// every other part (a cluster name...) is at least `at_least`.
    /// This is how local replies whose response flag (UO, UT, ...) Envoy only writes to
    /// access logs are told apart without access logs.
    Stat { parts: Vec<String>, at_least: u64 },
}

impl Expect {
    pub fn backend(workload: &str) -> Expect {
        Expect::Backend(workload.to_string())
    }

    pub fn weights(shares: &[(&str, u32)], sigmas: f64) -> Expect {
        Expect::Weights {
            shares: shares.iter().map(|(w, n)| (w.to_string(), *n)).collect(),
            sigmas,
        }
    }

    pub fn header(name: &str, value: &str) -> Expect {
        Expect::Header {
            name: name.to_string(),
            value: value.to_string(),
        }
    }

    pub fn hits(workload: &str, n: u64) -> Expect {
        Expect::Hits {
            workload: workload.to_string(),
            n,
        }
    }

    pub fn hits_at_least(workload: &str, n: u64) -> Expect {
        Expect::HitsAtLeast {
            workload: workload.to_string(),
            n,
        }
    }

    pub fn hosts_contain(workload: &str, contains: &str) -> Expect {
        Expect::HostsContain {
            workload: workload.to_string(),
            contains: contains.to_string(),
        }
    }

    pub fn stat(parts: &[&str], at_least: u64) -> Expect {
        Expect::Stat {
            parts: parts.iter().map(|p| p.to_string()).collect(),
            at_least,
        }
    }

    /// True when the answer may still change after the responses arrived (the runner
    /// polls these, with a deadline).
    pub fn eventual(&self) -> bool {
        matches!(
            self,
            Expect::HitsAtLeast { .. } | Expect::HostsContain { .. } | Expect::Stat { .. }
        )
    }
}

/// What happened besides the responses, during one check.
pub trait Observed {
    /// Requests `workload` received since the check started.
    fn hits(&self, workload: &str) -> u64;
    /// `Host` headers `workload` saw since the check started.
    fn hosts(&self, workload: &str) -> Vec<String>;
    /// The data plane's counters; `None` when this data plane exports none.
    fn stats(&self) -> Result<Option<BTreeMap<String, u64>>, String>;
}

/// Envoy's timers have millisecond resolution and may fire up to a millisecond before
/// their nominal time (a 500 ms route timeout was seen to answer after 499.35 ms, measured
/// by the client from before it connected); lower bounds on time allow this much.
pub const TIMER_SLACK: Duration = Duration::from_millis(5);

/// Why an expectation was not judged (the data plane cannot tell); printed, never hidden.
pub const SKIPPED: &str = "skipped:";

/// `(lowest, highest)` count of a share `p` of `n` trials within `sigmas` standard
/// deviations of the mean.
pub fn binomial_bounds(n: usize, p: f64, sigmas: f64) -> (f64, f64) {
    let n = n as f64;
    let mean = n * p;
    let sd = (n * p * (1.0 - p)).sqrt();
    (mean - sigmas * sd, mean + sigmas * sd)
}

/// Judges one expectation: `Ok(None)` holds, `Ok(Some(note))` could not be judged by this
/// data plane (the note says why), `Err` fails with what was seen.
pub fn judge(
    expect: &Expect,
    outcomes: &[Outcome],
    observed: &dyn Observed,
) -> Result<Option<String>, String> {
    let every = |what: &str, ok: &dyn Fn(&Outcome) -> bool| -> Result<Option<String>, String> {
        match outcomes.iter().filter(|o| !ok(o)).collect::<Vec<_>>() {
            bad if bad.is_empty() => Ok(None),
            bad => Err(format!(
                "{} of {} responses are not {what}; first: {}; all: {}",
                bad.len(),
                outcomes.len(),
                bad[0],
                tally(outcomes)
            )),
        }
    };
    match expect {
        Expect::Status(status) => {
            every(&format!("status {status}"), &|o| o.status == Some(*status))
        }
        Expect::Backend(w) => every(&format!("200 from {w}"), &|o| {
            o.status == Some(200) && o.backend() == Some(w.as_str())
        }),
        Expect::Weights { shares, sigmas } => weights(outcomes, shares, *sigmas),
        Expect::StatusShare {
            status,
            share,
            sigmas,
        } => {
            let n = outcomes
                .iter()
                .filter(|o| o.status == Some(*status))
                .count();
            let (lo, hi) = binomial_bounds(outcomes.len(), *share, *sigmas);
            ((n as f64) >= lo && (n as f64) <= hi)
                .then_some(None)
                .ok_or_else(|| {
                    format!(
                        "{n} of {} with status {status}, wanted [{lo:.1}, {hi:.1}]: {}",
                        outcomes.len(),
                        tally(outcomes)
                    )
                })
        }
        Expect::OneBackend => {
            let first = outcomes.first().and_then(Outcome::backend);
            every(&format!("200 from {first:?} like the first"), &|o| {
                o.status == Some(200) && o.backend().is_some() && o.backend() == first
            })
        }
        Expect::SomeStatus { status, at_least } => {
            let n = outcomes
                .iter()
                .filter(|o| o.status == Some(*status))
                .count();
            (n >= *at_least).then_some(None).ok_or_else(|| {
                format!(
                    "{n} responses with status {status}, wanted at least {at_least}: {}",
                    tally(outcomes)
                )
            })
        }
        Expect::OnlyStatuses(statuses) => every(&format!("one of {statuses:?}"), &|o| {
            o.status.is_some_and(|s| statuses.contains(&s))
        }),
        Expect::Header { name, value } => every(&format!("carrying {name}: {value}"), &|o| {
            o.header(name) == Some(value.as_str())
        }),
        Expect::NoHeader(name) => every(&format!("without {name}"), &|o| {
            o.status.is_some() && o.header(name).is_none()
        }),
        Expect::Body(body) => every(&format!("body {body:?}"), &|o| &o.body == body),
        Expect::TookAtLeast(d) => every(
            &format!("at least {d:?} (less {TIMER_SLACK:?}) long"),
            &|o| o.status.is_some() && o.elapsed + TIMER_SLACK >= *d,
        ),
        Expect::Hits { workload, n } => {
            let seen = observed.hits(workload);
            (seen == *n)
                .then_some(None)
                .ok_or_else(|| format!("{workload} received {seen} requests, wanted {n}"))
        }
        Expect::HitsAtLeast { workload, n } => {
            let seen = observed.hits(workload);
            (seen >= *n)
                .then_some(None)
                .ok_or_else(|| format!("{workload} received {seen} requests, wanted at least {n}"))
        }
        Expect::HostsContain { workload, contains } => {
            let hosts = observed.hosts(workload);
            if !hosts.is_empty() && hosts.iter().all(|h| h.contains(contains.as_str())) {
                Ok(None)
            } else {
                Err(format!(
                    "{workload} saw hosts {hosts:?}, wanted all containing {contains:?}"
                ))
            }
        }
        Expect::Stat { parts, at_least } => {
            let Some(stats) = observed.stats()? else {
                return Ok(Some(format!(
                    "{SKIPPED} the data plane exports no stats for {parts:?}"
                )));
            };
            let matching: Vec<(&String, &u64)> = stats
                .iter()
                .filter(|(name, _)| stat_matches(name, parts))
                .collect();
            let sum: u64 = matching.iter().map(|(_, v)| **v).sum();
            (sum >= *at_least).then_some(None).ok_or_else(|| {
                format!("stats matching {parts:?} sum to {sum}, wanted at least {at_least}: {matching:?}")
            })
        }
    }
}

/// `name` ends with `.LAST` and contains every other part.
pub fn stat_matches(name: &str, parts: &[String]) -> bool {
    let Some((last, others)) = parts.split_last() else {
        return false;
    };
    name.strip_suffix(last.as_str())
        .is_some_and(|head| head.ends_with('.'))
        && others.iter().all(|p| name.contains(p.as_str()))
}

fn weights(
    outcomes: &[Outcome],
    shares: &[(String, u32)],
    sigmas: f64,
) -> Result<Option<String>, String> {
    let n = outcomes.len();
    let total: u32 = shares.iter().map(|(_, w)| w).sum();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut stray = 0;
    for o in outcomes {
        match o.backend() {
            Some(b) if o.status == Some(200) && shares.iter().any(|(w, _)| w == b) => {
                *counts.entry(b).or_default() += 1
            }
            _ => stray += 1,
        }
    }
    let mut problems = String::new();
    if stray > 0 {
        let _ = write!(
            problems,
            "{stray} responses from none of the weighted backends; "
        );
    }
    for (workload, weight) in shares {
        let p = f64::from(*weight) / f64::from(total);
        let (lo, hi) = binomial_bounds(n, p, sigmas);
        let seen = counts.get(workload.as_str()).copied().unwrap_or(0);
        if (seen as f64) < lo || (seen as f64) > hi {
            let _ = write!(
                problems,
                "{workload}: {seen} of {n}, wanted {:.0} ± {sigmas}σ = [{lo:.1}, {hi:.1}]; ",
                n as f64 * p
            );
        }
    }
    if problems.is_empty() {
        Ok(None)
    } else {
        Err(format!("{problems}all: {}", tally(outcomes)))
    }
}

/// Outcomes counted by `status backend` (or the client error), for messages and reports.
pub fn tally(outcomes: &[Outcome]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for o in outcomes {
        *counts.entry(o.key()).or_default() += 1;
    }
    format!("{counts:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl Observed for Nothing {
        fn hits(&self, _: &str) -> u64 {
            0
        }
        fn hosts(&self, _: &str) -> Vec<String> {
            Vec::new()
        }
        fn stats(&self) -> Result<Option<BTreeMap<String, u64>>, String> {
            Ok(None)
        }
    }

    fn from(backend: &str, n: usize) -> Vec<Outcome> {
        (0..n)
            .map(|_| Outcome {
                status: Some(200),
                headers: vec![("x-trellis-workload".into(), backend.into())],
                body: backend.into(),
                elapsed: Duration::from_millis(1),
                error: None,
            })
            .collect()
    }

    #[test]
    fn binomial_bounds_at_four_sigma() {
        let (lo, hi) = binomial_bounds(400, 0.5, 4.0);
        assert_eq!((lo, hi), (160.0, 240.0));
        let (lo, hi) = binomial_bounds(400, 0.2, 4.0);
        assert_eq!((lo, hi), (48.0, 112.0));
    }

    #[test]
    fn weights_accept_the_mean_and_refuse_uniform_or_single() {
        let fifty = Expect::weights(&[("r-v2", 1), ("r-v3", 1)], 4.0);
        let mut even = from("r-v2", 200);
        even.extend(from("r-v3", 200));
        assert_eq!(judge(&fifty, &even, &Nothing), Ok(None));
        assert!(judge(&fifty, &from("r-v2", 400), &Nothing).is_err());

        let eighty = Expect::weights(&[("r-v1", 80), ("r-v2", 20)], 4.0);
        let mut uniform = from("r-v1", 200);
        uniform.extend(from("r-v2", 200));
        assert!(judge(&eighty, &uniform, &Nothing).is_err());
        let mut stray = from("r-v1", 320);
        stray.extend(from("r-v2", 79));
        stray.extend(from("r-v3", 1));
        assert!(judge(&eighty, &stray, &Nothing).is_err());
    }

    #[test]
    fn stat_names_match_by_last_segment() {
        let parts = [
            "outbound|9080||ratings".to_string(),
            "upstream_rq_retry".to_string(),
        ];
        let name = "cluster.outbound|9080||ratings.default.svc.cluster.local.upstream_rq_retry";
        assert!(stat_matches(name, &parts));
        assert!(!stat_matches(&format!("{name}_success"), &parts));
        assert!(!stat_matches(
            "cluster.outbound|9080||reviews.x.upstream_rq_retry",
            &parts
        ));
    }

    #[test]
    fn stats_are_skipped_not_passed_when_the_data_plane_has_none() {
        let e = Expect::stat(&["upstream_rq_pending_overflow"], 1);
        let note = judge(&e, &[], &Nothing).unwrap().unwrap();
        assert!(note.starts_with(SKIPPED), "{note}");
    }
}
