//! The xDS protocol state of one connection, without sockets: what a request means (first
//! request, ACK, NACK, stale, subscription change), what to send in answer, and what a push
//! sends. The connection loop in [`super::ads`] only moves messages in and out.
//!
//! Invariants, for both variants:
//! - every response carries a fresh nonce; a request whose nonce is not the last one sent
//!   for its type is stale and ignored (its subscription changes still count in delta);
//! - a NACK keeps the proxy on its last good config: the rejected content counts as sent,
//!   so the same content is never sent again; only new content is;
//! - a push sends, type by type in [`XdsType::ORDER`], only what changed; a changed cluster
//!   makes Envoy warm it again, so its endpoints are sent after it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use serde::Serialize;

use super::resources::{Cached, ProxyResources, TypeSet, XdsType};
use super::wire::Wire;

/// A rejection by the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nack {
    /// The version the proxy still runs (the last it accepted).
    pub version: String,
    pub nonce: String,
    pub detail: String,
}

/// What the proxy has been sent and has accepted, for one type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TypeStatus {
    pub version_sent: String,
    pub nonce_sent: String,
    pub version_acked: String,
    pub last_nack: Option<Nack>,
    /// Resources in the last response.
    pub resources_sent: usize,
}

/// What a request meant, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The first request for a type on this connection.
    Subscribed(XdsType),
    Ack(XdsType, String),
    Nack(XdsType, Nack),
    /// A request answering an older response; nothing to do.
    Stale(XdsType),
    /// A type this server does not serve; ignored.
    UnknownType(String),
}

/// The answer to one request.
#[derive(Debug)]
pub struct Outcome {
    pub event: Event,
    /// Responses to send, in order; empty when only bookkeeping changed.
    pub responses: Vec<(XdsType, Wire)>,
}

/// Hands out nonces and versions unique on a connection.
#[derive(Debug, Default)]
struct Counter(u64);

impl Counter {
    fn next(&mut self) -> String {
        self.0 += 1;
        self.0.to_string()
    }
}

fn ack_or_nack(
    t: XdsType,
    status: &mut TypeStatus,
    version: &str,
    nonce: &str,
    error: Option<&str>,
) -> Event {
    match error {
        Some(detail) => {
            let nack = Nack {
                version: version.to_string(),
                nonce: nonce.to_string(),
                detail: detail.to_string(),
            };
            status.last_nack = Some(nack.clone());
            Event::Nack(t, nack)
        }
        None => {
            status.version_acked = version.to_string();
            Event::Ack(t, version.to_string())
        }
    }
}

fn error_detail(status: Option<&envoy_types::pb::google::rpc::Status>) -> Option<&str> {
    status.map(|s| {
        if s.message.is_empty() {
            "rejected without detail"
        } else {
            s.message.as_str()
        }
    })
}

// ---------------------------------------------------------------------------------------
// State of the world

/// The names a proxy asked for. Usually exactly the resources of the type it was sent
/// (all its EDS clusters, all its listeners' route configurations): then the set is that
/// map's keys, shared, not a copy per connection.
#[derive(Debug)]
enum Names {
    Keys(Arc<TypeSet>),
    Listed(BTreeSet<String>),
}

impl Default for Names {
    fn default() -> Self {
        Names::Listed(BTreeSet::new())
    }
}

impl Names {
    fn of(requested: &[String], resources: &Arc<TypeSet>) -> Names {
        let wanted: BTreeSet<&str> = requested.iter().map(String::as_str).collect();
        if wanted
            .iter()
            .copied()
            .eq(resources.keys().map(String::as_str))
        {
            Names::Keys(resources.clone())
        } else {
            Names::Listed(wanted.into_iter().map(str::to_string).collect())
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = &String> + '_> {
        match self {
            Names::Keys(set) => Box::new(set.keys()),
            Names::Listed(names) => Box::new(names.iter()),
        }
    }

    fn is(&self, requested: &[String]) -> bool {
        let wanted: BTreeSet<&str> = requested.iter().map(String::as_str).collect();
        wanted.into_iter().eq(self.iter().map(String::as_str))
    }
}

#[derive(Debug, Default)]
struct SotwType {
    /// Requested names; ignored for wildcard types.
    names: Names,
    /// The type's resources when the last response was made: the proxy holds those it
    /// asked for (accepted or not), all of them for wildcard types.
    sent: Arc<TypeSet>,
    status: TypeStatus,
}

/// A state-of-the-world ADS stream. It keeps no copy of any resource: only the shared
/// sets it sent from.
#[derive(Debug, Default)]
pub struct Sotw {
    counter: Counter,
    types: BTreeMap<XdsType, SotwType>,
    resources: Arc<ProxyResources>,
}

impl Sotw {
    pub fn new(resources: Arc<ProxyResources>) -> Self {
        Sotw {
            resources,
            ..Default::default()
        }
    }

    /// Handles one request from the proxy.
    pub fn on_request(&mut self, req: &DiscoveryRequest) -> Outcome {
        let Some(t) = XdsType::from_url(&req.type_url) else {
            return Outcome {
                event: Event::UnknownType(req.type_url.clone()),
                responses: vec![],
            };
        };
        let first = !self.types.contains_key(&t);
        let all = self.resources.type_set(t);
        let state = self.types.entry(t).or_default();
        if first {
            state.names = Names::of(&req.resource_names, all);
            let response = self.respond(t);
            return Outcome {
                event: Event::Subscribed(t),
                responses: vec![(t, response)],
            };
        }
        if req.response_nonce != state.status.nonce_sent {
            return Outcome {
                event: Event::Stale(t),
                responses: vec![],
            };
        }
        let event = ack_or_nack(
            t,
            &mut state.status,
            &req.version_info,
            &req.response_nonce,
            error_detail(req.error_detail.as_ref()),
        );
        let mut responses = vec![];
        if !t.is_wildcard() && !state.names.is(&req.resource_names) {
            state.names = Names::of(&req.resource_names, all);
            responses.push((t, self.respond(t)));
        }
        Outcome { event, responses }
    }

    /// Moves to new resources; returns what to send, in push order.
    /// Types whose resources are shared with the previous ones are not even compared.
    pub fn on_push(&mut self, resources: Arc<ProxyResources>) -> Vec<(XdsType, Wire)> {
        let previous = std::mem::replace(&mut self.resources, resources);
        let mut out = Vec::new();
        let mut forced = false;
        for t in XdsType::ORDER {
            let Some(state) = self.types.get(&t) else {
                continue;
            };
            let force = forced && t == XdsType::Endpoint;
            if previous.shares(&self.resources, t) && !force {
                continue;
            }
            let all = self.resources.type_set(t).clone();
            if force || (t.is_wildcard() && !same(&state.sent, &all)) {
                forced |= t == XdsType::Cluster;
                out.push((t, self.respond(t)));
            } else if !t.is_wildcard() {
                // Routes and endpoints are not wildcard types: a response with only the
                // changed resources updates those and leaves the others as they are.
                let changed: Vec<Arc<Cached>> = state
                    .names
                    .iter()
                    .filter_map(|name| all.get(name).filter(|r| state.sent.get(name) != Some(*r)))
                    .cloned()
                    .collect();
                if !changed.is_empty() {
                    out.push((t, self.response(t, changed)));
                }
            }
        }
        out
    }

    /// Per type: what was sent and acknowledged.
    pub fn status(&self) -> BTreeMap<XdsType, TypeStatus> {
        self.types
            .iter()
            .map(|(t, s)| (*t, s.status.clone()))
            .collect()
    }

    /// Sends what the proxy asked for of type `t`, all of it.
    fn respond(&mut self, t: XdsType) -> Wire {
        let all = self.resources.type_set(t).clone();
        let state = self.types.entry(t).or_default();
        let chosen: Vec<Arc<Cached>> = if t.is_wildcard() {
            all.values().cloned().collect()
        } else {
            state
                .names
                .iter()
                .filter_map(|n| all.get(n))
                .cloned()
                .collect()
        };
        self.response(t, chosen)
    }

    /// Sends `resources`; afterwards the proxy holds what it asked for of the current
    /// resources of type `t` (more than was sent when only the changed routes or
    /// endpoints go out).
    fn response(&mut self, t: XdsType, resources: Vec<Arc<Cached>>) -> Wire {
        let version = self.counter.next();
        let nonce = self.counter.next();
        let sent = self.resources.type_set(t).clone();
        let state = self.types.entry(t).or_default();
        state.status.version_sent = version.clone();
        state.status.nonce_sent = nonce.clone();
        state.status.resources_sent = resources.len();
        state.sent = sent;
        Wire::sotw(
            DiscoveryResponse {
                version_info: version,
                type_url: t.url().to_string(),
                nonce,
                ..Default::default()
            },
            resources,
        )
    }
}

/// True when two sets hold the same resources (by pointer first).
fn same(a: &Arc<TypeSet>, b: &Arc<TypeSet>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

// ---------------------------------------------------------------------------------------
// Incremental (delta)

#[derive(Debug, Default)]
struct DeltaType {
    wildcard: bool,
    names: BTreeSet<String>,
    /// What the proxy has, by name, as far as this server knows.
    sent: TypeSet,
    /// Versions the proxy said it had when it (re)connected, not yet reconciled.
    initial_versions: BTreeMap<String, String>,
    status: TypeStatus,
}

/// An incremental ADS stream.
#[derive(Debug, Default)]
pub struct Delta {
    counter: Counter,
    types: BTreeMap<XdsType, DeltaType>,
    resources: Arc<ProxyResources>,
}

impl Delta {
    pub fn new(resources: Arc<ProxyResources>) -> Self {
        Delta {
            resources,
            ..Default::default()
        }
    }

    /// Handles one request from the proxy.
    pub fn on_request(&mut self, req: &DeltaDiscoveryRequest) -> Outcome {
        let Some(t) = XdsType::from_url(&req.type_url) else {
            return Outcome {
                event: Event::UnknownType(req.type_url.clone()),
                responses: vec![],
            };
        };
        let first = !self.types.contains_key(&t);
        let state = self.types.entry(t).or_default();
        let mut event = Event::Subscribed(t);
        if first {
            state.wildcard = t.is_wildcard() && req.resource_names_subscribe.is_empty();
            state.initial_versions = req
                .initial_resource_versions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        } else if !req.response_nonce.is_empty() {
            event = if req.response_nonce == state.status.nonce_sent {
                let version = state.status.version_sent.clone();
                let error = error_detail(req.error_detail.as_ref());
                let acked = if error.is_some() {
                    state.status.version_acked.clone()
                } else {
                    version
                };
                ack_or_nack(t, &mut state.status, &acked, &req.response_nonce, error)
            } else {
                Event::Stale(t)
            };
        }
        let mut newly = BTreeSet::new();
        for name in &req.resource_names_subscribe {
            if name == "*" {
                state.wildcard = true;
            } else if state.names.insert(name.clone()) {
                newly.insert(name.clone());
            }
        }
        for name in &req.resource_names_unsubscribe {
            if name == "*" {
                state.wildcard = false;
            } else {
                state.names.remove(name);
                state.sent.remove(name);
            }
        }
        let changed = !newly.is_empty() || !req.resource_names_unsubscribe.is_empty();
        let mut responses = vec![];
        if first || changed {
            let response = self
                .respond(t, &newly, &BTreeSet::new())
                .map(|(response, _)| response);
            if first || response.is_some() {
                let response = response.unwrap_or_else(|| self.empty_response(t));
                responses.push((t, response));
            }
        }
        Outcome { event, responses }
    }

    /// Moves to new resources; returns what to send: per type, only the resources that
    /// changed and the names that went away. Types whose resources are shared with the
    /// previous ones are not even compared.
    pub fn on_push(&mut self, resources: Arc<ProxyResources>) -> Vec<(XdsType, Wire)> {
        let previous = std::mem::replace(&mut self.resources, resources);
        let mut out = Vec::new();
        let mut resend = BTreeSet::new();
        for t in XdsType::ORDER {
            if !self.types.contains_key(&t)
                || previous.shares(&self.resources, t)
                    && (t != XdsType::Endpoint || resend.is_empty())
            {
                continue;
            }
            let forced = if t == XdsType::Endpoint {
                std::mem::take(&mut resend)
            } else {
                BTreeSet::new()
            };
            if let Some((response, updated)) = self.respond(t, &BTreeSet::new(), &forced) {
                if t == XdsType::Cluster {
                    resend = updated;
                }
                out.push((t, response));
            }
        }
        out
    }

    /// Per type: what was sent and acknowledged.
    pub fn status(&self) -> BTreeMap<XdsType, TypeStatus> {
        self.types
            .iter()
            .map(|(t, s)| (*t, s.status.clone()))
            .collect()
    }

    fn empty_response(&mut self, t: XdsType) -> Wire {
        let nonce = self.counter.next();
        let state = self.types.entry(t).or_default();
        state.status.nonce_sent = nonce.clone();
        state.status.resources_sent = 0;
        Wire::delta(
            DeltaDiscoveryResponse {
                system_version_info: state.status.version_sent.clone(),
                type_url: t.url().to_string(),
                nonce,
                ..Default::default()
            },
            Vec::new(),
        )
    }

    /// The difference between what the proxy should have and what it has, with the names
    /// of the resources sent; `None` when there is none. Names in `asked` that do not
    /// exist are reported removed, so the proxy stops waiting for them; names in `forced`
    /// are sent even when unchanged.
    fn respond(
        &mut self,
        t: XdsType,
        asked: &BTreeSet<String>,
        forced: &BTreeSet<String>,
    ) -> Option<(Wire, BTreeSet<String>)> {
        let all = self.resources.of_type(t);
        let state = self.types.entry(t).or_default();
        let wanted: TypeSet = if state.wildcard {
            all.clone()
        } else {
            state
                .names
                .iter()
                .filter_map(|n| all.get(n).map(|r| (n.clone(), r.clone())))
                .collect()
        };
        let mut updates: Vec<(&String, &Arc<Cached>)> = Vec::new();
        for (name, resource) in &wanted {
            let known = state.sent.get(name) == Some(resource);
            let initial = state.initial_versions.remove(name);
            if forced.contains(name) || !known && initial.as_deref() != Some(resource.version()) {
                updates.push((name, resource));
            } else if !known {
                state.sent.insert(name.clone(), resource.clone());
            }
        }
        let mut removed: BTreeSet<String> = state
            .sent
            .keys()
            .filter(|n| !wanted.contains_key(*n))
            .cloned()
            .collect();
        removed.extend(asked.iter().filter(|n| !all.contains_key(*n)).cloned());
        if state.wildcard {
            removed.extend(
                std::mem::take(&mut state.initial_versions)
                    .into_keys()
                    .filter(|n| !all.contains_key(n)),
            );
        }
        if updates.is_empty() && removed.is_empty() {
            return None;
        }
        let updated: Vec<(String, Arc<Cached>)> = updates
            .into_iter()
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect();
        for name in &removed {
            state.sent.remove(name);
        }
        state.sent.extend(updated.iter().cloned());
        let version = self.counter.next();
        let nonce = self.counter.next();
        state.status.version_sent = version.clone();
        state.status.nonce_sent = nonce.clone();
        state.status.resources_sent = updated.len();
        let (names, resources) = updated.into_iter().unzip();
        let response = DeltaDiscoveryResponse {
            system_version_info: version,
            type_url: t.url().to_string(),
            removed_resources: removed.into_iter().collect(),
            nonce,
            ..Default::default()
        };
        Some((Wire::delta(response, resources), names))
    }
}

#[cfg(test)]
mod tests;
