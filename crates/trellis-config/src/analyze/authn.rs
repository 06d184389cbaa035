//! JWKS fetches left unrestricted (IST0175): istiod fetches the `jwksUri` of every
//! RequestAuthentication itself, so without `BLOCKED_CIDRS_IN_JWKS_URIS` a user who can
//! write a RequestAuthentication can make istiod fetch from any address it can reach.

use super::context::full_name;
use super::messages as m;
use super::{Context, Message};

/// The environment variable of istiod that lists the CIDRs JWKS fetches may not reach.
const BLOCKED_CIDRS_ENV: &str = "BLOCKED_CIDRS_IN_JWKS_URIS";

pub fn blocked_cidrs(ctx: &Context<'_>, out: &mut Vec<Message>) {
    let names: Vec<String> = ctx
        .request_authentications()
        .map(|(r, _)| full_name(r))
        .collect();
    if names.is_empty() {
        return;
    }
    for (r, d) in ctx.deployments() {
        // Istio recognizes istiod by its `app: istiod` label.
        if r.meta.labels.get("app").is_none_or(|a| a != "istiod") {
            continue;
        }
        let configured = d
            .template
            .spec
            .containers
            .iter()
            .flat_map(|c| &c.env)
            .any(|e| e.name == BLOCKED_CIDRS_ENV && !e.value.is_empty());
        if !configured {
            out.push(m::jwks_uri_fetch_unrestricted(r, &names));
        }
    }
}
