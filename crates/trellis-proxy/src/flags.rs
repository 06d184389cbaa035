//! Every locally generated failure in one place: Envoy's response flag, its response code
//! details string, and the status and body Envoy answers with.

/// Envoy's response flags, by their short names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// No route.
    NoRoute,
    /// No cluster of that name.
    NoCluster,
    /// No healthy upstream host.
    NoHealthyUpstream,
    /// Connection to the upstream failed.
    UpstreamConnectFailure,
    /// The upstream reset or closed before the response.
    UpstreamReset,
    /// A circuit breaker was open.
    Overflow,
    /// The route (or per-try) timeout fired.
    UpstreamTimeout,
    /// The fault filter delayed the request.
    DelayInjected,
    /// The fault filter aborted the request.
    FaultInjected,
    /// Retries exhausted: the last attempt's failure is reported with it.
    RetryLimitExceeded,
    /// The request broke a rule of the protocol or a limit on bad input.
    DownstreamProtocolError,
}

impl Flag {
    /// Envoy's order when it writes several flags (`UF,URX`).
    const ENVOY_ORDER: [Flag; 11] = [
        Flag::NoHealthyUpstream,
        Flag::UpstreamTimeout,
        Flag::UpstreamReset,
        Flag::UpstreamConnectFailure,
        Flag::Overflow,
        Flag::NoRoute,
        Flag::DelayInjected,
        Flag::FaultInjected,
        Flag::RetryLimitExceeded,
        Flag::DownstreamProtocolError,
        Flag::NoCluster,
    ];

    fn bit(self) -> u16 {
        let i = Self::ENVOY_ORDER
            .iter()
            .position(|f| *f == self)
            .unwrap_or(0);
        1 << i
    }

    pub fn short(self) -> &'static str {
        match self {
            Self::NoRoute => "NR",
            Self::NoCluster => "NC",
            Self::NoHealthyUpstream => "UH",
            Self::UpstreamConnectFailure => "UF",
            Self::UpstreamReset => "UR",
            Self::Overflow => "UO",
            Self::UpstreamTimeout => "UT",
            Self::DelayInjected => "DI",
            Self::FaultInjected => "FI",
            Self::RetryLimitExceeded => "URX",
            Self::DownstreamProtocolError => "DPE",
        }
    }

    /// `%RESPONSE_FLAGS_LONG%`: Envoy's long names.
    pub fn long(self) -> &'static str {
        match self {
            Self::NoRoute => "NoRouteFound",
            Self::NoCluster => "NoClusterFound",
            Self::NoHealthyUpstream => "NoHealthyUpstream",
            Self::UpstreamConnectFailure => "UpstreamConnectionFailure",
            Self::UpstreamReset => "UpstreamRemoteReset",
            Self::Overflow => "UpstreamOverflow",
            Self::UpstreamTimeout => "UpstreamRequestTimeout",
            Self::DelayInjected => "DelayInjected",
            Self::FaultInjected => "FaultInjected",
            Self::RetryLimitExceeded => "UpstreamRetryLimitExceeded",
            Self::DownstreamProtocolError => "DownstreamProtocolError",
        }
    }

    /// The flag of a short name (`UH`), for access-log filters.
    pub fn from_short(name: &str) -> Option<Flag> {
        Self::ENVOY_ORDER.into_iter().find(|f| f.short() == name)
    }
}

/// The response flags of one request or connection: a small copyable set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u16);

impl Flags {
    pub fn insert(&mut self, f: Flag) {
        self.0 |= f.bit();
    }

    pub fn contains(self, f: Flag) -> bool {
        self.0 & f.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Flag> {
        Flag::ENVOY_ORDER
            .into_iter()
            .filter(move |f| self.contains(*f))
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether any flag of `other` is set.
    pub fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }

    /// `%RESPONSE_FLAGS%` (or `_LONG`) appended to `out` without allocating: `,`-separated
    /// in Envoy's order, `-` when none.
    pub fn write_to(self, out: &mut String, long: bool) {
        if self.0 == 0 {
            out.push('-');
            return;
        }
        for (i, f) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(if long { f.long() } else { f.short() });
        }
    }

    /// `%RESPONSE_FLAGS%`: comma-separated in Envoy's order, `-` when none.
    pub fn render(self) -> String {
        if self.0 == 0 {
            return "-".into();
        }
        self.iter().map(Flag::short).collect::<Vec<_>>().join(",")
    }
}

/// A local reply: status, body, flag (if Envoy sets one), details and extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub body: String,
    pub flag: Option<Flag>,
    pub details: String,
    /// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`, empty when there is none.
    pub transport_failure: String,
    pub headers: Vec<(&'static str, String)>,
}

impl LocalReply {
    pub fn no_route() -> Self {
        Self::new(404, "", Flag::NoRoute, "route_not_found")
    }

    pub fn no_cluster() -> Self {
        Self::new(503, "", Flag::NoCluster, "cluster_not_found")
    }

    pub fn no_healthy_upstream() -> Self {
        Self::new(
            503,
            "no healthy upstream",
            Flag::NoHealthyUpstream,
            "no_healthy_upstream",
        )
    }

    pub fn overflow() -> Self {
        Self::new(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            Flag::Overflow,
            "upstream_reset_before_response_started{overflow}",
        )
    }

    /// `reason` is the transport failure (`delayed connect error: Connection refused`); the
    /// details carry it with spaces as underscores, as Envoy writes them.
    pub fn connect_failure(reason: &str) -> Self {
        let reason = underscored(reason);
        let mut r = Self::new(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure",
            Flag::UpstreamConnectFailure,
            &format!(
                "upstream_reset_before_response_started{{remote_connection_failure|{reason}}}"
            ),
        );
        r.transport_failure = reason;
        r
    }

    pub fn reset() -> Self {
        Self::new(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
            Flag::UpstreamReset,
            "upstream_reset_before_response_started{connection_termination}",
        )
    }

    pub fn timeout() -> Self {
        Self::new(
            504,
            "upstream request timeout",
            Flag::UpstreamTimeout,
            "upstream_response_timeout",
        )
    }

    pub fn fault_abort(status: u16) -> Self {
        Self::new(
            status,
            "fault filter abort",
            Flag::FaultInjected,
            "fault_filter_abort",
        )
    }

    /// Envoy's 400 for a request it refuses to parse further (`details`: why).
    pub fn bad_request(details: &str) -> Self {
        Self::new(400, "Bad Request", Flag::DownstreamProtocolError, details)
    }

    /// The RBAC filter's 403, naming the deciding policy (`none` when none matched), no flag.
    pub fn rbac_denied(policy: Option<&str>) -> Self {
        // Envoy's RBAC filter sets no response flag (checked side by side with Envoy 1.40).
        LocalReply {
            status: 403,
            body: "RBAC: access denied".into(),
            flag: None,
            details: format!(
                "rbac_access_denied_matched_policy[{}]",
                policy.unwrap_or("none")
            ),
            transport_failure: String::new(),
            headers: Vec::new(),
        }
    }

    /// The JWT filter's refusal: 401 (403 for a disallowed audience) with the failure as
    /// the body and a `www-authenticate` challenge for `uri`. Envoy sets no flag.
    pub fn jwt_denied(status: crate::jwt::status::Status, uri: &str) -> Self {
        let mut challenge = format!("Bearer realm=\"{uri}\"");
        if status != crate::jwt::status::Status::Missing {
            challenge.push_str(", error=\"invalid_token\"");
        }
        LocalReply {
            status: status.http_status(),
            body: status.text().to_string(),
            flag: None,
            details: status.details(),
            transport_failure: String::new(),
            headers: vec![("www-authenticate", challenge)],
        }
    }

    /// Sets the reply's extra headers on a response.
    pub fn set_headers(&self, headers: &mut hyper::HeaderMap) {
        for (name, value) in &self.headers {
            if let Ok(v) = hyper::header::HeaderValue::from_str(value) {
                headers.insert(*name, v);
            }
        }
    }

    fn new(status: u16, body: &str, flag: Flag, details: &str) -> Self {
        LocalReply {
            status,
            body: body.to_string(),
            flag: Some(flag),
            details: details.to_string(),
            transport_failure: String::new(),
            headers: Vec::new(),
        }
    }
}

/// Envoy replaces whitespace with `_` in details and failure reasons it logs.
pub fn underscored(s: &str) -> String {
    s.replace(char::is_whitespace, "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_render_in_envoys_order() {
        let mut f = Flags::default();
        assert_eq!(f.render(), "-");
        f.insert(Flag::RetryLimitExceeded);
        f.insert(Flag::UpstreamConnectFailure);
        assert_eq!(f.render(), "UF,URX");
        f.insert(Flag::DelayInjected);
        f.insert(Flag::NoHealthyUpstream);
        assert_eq!(f.render(), "UH,UF,DI,URX");
    }

    #[test]
    fn connect_failures_carry_envoys_details() {
        let r = LocalReply::connect_failure("delayed connect error: Connection refused");
        assert_eq!(
            r.details,
            "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
        );
        assert_eq!(r.status, 503);
        assert_eq!(
            r.transport_failure,
            "delayed_connect_error:_Connection_refused"
        );
    }
}
