//! The filter's decision for one request, as a pure function of the config, the request and
//! the clock: find the tokens where the providers look for them, verify them against the
//! requirement of the first matching rule (Envoy's verifier semantics), and say what the
//! request becomes — headers to add or remove, dynamic metadata — or why it is refused.

use hyper::HeaderMap;
use serde_json::{Map, Value};

use super::config::{JwtAuthn, Location, Provider, Requirement};
use super::status::Status;
use super::token::{self, Jwt};

/// The request as the filter reads it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
}

/// What a passed request becomes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// (`payload_in_metadata` key, claims) for the filter's dynamic metadata.
    pub metadata: Vec<(String, Map<String, Value>)>,
    pub add_headers: Vec<(String, String)>,
    pub remove_headers: Vec<String>,
}

impl Effects {
    /// Adds what another verification did; the same token passing two requirements (as
    /// in Istio's `requires_any {provider, allow_missing}`) counts once.
    fn merge(&mut self, other: Effects) {
        fn add<T: PartialEq>(to: &mut Vec<T>, from: Vec<T>) {
            for x in from {
                if !to.contains(&x) {
                    to.push(x);
                }
            }
        }
        add(&mut self.metadata, other.metadata);
        add(&mut self.add_headers, other.add_headers);
        add(&mut self.remove_headers, other.remove_headers);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A CORS preflight, let through unchecked.
    Bypassed,
    Passed(Effects),
    Failed(Status),
}

/// `now` in seconds since the epoch.
pub fn authenticate(cfg: &JwtAuthn, req: &Request, now: u64) -> Verdict {
    if cfg.bypass_cors_preflight && is_preflight(req) {
        return Verdict::Bypassed;
    }
    let (path, query) = req.path.split_once('?').unwrap_or((req.path, ""));
    let requirement = cfg
        .rules
        .iter()
        .find(|r| crate::routing::route_matches(&r.matcher, path, query, req.headers))
        .and_then(|r| r.requires.as_ref());
    let Some(requirement) = requirement else {
        return Verdict::Passed(Effects::default());
    };
    let ctx = Context {
        cfg,
        req,
        query,
        now,
    };
    match ctx.verify(requirement) {
        Ok(effects) => Verdict::Passed(effects),
        Err(status) => Verdict::Failed(status),
    }
}

fn is_preflight(req: &Request) -> bool {
    req.method == "OPTIONS"
        && req.headers.contains_key("origin")
        && req.headers.contains_key("access-control-request-method")
}

struct Context<'a> {
    cfg: &'a JwtAuthn,
    req: &'a Request<'a>,
    query: &'a str,
    now: u64,
}

/// A token and where it was found.
struct Found<'a> {
    token: String,
    location: &'a Location,
}

impl Context<'_> {
    fn verify(&self, r: &Requirement) -> Result<Effects, Status> {
        match r {
            Requirement::Provider { name, audiences } => {
                let Some(provider) = self.cfg.providers.get(name) else {
                    return Err(Status::UnknownIssuer);
                };
                let audiences = audiences.as_deref().unwrap_or(&provider.audiences);
                let tokens = self.extract(std::iter::once(provider));
                self.authenticate(&tokens, Some((provider, audiences)), false, false)
            }
            Requirement::AllowMissing => {
                let tokens = self.extract(self.cfg.providers.values());
                self.authenticate(&tokens, None, true, false)
            }
            Requirement::AllowMissingOrFailed => {
                let tokens = self.extract(self.cfg.providers.values());
                self.authenticate(&tokens, None, true, true)
            }
            Requirement::All(all) => {
                let mut effects = Effects::default();
                for r in all {
                    effects.merge(self.verify(r)?);
                }
                Ok(effects)
            }
            Requirement::Any(any) => {
                let mut passed: Option<Effects> = None;
                // Envoy: a missing token is the weakest
                // failure; any other failure is reported instead (the last one).
                let mut failure = Status::Missing;
                for r in any {
                    match self.verify(r) {
                        Ok(e) => passed.get_or_insert_with(Effects::default).merge(e),
                        Err(Status::Missing) => {}
                        Err(s) => failure = s,
                    }
                }
                passed.ok_or(failure)
            }
        }
    }

    /// Envoy's authenticator: every token must pass, unless failures are allowed (then the
    /// passing ones still count); no token fails unless missing tokens are allowed.
    fn authenticate(
        &self,
        tokens: &[Found],
        provider: Option<(&Provider, &[String])>,
        allow_missing: bool,
        allow_failed: bool,
    ) -> Result<Effects, Status> {
        if tokens.is_empty() {
            return if allow_missing || allow_failed {
                Ok(Effects::default())
            } else {
                Err(Status::Missing)
            };
        }
        let mut effects = Effects::default();
        for found in tokens {
            match self.check(found, provider) {
                Ok(e) => effects.merge(e),
                Err(_) if allow_failed => {}
                Err(s) => return Err(s),
            }
        }
        Ok(effects)
    }

    fn check(
        &self,
        found: &Found,
        provider: Option<(&Provider, &[String])>,
    ) -> Result<Effects, Status> {
        let jwt = token::parse(&found.token)?;
        let (provider, audiences) = match provider {
            Some((p, a)) => {
                if !p.issuer.is_empty() && p.issuer != jwt.iss {
                    return Err(Status::UnknownIssuer);
                }
                (p, a)
            }
            None => {
                let p = self
                    .by_issuer(&jwt.iss, found.location)
                    .ok_or(Status::UnknownIssuer)?;
                (p, p.audiences.as_slice())
            }
        };
        jwt.check_time(self.now, provider.clock_skew_seconds)?;
        if !jwt.audience_allowed(audiences) {
            return Err(Status::AudienceNotAllowed);
        }
        let keys = provider.keys.as_deref().ok_or(Status::JwksFetchFail)?;
        jwt.verify(keys)?;
        Ok(effects(provider, &jwt, found.location))
    }

    /// The provider for a token found at `location` without a named provider: one that
    /// looks there and has the token's issuer (or accepts any).
    fn by_issuer(&self, iss: &str, location: &Location) -> Option<&Provider> {
        let here = || {
            self.cfg
                .providers
                .values()
                .filter(|p| p.locations.contains(location))
        };
        here()
            .find(|p| p.issuer == iss)
            .or_else(|| here().find(|p| p.issuer.is_empty()))
    }

    /// The tokens at the providers' locations, each location once.
    fn extract<'p>(&self, providers: impl Iterator<Item = &'p Provider>) -> Vec<Found<'p>> {
        let mut seen: Vec<&Location> = Vec::new();
        let mut out = Vec::new();
        for location in providers.flat_map(|p| p.locations.iter()) {
            if seen.contains(&location) {
                continue;
            }
            seen.push(location);
            for token in tokens_at(location, self.req.headers, self.query) {
                out.push(Found { token, location });
            }
        }
        out
    }
}

fn tokens_at(location: &Location, headers: &HeaderMap, query: &str) -> Vec<String> {
    match location {
        Location::Header { name, prefix } => headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| after_prefix(v, prefix))
            .collect(),
        Location::Param(name) => query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
            .into_iter()
            .collect(),
        Location::Cookie(name) => headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim_matches('"').to_string())
            .into_iter()
            .collect(),
    }
}

/// Envoy's extraction from a header: after the prefix (if any), the run of base64url
/// characters and dots that starts at the first such character.
fn after_prefix(value: &str, prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return Some(value.to_string());
    }
    let rest = &value[value.find(prefix)? + prefix.len()..];
    let is_token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=');
    let start = rest.find(is_token)?;
    let tail = &rest[start..];
    let end = tail.find(|c: char| !is_token(c)).unwrap_or(tail.len());
    Some(tail[..end].to_string())
}

/// What a verified token does to the request.
fn effects(provider: &Provider, jwt: &Jwt, location: &Location) -> Effects {
    let mut e = Effects::default();
    if let Some(key) = &provider.payload_in_metadata {
        e.metadata.push((
            key.clone(),
            normalize(&jwt.claims, &provider.space_delimited_claims),
        ));
    }
    if let Some(header) = &provider.payload_header {
        let mut payload = jwt.payload_b64.to_string();
        if provider.pad_payload_header {
            while !payload.len().is_multiple_of(4) {
                payload.push('=');
            }
        }
        e.add_headers.push((header.clone(), payload));
    }
    for (header, path) in &provider.claim_to_headers {
        let value = path.split_first().and_then(|(first, rest)| {
            rest.iter()
                .try_fold(jwt.claims.get(first)?, |v, k| v.as_object()?.get(k))
        });
        let text = match value {
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            _ => continue,
        };
        e.add_headers.push((header.clone(), text));
    }
    if let (false, Location::Header { name, .. }) = (provider.forward, location) {
        e.remove_headers.push(name.clone());
    }
    e
}

/// The claims as Envoy puts them in metadata: listed space-delimited claims become lists.
fn normalize(claims: &Map<String, Value>, space_delimited: &[String]) -> Map<String, Value> {
    let mut out = claims.clone();
    for name in space_delimited {
        if let Some(Value::String(s)) = out.get(name) {
            let list = s
                .split(' ')
                .filter(|x| !x.is_empty())
                .map(Value::from)
                .collect();
            out.insert(name.clone(), Value::Array(list));
        }
    }
    out
}
