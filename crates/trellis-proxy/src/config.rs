//! The proxy's own configuration: what the xDS resources mean, in plain Rust types. The
//! request path reads only these; protobuf stays in [`crate::convert`] and [`crate::xds`].
//!
//! A [`Snapshot`] is immutable and shared behind an `Arc`: an update builds a new one and
//! swaps it in atomically, and a request keeps the snapshot it started with to the end.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use crate::upstream::{ClusterRuntime, Host};

/// Everything the proxy runs on, at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub listeners: BTreeMap<String, Arc<Listener>>,
    pub routes: BTreeMap<String, Arc<RouteConfig>>,
    pub clusters: BTreeMap<String, Arc<Cluster>>,
    /// By cluster (EDS service) name.
    pub endpoints: BTreeMap<String, Arc<Vec<Arc<Host>>>>,
}

impl Snapshot {
    /// The endpoints of a cluster: its own `load_assignment`, or what EDS sent for it.
    pub fn hosts(&self, cluster: &Cluster) -> Arc<Vec<Arc<Host>>> {
        match &cluster.discovery {
            Discovery::Static(hosts) => hosts.clone(),
            Discovery::Eds(name) => self.endpoints.get(name).cloned().unwrap_or_default(),
            Discovery::OriginalDst => Arc::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Listeners

/// A listener: bound to its address (`bind_to_port`), or held as the target of an
/// original-destination handoff from a capture listener (`bind_to_port: false`). Capture
/// listeners (`use_original_dst`, or the `original_dst` listener filter) are bound and read
/// each connection's original destination ([`crate::original_dst`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    pub bind: bool,
    /// `use_original_dst` or the `original_dst` listener filter: a traffic-capture listener,
    /// whose connections' local address is their original destination.
    pub capture: bool,
    /// `use_original_dst`: hand each connection to the listener of its original destination
    /// when there is one ([`crate::chains::handoff`]), else serve it on its own chains.
    pub handoff: bool,
    /// `enable_reuse_port` (Envoy's default: on): the socket is bound with `SO_REUSEPORT`,
    /// so that several proxies on one host (tests, hot restarts) can each bind 15001/15006.
    pub reuse_port: bool,
    /// `traffic_direction: INBOUND`: drained by `/drain_listeners?inboundonly` too, and
    /// reported by telemetry as the destination.
    pub inbound: bool,
    /// Listener filters `tls_inspector` / `http_inspector`: sniff before choosing a chain.
    pub inspect_tls: bool,
    pub inspect_http: bool,
    /// `listener_filters_timeout` (Envoy's default 15 s; `None`: wait forever).
    pub inspect_timeout: Option<Duration>,
    /// `continue_on_listener_filters_timeout`: on timeout carry on as opaque TCP (else close).
    pub continue_on_timeout: bool,
    pub chains: Vec<FilterChain>,
    pub default_chain: Option<FilterChain>,
    /// `access_log`: written for connections no filter chain takes (flag `NR`).
    pub access_logs: AccessLogs,
}

/// The `access_log` entries of a listener, `tcp_proxy` or HTTP connection manager.
pub type AccessLogs = Vec<Arc<crate::telemetry::access_log::AccessLog>>;

impl Listener {
    /// Every filter chain, the default one last.
    pub fn all_chains(&self) -> impl Iterator<Item = &FilterChain> {
        self.chains.iter().chain(self.default_chain.as_ref())
    }
}

/// One filter chain: what it matches, its network RBAC filters (in order) and its
/// terminal network filter.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterChain {
    pub name: String,
    pub matcher: ChainMatch,
    /// A `DownstreamTlsContext` transport socket: TLS is terminated before the filters.
    pub tls: Option<Arc<crate::tls::server::ServerContext>>,
    pub rbac: Vec<Arc<crate::rbac::config::Rbac>>,
    pub network: Network,
}

/// The `FilterChainMatch` criteria the translation emits; empty means "any".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChainMatch {
    pub destination_port: Option<u16>,
    /// (network, prefix length).
    pub prefix_ranges: Vec<(IpAddr, u8)>,
    /// Exact names or `*.suffix` wildcards, lower case.
    pub server_names: Vec<String>,
    /// `raw_buffer` or `tls`.
    pub transport_protocol: Option<String>,
    /// `http/1.1`, `h2c`, ALPN values...
    pub application_protocols: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Network {
    Http(Arc<HttpManager>),
    Tcp(TcpProxy),
}

/// Envoy's `tcp_proxy` network filter.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpProxy {
    pub stat_prefix: String,
    /// (cluster, weight); one entry for a single cluster.
    pub clusters: Vec<(String, u32)>,
    /// `None`: no idle timeout (Envoy's 0s); Envoy's default is 1 h when unset.
    pub idle_timeout: Option<Duration>,
    /// One line per connection, when it closes.
    pub access_logs: AccessLogs,
}

/// What Envoy's HTTP connection manager does that the proxy does too.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpManager {
    pub stat_prefix: String,
    /// RDS route configuration name.
    pub route_config: RouteSource,
    /// Overwrites the `server` header of responses when set.
    pub server_name: Option<String>,
    pub generate_request_id: bool,
    pub normalize_path: bool,
    /// False on a sidecar: `x-forwarded-for` is not rewritten with the peer's address.
    pub use_remote_address: bool,
    /// `xff_num_trusted_hops`: proxies in front whose `x-forwarded-for` entries are believed
    /// when deciding the original client's address (a gateway behind a load balancer).
    pub xff_trusted_hops: u32,
    /// `envoy.filters.http.cors` is in the filter chain: routes' CORS policies apply.
    pub cors: bool,
    /// `upgrade_configs`: the upgrades (WebSocket...) every route may carry.
    pub upgrades: crate::upgrade::Upgrades,
    /// Header size, count and time, HTTP/2 streams: bad input bounded.
    pub limits: crate::limits::HttpLimits,
    /// The HTTP filters that act on every request, in chain order (before the router).
    pub filters: Vec<HttpFilter>,
    /// `forward_client_cert_details` and `set_current_client_cert_details`.
    pub xfcc: crate::xfcc::Xfcc,
    /// One line per request, when its response has ended.
    pub access_logs: AccessLogs,
}

/// An HTTP filter with listener-level configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpFilter {
    JwtAuthn(Arc<crate::jwt::config::JwtAuthn>),
    Rbac(Arc<crate::rbac::config::Rbac>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteSource {
    Rds(String),
    Inline(Arc<RouteConfig>),
}

// ---------------------------------------------------------------------------------------
// Routes

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
    pub ignore_port_in_host_matching: bool,
    /// Exact domains → index of their virtual host (the first one that lists it), so that
    /// choosing a virtual host costs one lookup however many services the mesh has; only
    /// wildcard domains are scanned.
    exact_domains: HashMap<String, usize>,
}

impl RouteConfig {
    pub fn new(
        name: String,
        virtual_hosts: Vec<VirtualHost>,
        ignore_port_in_host_matching: bool,
    ) -> Self {
        let mut exact_domains = HashMap::new();
        for (i, vh) in virtual_hosts.iter().enumerate() {
            for d in vh
                .domains
                .iter()
                .filter(|d| !d.starts_with('*') && !d.ends_with('*'))
            {
                exact_domains.entry(d.to_ascii_lowercase()).or_insert(i);
            }
        }
        RouteConfig {
            name,
            virtual_hosts,
            ignore_port_in_host_matching,
            exact_domains,
        }
    }

    /// The virtual host listing `host` (lowercase) exactly.
    pub fn exact_domain(&self, host: &str) -> Option<&VirtualHost> {
        self.exact_domains
            .get(host)
            .and_then(|i| self.virtual_hosts.get(*i))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub action: Action,
    pub headers: HeaderMutations,
    pub fault: Option<Fault>,
    /// The CORS filter's per-route policy (acts only if the HCM has the filter).
    pub cors: Option<Arc<crate::cors::CorsPolicy>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    pub path: PathMatch,
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatcher>,
    pub query: Vec<QueryMatcher>,
}

#[derive(Debug, Clone)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    /// Matched against the whole path, without the query.
    Regex(Regex),
    /// `path_separated_prefix`: the prefix, then nothing, `/`, `?` or `#`.
    SeparatedPrefix(String),
}

impl PartialEq for PathMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Prefix(a), Self::Prefix(b))
            | (Self::Exact(a), Self::Exact(b))
            | (Self::SeparatedPrefix(a), Self::SeparatedPrefix(b)) => a == b,
            (Self::Regex(a), Self::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// Envoy's `StringMatcher`.
#[derive(Debug, Clone)]
pub enum StringMatch {
    Exact(String, bool),
    Prefix(String, bool),
    Suffix(String, bool),
    Contains(String, bool),
    Regex(Regex),
}

impl PartialEq for StringMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Exact(a, x), Self::Exact(b, y))
            | (Self::Prefix(a, x), Self::Prefix(b, y))
            | (Self::Suffix(a, x), Self::Suffix(b, y))
            | (Self::Contains(a, x), Self::Contains(b, y)) => a == b && x == y,
            (Self::Regex(a), Self::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatcher {
    /// Lower case.
    pub name: String,
    /// `None`: present.
    pub value: Option<StringMatch>,
    /// `present_match: false`: matches when the header is absent.
    pub absent: bool,
    pub invert: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryMatcher {
    pub name: String,
    /// `None`: present.
    pub value: Option<StringMatch>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Forward(Box<Forward>),
    Direct { status: u16, body: Option<String> },
    Redirect(Redirect),
}

#[derive(Debug, Clone)]
pub struct Forward {
    /// (cluster, weight); one entry with any weight for a single cluster.
    pub clusters: Vec<(String, u32)>,
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<(Regex, String)>,
    pub host_rewrite: Option<String>,
    /// `None`: no timeout (Envoy's 0s); Envoy's default is 15 s when unset.
    pub timeout: Option<Duration>,
    pub retry: Option<RetryPolicy>,
    /// Envoy's `max_grpc_timeout`: honour `grpc-timeout` (capped unless zero).
    pub max_grpc_timeout: Option<Duration>,
    pub mirrors: Vec<Mirror>,
    /// `hash_policy`: the key for a RING_HASH / MAGLEV cluster.
    pub hash_policy: Vec<crate::hash::HashPolicy>,
    /// The route's `upgrade_configs`, over the connection manager's.
    pub upgrades: Option<crate::upgrade::Upgrades>,
}

/// `request_mirror_policies`: fire and forget a copy to `cluster`, for `share` millionths
/// of the requests, with `-shadow` appended to the host unless disabled.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    pub cluster: String,
    pub share: u32,
    pub shadow_suffix: bool,
}

impl PartialEq for Forward {
    fn eq(&self, o: &Self) -> bool {
        self.clusters == o.clusters
            && self.prefix_rewrite == o.prefix_rewrite
            && self.regex_rewrite.as_ref().map(|(r, s)| (r.as_str(), s))
                == o.regex_rewrite.as_ref().map(|(r, s)| (r.as_str(), s))
            && self.host_rewrite == o.host_rewrite
            && self.timeout == o.timeout
            && self.retry == o.retry
            && self.max_grpc_timeout == o.max_grpc_timeout
            && self.mirrors == o.mirrors
            && self.hash_policy == o.hash_policy
            && self.upgrades == o.upgrades
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub prefix_rewrite: Option<String>,
    pub strip_query: bool,
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RetryPolicy {
    pub on: RetryOn,
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
    pub retriable_status_codes: Vec<u16>,
    /// `previous_hosts` predicate: a retry avoids hosts already tried.
    pub avoid_previous_hosts: bool,
    pub host_selection_attempts: u32,
    pub base_interval: Duration,
    pub max_interval: Duration,
}

/// Envoy's `retry_on` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryOn {
    pub server_error: bool,
    pub gateway_error: bool,
    pub reset: bool,
    pub connect_failure: bool,
    pub refused_stream: bool,
    pub retriable_4xx: bool,
    pub retriable_status_codes: bool,
    pub grpc_unavailable: bool,
    pub grpc_cancelled: bool,
    pub grpc_deadline_exceeded: bool,
    pub grpc_resource_exhausted: bool,
    pub grpc_internal: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeaderMutations {
    pub request_add: Vec<HeaderAdd>,
    pub request_remove: Vec<String>,
    pub response_add: Vec<HeaderAdd>,
    pub response_remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderAdd {
    pub name: String,
    pub value: String,
    /// Replace existing values (`OVERWRITE_IF_EXISTS_OR_ADD`) rather than append.
    pub overwrite: bool,
}

/// The fault filter's per-route configuration. Percentages in millionths.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fault {
    pub delay: Option<(Duration, u32)>,
    pub abort: Option<(FaultAbort, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAbort {
    Http(u16),
    Grpc(u32),
}

// ---------------------------------------------------------------------------------------
// Clusters

#[derive(Debug)]
pub struct Cluster {
    pub name: String,
    pub discovery: Discovery,
    pub lb: LbPolicy,
    /// `outlier_detection`; `None`: no host is ever ejected.
    pub outlier: Option<crate::outlier::OutlierConfig>,
    /// `common_lb_config.healthy_panic_threshold` in percent (Envoy's default 50; 0: never).
    pub panic_threshold: f64,
    pub connect_timeout: Duration,
    pub http2: bool,
    pub limits: Limits,
    /// `transport_socket_matches` and `transport_socket`: which endpoints get TLS.
    pub transport: crate::tls::config::Transport,
    /// Counters, pools and balancer state: kept across updates of the same cluster.
    pub runtime: Arc<ClusterRuntime>,
}

impl Cluster {
    /// The URI a request to `host` is sent to: `https` when the cluster's transport gives
    /// the host TLS (the pool keys connections by scheme and address, so plain and TLS
    /// connections to one address never mix).
    pub fn upstream_uri(
        &self,
        host: &Host,
        path: &str,
    ) -> Result<hyper::Uri, hyper::http::uri::InvalidUri> {
        let scheme = if self.transport.tls_for(&host.socket_match) {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}{path}", host.address).parse()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Discovery {
    Eds(String),
    Static(Arc<Vec<Arc<Host>>>),
    /// Connect to where the downstream connection was going.
    OriginalDst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    LeastRequest,
    Random,
    /// RING_HASH: (minimum, maximum) ring size.
    RingHash(u64, u64),
    /// MAGLEV: table size.
    Maglev(u64),
}

impl LbPolicy {
    pub fn consistent(self) -> bool {
        matches!(self, LbPolicy::RingHash(..) | LbPolicy::Maglev(_))
    }
}

/// Circuit breakers (default priority); Envoy's defaults are 1024 each and 3 retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: u64,
    pub max_pending_requests: u64,
    pub max_requests: u64,
    pub max_retries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}
