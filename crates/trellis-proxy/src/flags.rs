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
    /// The RBAC filter denied the request.
    RbacAccessDenied,
}

impl Flag {
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
            Self::RbacAccessDenied => "RBAC",
        }
    }
}

/// A local reply: status, body, flag (if Envoy sets one), details and extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub body: String,
    pub flag: Option<Flag>,
    pub details: String,
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

    pub fn connect_failure(reason: &str) -> Self {
        Self::new(
            503,
            &format!(
                "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: {reason}"
            ),
            Flag::UpstreamConnectFailure,
            "upstream_reset_before_response_started{remote_connection_failure}",
        )
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

    /// The RBAC filter's 403, naming the deciding policy (`none` when none matched).
    pub fn rbac_denied(policy: Option<&str>) -> Self {
        Self::new(
            403,
            "RBAC: access denied",
            Flag::RbacAccessDenied,
            &format!(
                "rbac_access_denied_matched_policy[{}]",
                policy.unwrap_or("none")
            ),
        )
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
            headers: Vec::new(),
        }
    }
}
