//! The scenarios: Istio's bookinfo networking samples and documentation-task YAML applied
//! verbatim where they exist, a few VirtualServices of our own where they do not, and the
//! outcomes Istio documents for them. [`all`] lists them, so that every data plane runs
//! the same ones; [`by_name`] finds one.
//!
//! Counts and tolerances are stated here: weighted routes are judged at ±4σ of the
//! binomial (see `expect`), delays only as lower bounds, and local replies (overflow,
//! timeout, fault) by Envoy's counters, since their response flags appear only in access
//! logs.

use std::time::Duration;

use super::corpus::{bookinfo, task_snip, task_snip_of_kind};
use super::{Behaviour, Check, Expect, Request, Scenario, Service};

/// Binomial tolerance of weighted routes, in standard deviations.
pub const SIGMAS: f64 = 4.0;
/// Requests per weighted check: enough that ±4σ separates 80/20 from 50/50 widely.
pub const WEIGHTED_REQUESTS: usize = 400;

pub fn all() -> Vec<Scenario> {
    vec![
        all_v1(),
        reviews_v2_v3_weights(),
        reviews_80_20_weights(),
        reviews_90_10_weights(),
        header_match_jason(),
        fault_delay(),
        fault_abort(),
        fault_abort_half(),
        request_timeout(),
        retries_recover(),
        default_retry_policy(),
        circuit_breaker(),
        mirroring(),
        redirect_and_direct_response(),
        header_manipulation(),
        consistent_hash_by_header(),
        cors_policy(),
        registry_only_sidecar(),
        registry_only_mesh_config(),
    ]
}

pub fn by_name(name: &str) -> Scenario {
    all()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

fn file(name: &str, text: String) -> (String, String) {
    (name.to_string(), text)
}

fn reviews() -> Service {
    Service::new("reviews", 9080, &["v1", "v2", "v3"])
}

fn ratings() -> Service {
    Service::new("ratings", 9080, &["v1", "v2"])
}

fn base(name: &'static str, summary: &'static str) -> Scenario {
    Scenario {
        name,
        summary,
        config: vec![file(
            "destination-rule-all.yaml",
            bookinfo("destination-rule-all.yaml"),
        )],
        mesh_config: None,
        outbound_traffic_policy: None,
        services: Vec::new(),
        checks: Vec::new(),
    }
}

pub fn all_v1() -> Scenario {
    let mut s = base("all_v1", "virtual-service-all-v1: every request goes to v1");
    s.config.push(file(
        "virtual-service.yaml",
        bookinfo("virtual-service-all-v1.yaml"),
    ));
    s.services = vec![reviews(), ratings()];
    s.checks = vec![
        Check::new("reviews", Request::get("reviews", 9080, "/"), 30)
            .expect(Expect::backend("reviews-v1")),
        Check::new("ratings", Request::get("ratings", 9080, "/"), 30)
            .expect(Expect::backend("ratings-v1")),
    ];
    s
}

fn weighted(
    name: &'static str,
    summary: &'static str,
    sample: &str,
    shares: &[(&str, u32)],
) -> Scenario {
    let mut s = base(name, summary);
    s.config
        .push(file("virtual-service.yaml", bookinfo(sample)));
    s.services = vec![reviews()];
    s.checks = vec![
        Check::new(
            "weighted",
            Request::get("reviews", 9080, "/"),
            WEIGHTED_REQUESTS,
        )
        .expect(Expect::weights(shares, SIGMAS)),
    ];
    s
}

pub fn reviews_v2_v3_weights() -> Scenario {
    weighted(
        "reviews_v2_v3_weights",
        "virtual-service-reviews-v2-v3: half to v2, half to v3, none to v1",
        "virtual-service-reviews-v2-v3.yaml",
        &[("reviews-v2", 50), ("reviews-v3", 50)],
    )
}

pub fn reviews_80_20_weights() -> Scenario {
    weighted(
        "reviews_80_20_weights",
        "virtual-service-reviews-80-20: 80% to v1, 20% to v2, none to v3",
        "virtual-service-reviews-80-20.yaml",
        &[("reviews-v1", 80), ("reviews-v2", 20)],
    )
}

pub fn reviews_90_10_weights() -> Scenario {
    weighted(
        "reviews_90_10_weights",
        "virtual-service-reviews-90-10: 90% to v1, 10% to v2, none to v3",
        "virtual-service-reviews-90-10.yaml",
        &[("reviews-v1", 90), ("reviews-v2", 10)],
    )
}

pub fn header_match_jason() -> Scenario {
    let mut s = base(
        "header_match_jason",
        "virtual-service-reviews-test-v2: `end-user: jason` (exactly) to v2, everyone else to v1",
    );
    s.config.push(file(
        "virtual-service.yaml",
        bookinfo("virtual-service-reviews-test-v2.yaml"),
    ));
    s.services = vec![reviews()];
    let get = || Request::get("reviews", 9080, "/");
    s.checks = vec![
        Check::new("jason", get().header("end-user", "jason"), 20)
            .expect(Expect::backend("reviews-v2")),
        Check::new("anonymous", get(), 20).expect(Expect::backend("reviews-v1")),
        // `exact` is case-sensitive on the value.
        Check::new("Jason", get().header("end-user", "Jason"), 10)
            .expect(Expect::backend("reviews-v1")),
    ];
    s
}

/// The delay of virtual-service-ratings-test-delay.yaml.
pub const FAULT_DELAY: Duration = Duration::from_secs(7);

pub fn fault_delay() -> Scenario {
    let mut s = base(
        "fault_delay",
        "virtual-service-ratings-test-delay: jason's requests to ratings wait 7 s, then reach v1",
    );
    s.config.push(file(
        "virtual-service.yaml",
        bookinfo("virtual-service-ratings-test-delay.yaml"),
    ));
    s.services = vec![ratings()];
    let get = || Request::get("ratings", 9080, "/");
    s.checks = vec![
        Check::new("jason", get().header("end-user", "jason"), 2)
            .concurrency(2)
            .expect(Expect::backend("ratings-v1"))
            .expect(Expect::TookAtLeast(FAULT_DELAY))
            .expect(Expect::stat(&["fault", "delays_injected"], 2)),
        Check::new("anonymous", get(), 10).expect(Expect::backend("ratings-v1")),
    ];
    s
}

pub fn fault_abort() -> Scenario {
    let mut s = base(
        "fault_abort",
        "virtual-service-ratings-test-abort: jason gets 500 without reaching ratings; others v1",
    );
    s.config.push(file(
        "virtual-service.yaml",
        bookinfo("virtual-service-ratings-test-abort.yaml"),
    ));
    s.services = vec![ratings()];
    let get = || Request::get("ratings", 9080, "/");
    s.checks = vec![
        Check::new("jason", get().header("end-user", "jason"), 10)
            .expect(Expect::Status(500))
            .expect(Expect::hits("ratings-v1", 0))
            .expect(Expect::stat(&["fault", "aborts_injected"], 10)),
        Check::new("anonymous", get(), 10).expect(Expect::backend("ratings-v1")),
    ];
    s
}

/// A VirtualService of our own: half of the requests to ratings are aborted with 503.
const RATINGS_ABORT_HALF: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts:
  - ratings
  http:
  - fault:
      abort:
        percentage:
          value: 50
        httpStatus: 503
    route:
    - destination:
        host: ratings
        subset: v1
";

pub fn fault_abort_half() -> Scenario {
    let mut s = base(
        "fault_abort_half",
        "`fault.abort` at `percentage: 50`: half the requests get 503 (±4σ), the rest reach v1",
    );
    s.config
        .push(file("virtual-service.yaml", RATINGS_ABORT_HALF.to_string()));
    s.services = vec![ratings()];
    s.checks = vec![
        Check::new(
            "half aborted",
            Request::get("ratings", 9080, "/"),
            WEIGHTED_REQUESTS,
        )
        .expect(Expect::OnlyStatuses(vec![200, 503]))
        .expect(Expect::StatusShare {
            status: 503,
            share: 0.5,
            sigmas: SIGMAS,
        }),
    ];
    s
}

/// The route timeout of the request-timeouts task, and how long reviews-v2 takes.
pub const ROUTE_TIMEOUT: Duration = Duration::from_millis(500);

pub fn request_timeout() -> Scenario {
    let mut s = base(
        "request_timeout",
        "request-timeouts task: reviews v2 with `timeout: 0.5s` and a v2 that needs 3 s → 504",
    );
    s.config.push(file(
        "virtual-service.yaml",
        task_snip("request-timeouts", "snip_request_timeouts_3"),
    ));
    s.services = vec![reviews().with("v2", Behaviour::Slow(Duration::from_secs(3)))];
    s.checks = vec![
        Check::new("slow v2", Request::get("reviews", 9080, "/"), 3)
            .concurrency(3)
            .expect(Expect::Status(504))
            .expect(Expect::TookAtLeast(ROUTE_TIMEOUT))
            .expect(Expect::stat(
                &["outbound|9080|v2|reviews.default", "upstream_rq_timeout"],
                3,
            )),
    ];
    s
}

/// A VirtualService of our own: three retries on 5xx for ratings.
const RATINGS_RETRIES: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts:
  - ratings
  http:
  - route:
    - destination:
        host: ratings
        subset: v1
    retries:
      attempts: 3
      perTryTimeout: 2s
      retryOn: 5xx
";

pub fn retries_recover() -> Scenario {
    let mut s = base(
        "retries_recover",
        "`retries: {attempts: 3, retryOn: 5xx}`: a v1 that fails 3 times then answers gives 200 after 4 attempts",
    );
    s.config
        .push(file("virtual-service.yaml", RATINGS_RETRIES.to_string()));
    let flaky = Behaviour::FailThenOk {
        failures: 3,
        status: 503,
    };
    s.services = vec![ratings().with("v1", flaky)];
    s.checks = vec![
        Check::new("flaky v1", Request::get("ratings", 9080, "/"), 5)
            .expect(Expect::backend("ratings-v1"))
            .expect(Expect::hits("ratings-v1", 20))
            .expect(Expect::hits("ratings-v2", 0))
            .expect(Expect::stat(
                &["outbound|9080|v1|ratings.default", "upstream_rq_retry"],
                15,
            )),
    ];
    s
}

/// Istio ≥ 1.24 leaves 503 out of its default retry policy
/// (`EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY`, on by default): an upstream 503 may have been
/// processed, and retrying a non-idempotent request is unsafe.
pub fn default_retry_policy() -> Scenario {
    let mut s = base(
        "default_retry_policy",
        "no VirtualService: Istio's default retry policy (≥ 1.24) does not retry an upstream 503",
    );
    s.services = vec![Service::new("ratings", 9080, &["v1"]).with("v1", Behaviour::Fail(503))];
    s.checks = vec![
        Check::new("failing v1", Request::get("ratings", 9080, "/"), 3)
            .expect(Expect::Status(503))
            .expect(Expect::hits("ratings-v1", 3)),
    ];
    s
}

pub fn circuit_breaker() -> Scenario {
    let mut s = base(
        "circuit_breaker",
        "circuit-breaking task: maxConnections 1, http1MaxPendingRequests 1; concurrent requests overflow with 503 (UO)",
    );
    s.config = vec![file(
        "destination-rule.yaml",
        task_snip("circuit-breaking", "snip_configuring_the_circuit_breaker_1"),
    )];
    // A slow upstream keeps its one connection busy, so the pending queue fills.
    let slow = Behaviour::Slow(Duration::from_millis(300));
    s.services = vec![Service::new("httpbin", 8000, &["v1"]).with("v1", slow)];
    s.checks = vec![
        Check::new("6 at once", Request::get("httpbin", 8000, "/get"), 12)
            .concurrency(6)
            .expect(Expect::OnlyStatuses(vec![200, 503]))
            .expect(Expect::SomeStatus {
                status: 200,
                at_least: 1,
            })
            .expect(Expect::SomeStatus {
                status: 503,
                at_least: 1,
            })
            .expect(Expect::stat(
                &[
                    "outbound|8000||httpbin.default",
                    "upstream_rq_pending_overflow",
                ],
                1,
            )),
    ];
    s
}

pub fn mirroring() -> Scenario {
    let mut s = base(
        "mirroring",
        "mirroring task: v1 answers; v2 receives a copy of each request with Host `httpbin-shadow`",
    );
    s.config = vec![
        file(
            "destination-rule.yaml",
            task_snip_of_kind(
                "mirroring",
                "snip_creating_a_default_routing_policy_1",
                "DestinationRule",
            ),
        ),
        file(
            "virtual-service.yaml",
            task_snip("mirroring", "snip_mirroring_traffic_to_v2_1"),
        ),
    ];
    s.services = vec![Service::new("httpbin", 8000, &["v1", "v2"])];
    s.checks = vec![
        Check::new("mirrored", Request::get("httpbin", 8000, "/headers"), 10)
            .expect(Expect::backend("httpbin-v1"))
            .expect(Expect::hits("httpbin-v1", 10))
            .expect(Expect::hits_at_least("httpbin-v2", 10))
            .expect(Expect::hosts_contain("httpbin-v2", "-shadow")),
    ];
    s
}

/// A VirtualService of our own: a redirect, a direct response, and v1 for the rest.
const REVIEWS_REDIRECT: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - match:
    - uri:
        prefix: /old
    redirect:
      uri: /new
      authority: bookinfo.example
  - match:
    - uri:
        exact: /teapot
    directResponse:
      status: 418
      body:
        string: short and stout
  - route:
    - destination:
        host: reviews
        subset: v1
";

pub fn redirect_and_direct_response() -> Scenario {
    let mut s = base(
        "redirect_and_direct_response",
        "redirect (301 to http://bookinfo.example/new) and directResponse (418) never reach a workload",
    );
    s.config
        .push(file("virtual-service.yaml", REVIEWS_REDIRECT.to_string()));
    s.services = vec![reviews()];
    s.checks = vec![
        Check::new("redirect", Request::get("reviews", 9080, "/old/page"), 5)
            .expect(Expect::Status(301))
            .expect(Expect::header("location", "http://bookinfo.example/new"))
            .expect(Expect::hits("reviews-v1", 0)),
        Check::new(
            "direct response",
            Request::get("reviews", 9080, "/teapot"),
            5,
        )
        .expect(Expect::Status(418))
        .expect(Expect::Body("short and stout".into()))
        .expect(Expect::hits("reviews-v1", 0)),
        Check::new("the rest", Request::get("reviews", 9080, "/"), 5)
            .expect(Expect::backend("reviews-v1")),
    ];
    s
}

/// A VirtualService of our own: headers set at the route and added at the destination.
const REVIEWS_HEADERS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - headers:
      response:
        set:
          x-route: reviews
    route:
    - destination:
        host: reviews
        subset: v2
      headers:
        response:
          add:
            x-destination: v2
";

pub fn header_manipulation() -> Scenario {
    let mut s = base(
        "header_manipulation",
        "response headers set on the route and added on the destination reach the client",
    );
    s.config
        .push(file("virtual-service.yaml", REVIEWS_HEADERS.to_string()));
    s.services = vec![reviews()];
    s.checks = vec![
        Check::new("v2 with headers", Request::get("reviews", 9080, "/"), 5)
            .expect(Expect::backend("reviews-v2"))
            .expect(Expect::header("x-route", "reviews"))
            .expect(Expect::header("x-destination", "v2")),
    ];
    s
}

/// A DestinationRule of our own: a ring hash on the `x-user` header.
const REVIEWS_CONSISTENT_HASH: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpHeaderName: x-user
";

pub fn consistent_hash_by_header() -> Scenario {
    let mut s = base(
        "consistent_hash_by_header",
        "consistentHash on `x-user`: one user's requests all reach one workload",
    );
    s.config = vec![file(
        "destination-rule.yaml",
        REVIEWS_CONSISTENT_HASH.to_string(),
    )];
    s.services = vec![reviews()];
    let user = |name| Request::get("reviews", 9080, "/").header("x-user", name);
    // Round robin over three workloads would hit one of them 30 times in a row with
    // probability 3·3⁻³⁰.
    s.checks = vec![
        Check::new("alice", user("alice"), 30).expect(Expect::OneBackend),
        Check::new("bob", user("bob"), 30).expect(Expect::OneBackend),
    ];
    s
}

/// The `corsPolicy` example of Istio's VirtualService reference, on ratings in `default`,
/// with the `X-Foo-Bar` header exposed as its text says.
const RATINGS_CORS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings-route
spec:
  hosts:
  - ratings
  http:
  - route:
    - destination:
        host: ratings
        subset: v1
    corsPolicy:
      allowOrigins:
      - exact: https://example.com
      allowMethods:
      - POST
      - GET
      allowCredentials: false
      allowHeaders:
      - X-Foo-Bar
      exposeHeaders:
      - X-Foo-Bar
      maxAge: \"24h\"
";

pub fn cors_policy() -> Scenario {
    let mut s = base(
        "cors_policy",
        "corsPolicy: preflights from allowed origins are answered by the sidecar; other origins get no CORS headers",
    );
    s.config
        .push(file("virtual-service.yaml", RATINGS_CORS.to_string()));
    s.services = vec![ratings()];
    let preflight = |origin| {
        Request::get("ratings", 9080, "/")
            .method("OPTIONS")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
    };
    let simple = Request::get("ratings", 9080, "/").header("origin", "https://example.com");
    s.checks = vec![
        Check::new("preflight allowed", preflight("https://example.com"), 5)
            .expect(Expect::Status(200))
            .expect(Expect::header(
                "access-control-allow-origin",
                "https://example.com",
            ))
            .expect(Expect::header("access-control-allow-methods", "POST,GET"))
            .expect(Expect::header("access-control-allow-headers", "X-Foo-Bar"))
            .expect(Expect::header("access-control-max-age", "86400"))
            .expect(Expect::NoHeader("access-control-allow-credentials".into()))
            .expect(Expect::hits("ratings-v1", 0)),
        // Istio's default `unmatchedPreflights: FORWARD`: the workload answers, bare.
        Check::new("preflight disallowed", preflight("https://evil.example"), 5)
            .expect(Expect::backend("ratings-v1"))
            .expect(Expect::NoHeader("access-control-allow-origin".into()))
            .expect(Expect::NoHeader("access-control-allow-methods".into())),
        Check::new("simple request allowed", simple, 5)
            .expect(Expect::backend("ratings-v1"))
            .expect(Expect::header(
                "access-control-allow-origin",
                "https://example.com",
            ))
            .expect(Expect::header("access-control-expose-headers", "X-Foo-Bar")),
    ];
    s
}

fn registry_only(name: &'static str, summary: &'static str) -> Scenario {
    let mut s = base(name, summary);
    s.services = vec![Service::new("reviews", 9080, &["v1"])];
    s.checks = vec![
        Check::new(
            "unknown host",
            Request::get("unknown.example.com", 9080, "/"),
            5,
        )
        .expect(Expect::Status(502))
        .expect(Expect::hits("reviews-v1", 0))
        // block_all answers itself: no upstream, no response flag but a direct response.
        .expect(Expect::stat(&["rq_direct_response"], 5)),
        Check::new("known host", Request::get("reviews", 9080, "/"), 5)
            .expect(Expect::backend("reviews-v1")),
    ];
    s
}

pub fn registry_only_sidecar() -> Scenario {
    let mut s = registry_only(
        "registry_only_sidecar",
        "Sidecar outboundTrafficPolicy REGISTRY_ONLY: unknown hosts get 502 (block_all)",
    );
    s.outbound_traffic_policy = Some("REGISTRY_ONLY");
    s
}

pub fn registry_only_mesh_config() -> Scenario {
    let mut s = registry_only(
        "registry_only_mesh_config",
        "MeshConfig outboundTrafficPolicy REGISTRY_ONLY: unknown hosts get 502 (block_all)",
    );
    s.mesh_config = Some("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n".into());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_have_unique_names_and_name_known_workloads() {
        let scenarios = all();
        let mut names: Vec<&str> = scenarios.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), scenarios.len());
        for s in &scenarios {
            let workloads: Vec<String> = s
                .services
                .iter()
                .flat_map(|svc| {
                    svc.workloads
                        .iter()
                        .map(|w| super::super::workload_name(svc.name, w.version))
                })
                .collect();
            for e in s.checks.iter().flat_map(|c| &c.expect) {
                let named = match e {
                    Expect::Backend(w)
                    | Expect::Hits { workload: w, .. }
                    | Expect::HitsAtLeast { workload: w, .. }
                    | Expect::HostsContain { workload: w, .. } => vec![w.clone()],
                    Expect::Weights { shares, .. } => {
                        shares.iter().map(|(w, _)| w.clone()).collect()
                    }
                    _ => vec![],
                };
                for w in named {
                    assert!(workloads.contains(&w), "{}: unknown workload {w}", s.name);
                }
            }
        }
    }
}
