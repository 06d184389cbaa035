//! The actions of a route other than forwarding: redirect (with Istio's port and scheme
//! rules and its redirect codes), direct response (status and inline body), and the
//! rewrite applied while forwarding (uri prefix, `uriRegexRewrite`, authority).

use base64::Engine;
use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::route::v3::redirect_action::{
    PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, RedirectAction, RouteAction,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use trellis_api::istio::networking::{
    HttpDirectResponse, HttpRedirect, HttpRedirectRedirectPortSelection, HttpRewrite,
};

use super::{Skip, matches};

/// Istio's redirect: `uri` replaces the path (or `prefixRewrite` its prefix), `authority`
/// the host; a port equal to the scheme's default is left out of the Location.
pub(super) fn redirect(r: &HttpRedirect, listen_port: u32, is_tls: bool) -> Result<Action, Skip> {
    let response_code = match r.redirect_code {
        0 | 301 => RedirectResponseCode::MovedPermanently,
        302 => RedirectResponseCode::Found,
        303 => RedirectResponseCode::SeeOther,
        307 => RedirectResponseCode::TemporaryRedirect,
        308 => RedirectResponseCode::PermanentRedirect,
        other => return Err(Skip::new(format!("redirect code {other} is not supported"))),
    };
    let mut out = RedirectAction {
        host_redirect: r.authority.clone(),
        response_code: response_code as i32,
        path_rewrite_specifier: Some(if r.prefix_rewrite.is_empty() {
            PathRewriteSpecifier::PathRedirect(r.uri.clone())
        } else {
            PathRewriteSpecifier::PrefixRewrite(r.prefix_rewrite.clone())
        }),
        ..Default::default()
    };
    if !r.scheme.is_empty() {
        out.scheme_rewrite_specifier =
            Some(SchemeRewriteSpecifier::SchemeRedirect(r.scheme.clone()));
    }
    let port = match (r.port, r.derive_port) {
        (Some(port), _) => Some(port),
        (None, Some(HttpRedirectRedirectPortSelection::FromRequestPort)) => Some(listen_port),
        (None, Some(HttpRedirectRedirectPortSelection::FromProtocolDefault)) => Some(0),
        (None, None) => None,
    };
    if let Some(port) = port {
        let scheme = match r.scheme.as_str() {
            "" if is_tls => "https",
            "" => "http",
            s => s,
        };
        let default_port = (port == 80 && scheme == "http") || (port == 443 && scheme == "https");
        out.port_redirect = if default_port { 0 } else { port };
    }
    Ok(Action::Redirect(out))
}

/// A fixed response; Envoy only accepts statuses 200–599.
pub(super) fn direct_response(d: &HttpDirectResponse) -> Result<Action, Skip> {
    if !(200..600).contains(&d.status) {
        return Err(Skip::new(format!(
            "direct response status {} is outside 200-599",
            d.status
        )));
    }
    let body = match &d.body {
        None => None,
        Some(b) => {
            let specifier = if let Some(s) = &b.string {
                Specifier::InlineString(s.clone())
            } else if let Some(encoded) = &b.bytes {
                // proto3 JSON writes bytes as base64.
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|e| Skip::new(format!("direct response body bytes: {e}")))?;
                Specifier::InlineBytes(bytes)
            } else {
                return Err(Skip::new(
                    "direct response body sets neither string nor bytes",
                ));
            };
            Some(DataSource {
                specifier: Some(specifier),
                ..Default::default()
            })
        }
    };
    Ok(Action::DirectResponse(DirectResponseAction {
        status: d.status,
        body,
        ..Default::default()
    }))
}

/// Rewrites applied while forwarding; an authority rewrite replaces any `:authority` set
/// through headers.
pub(super) fn apply_rewrite(
    action: &mut RouteAction,
    rewrite: &HttpRewrite,
    authority: &mut String,
) -> Result<(), Skip> {
    if let Some(regex) = &rewrite.uri_regex_rewrite {
        action.regex_rewrite = Some(RegexMatchAndSubstitute {
            pattern: Some(matches::regex_matcher(&regex.r#match)?),
            substitution: regex.rewrite.clone(),
        });
    } else if !rewrite.uri.is_empty() {
        action.prefix_rewrite = rewrite.uri.clone();
    }
    if !rewrite.authority.is_empty() {
        *authority = rewrite.authority.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use trellis_api::istio::networking::HttpBody;

    use super::*;

    fn redirect_action(r: &HttpRedirect, port: u32, tls: bool) -> RedirectAction {
        match redirect(r, port, tls).unwrap() {
            Action::Redirect(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn redirect_defaults_to_301_and_path() {
        let r = HttpRedirect {
            uri: "/v1/bookRatings".into(),
            authority: "newratings.default.svc.cluster.local".into(),
            ..Default::default()
        };
        let out = redirect_action(&r, 9080, false);
        assert_eq!(
            out.response_code,
            RedirectResponseCode::MovedPermanently as i32
        );
        assert_eq!(out.host_redirect, "newratings.default.svc.cluster.local");
        assert_eq!(
            out.path_rewrite_specifier,
            Some(PathRewriteSpecifier::PathRedirect("/v1/bookRatings".into()))
        );
        assert_eq!(out.port_redirect, 0);
    }

    #[test]
    fn redirect_ports() {
        let mut r = HttpRedirect {
            derive_port: Some(HttpRedirectRedirectPortSelection::FromRequestPort),
            redirect_code: 307,
            ..Default::default()
        };
        assert_eq!(redirect_action(&r, 8080, false).port_redirect, 8080);
        assert_eq!(redirect_action(&r, 80, false).port_redirect, 0);
        r.derive_port = None;
        r.port = Some(443);
        r.scheme = "https".into();
        let out = redirect_action(&r, 80, false);
        assert_eq!(out.port_redirect, 0);
        assert_eq!(
            out.scheme_rewrite_specifier,
            Some(SchemeRewriteSpecifier::SchemeRedirect("https".into()))
        );
        assert_eq!(
            out.response_code,
            RedirectResponseCode::TemporaryRedirect as i32
        );
        r.redirect_code = 399;
        assert!(redirect(&r, 80, false).is_err());
    }

    #[test]
    fn direct_response_bodies() {
        let d = HttpDirectResponse {
            status: 503,
            body: Some(HttpBody {
                string: Some("unknown path".into()),
                ..Default::default()
            }),
        };
        let Action::DirectResponse(out) = direct_response(&d).unwrap() else {
            panic!()
        };
        assert_eq!(out.status, 503);
        let d = HttpDirectResponse {
            status: 200,
            body: Some(HttpBody {
                bytes: Some("aGVsbG8=".into()),
                ..Default::default()
            }),
        };
        let Action::DirectResponse(out) = direct_response(&d).unwrap() else {
            panic!()
        };
        assert_eq!(
            out.body.unwrap().specifier,
            Some(Specifier::InlineBytes(b"hello".to_vec()))
        );
        assert!(
            direct_response(&HttpDirectResponse {
                status: 99,
                body: None
            })
            .is_err()
        );
    }

    #[test]
    fn rewrites() {
        let mut action = RouteAction::default();
        let mut authority = String::new();
        let rw = HttpRewrite {
            uri: "/v1".into(),
            authority: "ratings.internal".into(),
            ..Default::default()
        };
        apply_rewrite(&mut action, &rw, &mut authority).unwrap();
        assert_eq!(action.prefix_rewrite, "/v1");
        assert_eq!(authority, "ratings.internal");
        let rw = HttpRewrite {
            uri_regex_rewrite: Some(trellis_api::istio::networking::RegexRewrite {
                r#match: "^/service/([^/]+)(/.*)$".into(),
                rewrite: "\\2/instance/\\1".into(),
            }),
            ..Default::default()
        };
        apply_rewrite(&mut action, &rw, &mut authority).unwrap();
        assert!(action.regex_rewrite.is_some());
    }
}
