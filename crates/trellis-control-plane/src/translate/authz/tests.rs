use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::rbac::v3::Permission;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_provider::JwksSourceSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_requirement::RequiresType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::requirement_rule::RequirementType;
use prost::Message;

use logic::Node;

use super::*;
use crate::jwks::JwksCache;
use crate::proxy::ProxyKind;
use crate::testing::snapshot;
use crate::translate::authn::jwt::{JwtAuthentication, UNVERIFIABLE_JWKS};

fn proxy(namespace: &str, labels: &[(&str, &str)]) -> ProxyNode {
    let id = ProxyNode::node_id(ProxyKind::Sidecar, "10.0.0.1", "w", namespace);
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ProxyNode::from_parts(&id, &Default::default(), labels).unwrap()
}

fn mesh(yaml: &str) -> MeshSnapshot {
    MeshSnapshot::new(snapshot(yaml), &[], Arc::new(Default::default()))
}

fn names(filters: &[HttpFilter]) -> Vec<&str> {
    filters.iter().map(|f| f.name.as_str()).collect()
}

fn http_rbac(f: &HttpFilter) -> HttpRbac {
    match &f.config_type {
        Some(HttpFilterConfig::TypedConfig(any)) => HttpRbac::decode(any.value.as_slice()).unwrap(),
        _ => panic!("no config"),
    }
}

fn jwt_config(f: &HttpFilter) -> JwtAuthentication {
    match &f.config_type {
        Some(HttpFilterConfig::TypedConfig(any)) => {
            JwtAuthentication::decode(any.value.as_slice()).unwrap()
        }
        _ => panic!("no config"),
    }
}

const POLICIES: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-deny, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/admin]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ns-allow, namespace: shop}
spec:
  rules: [{to: [{operation: {methods: [GET]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-reviews, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  action: AUDIT
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-ns, namespace: other}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: for-a-gateway, namespace: shop}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]
  action: DENY
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  jwtRules:
  - issuer: b-issuer
    jwksUri: http://keys.example/jwks
  - issuer: a-issuer
    jwks: '{\"keys\": []}'
";

#[test]
fn filters_come_in_istios_order_for_the_policies_that_select_the_proxy() {
    let mesh = mesh(POLICIES);
    let reviews = http_filters(&mesh, &proxy("shop", &[("app", "reviews")]));
    assert_eq!(
        names(&reviews),
        [
            jwt::JWT_AUTHN,
            rbac::HTTP_RBAC,
            rbac::HTTP_RBAC,
            rbac::HTTP_RBAC
        ]
    );
    let actions: Vec<i32> = reviews[1..]
        .iter()
        .map(|f| http_rbac(f).rules.unwrap().action)
        .collect();
    assert_eq!(actions, [2, 1, 0], "AUDIT (LOG), DENY, ALLOW");
    let deny = http_rbac(&reviews[2]).rules.unwrap();
    assert_eq!(
        deny.policies.keys().collect::<Vec<_>>(),
        ["ns[istio-system]-policy[mesh-deny]-rule[0]"],
        "the targetRef policy does not attach to a sidecar"
    );

    let ratings = http_filters(&mesh, &proxy("shop", &[("app", "ratings")]));
    assert_eq!(
        names(&ratings),
        [jwt::JWT_AUTHN, rbac::HTTP_RBAC, rbac::HTTP_RBAC],
        "no AUDIT filter without the selected labels"
    );
    let elsewhere = http_filters(&mesh, &proxy("web", &[]));
    assert_eq!(
        names(&elsewhere),
        [rbac::HTTP_RBAC],
        "only the mesh-wide DENY"
    );

    let gateway = http_filters(&mesh, &proxy("shop", &[(select::GATEWAY_NAME_LABEL, "gw")]));
    let deny = http_rbac(&gateway[1]).rules.unwrap();
    assert!(
        deny.policies
            .contains_key("ns[shop]-policy[for-a-gateway]-rule[0]")
    );
}

#[test]
fn jwt_rules_are_sorted_by_issuer_and_unfetched_keys_verify_nothing() {
    let mesh = mesh(POLICIES);
    let p = proxy("shop", &[]);
    let config = jwt_config(&http_filters(&mesh, &p)[0]);
    let inline = |c: &JwtAuthentication, name: &str| match &c.providers[name].jwks_source_specifier
    {
        Some(JwksSourceSpecifier::LocalJwks(ds)) => match &ds.specifier {
            Some(Specifier::InlineString(s)) => s.clone(),
            _ => panic!(),
        },
        _ => panic!(),
    };
    assert_eq!(config.providers["origins-0"].issuer, "a-issuer");
    assert_eq!(inline(&config, "origins-0"), "{\"keys\": []}");
    assert_eq!(inline(&config, "origins-1"), UNVERIFIABLE_JWKS);
    assert_eq!(config.providers["origins-1"].payload_in_metadata, "payload");
    // Two rules: any one provider, or every provider "valid or missing".
    let Some(RequirementType::Requires(req)) = &config.rules[0].requirement_type else {
        panic!()
    };
    let Some(RequiresType::RequiresAny(any)) = &req.requires_type else {
        panic!()
    };
    assert_eq!(any.requirements.len(), 3);
    assert!(matches!(
        any.requirements[2].requires_type,
        Some(RequiresType::RequiresAll(_))
    ));

    let mut keys = JwksCache::default();
    keys.insert("http://keys.example/jwks".into(), "{\"keys\":[1]}".into());
    let fetched = mesh.with_jwks(keys);
    let config = jwt_config(&http_filters(&fetched, &p)[0]);
    assert_eq!(inline(&config, "origins-1"), "{\"keys\":[1]}");
}

#[test]
fn tcp_chains_drop_http_fields_in_the_safe_direction() {
    let yaml = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get, namespace: shop}
spec:
  rules:
  - to: [{operation: {methods: [GET], ports: ['9000']}}]
  - to: [{operation: {ports: ['9001']}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-get, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [GET]}}]}]
";
    let filters = network_filters(&mesh(yaml), &proxy("shop", &[]));
    assert_eq!(filters.len(), 2);
    let decode = |f: &Filter| match &f.config_type {
        Some(ConfigType::TypedConfig(any)) => NetworkRbac::decode(any.value.as_slice()).unwrap(),
        _ => panic!(),
    };
    let deny = decode(&filters[0]).rules.unwrap();
    let policy = &deny.policies["ns[shop]-policy[deny-get]-rule[0]"];
    assert_eq!(
        policy.permissions,
        [Permission::and(vec![Permission::any()])],
        "DENY without its HTTP-only method denies every connection"
    );
    let allow = decode(&filters[1]);
    assert_eq!(allow.stat_prefix, "tcp.");
    let rules = allow.rules.unwrap();
    assert_eq!(
        rules.policies.keys().collect::<Vec<_>>(),
        ["ns[shop]-policy[allow-get]-rule[1]"],
        "the ALLOW rule with an HTTP-only method is gone; the port-only one stays"
    );
}

#[test]
fn custom_policies_deny_what_they_would_have_checked_and_dry_runs_shadow() {
    let yaml = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: shop}
spec:
  action: CUSTOM
  provider: {name: opa}
  rules: [{to: [{operation: {paths: [/secure]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: trial
  namespace: shop
  annotations: {istio.io/dry-run: 'true'}
spec:
  action: DENY
  rules: [{}]
";
    let filters = http_filters(&mesh(yaml), &proxy("shop", &[]));
    assert_eq!(names(&filters), [rbac::HTTP_RBAC, rbac::HTTP_RBAC]);
    let custom = http_rbac(&filters[0]).rules.unwrap();
    assert_eq!(custom.action, 1);
    assert_eq!(
        custom.policies.keys().collect::<Vec<_>>(),
        ["istio-ext-authz-opa-ns[shop]-policy[ext]-rule[0]-deny-due-to-bad-CUSTOM-action"]
    );
    let dry = http_rbac(&filters[1]);
    assert_eq!(dry.rules, None, "a dry run enforces nothing");
    assert_eq!(dry.shadow_rules.unwrap().policies.len(), 1);
    assert_eq!(dry.shadow_rules_stat_prefix, "istio_dry_run_deny_");
}

#[test]
fn gateways_carry_the_filters_on_http_and_tcp_servers() {
    use crate::translate::listeners::gateway;
    let yaml = "
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ['*']
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: istio-system}
spec:
  hosts: ['*']
  gateways: [gw]
  tcp: [{route: [{destination: {host: db.example.com, port: {number: 5432}}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  rules: [{from: [{source: {remoteIpBlocks: [10.0.0.0/8]}}]}]
";
    let id = ProxyNode::node_id(ProxyKind::Router, "10.0.0.9", "gw", "istio-system");
    let labels = BTreeMap::from([("istio".to_string(), "ingressgateway".to_string())]);
    let router = ProxyNode::from_parts(&id, &Default::default(), labels).unwrap();
    let listeners = gateway::listeners(&mesh(yaml), &router);
    let names_on = |port: u32| -> Vec<String> {
        let l = listeners
            .iter()
            .find(|l| l.name == format!("0.0.0.0_{port}"))
            .unwrap();
        l.filter_chains[0]
            .filters
            .iter()
            .map(|f| f.name.clone())
            .collect()
    };
    assert_eq!(
        names_on(31400),
        [rbac::NETWORK_RBAC, "envoy.filters.network.tcp_proxy"]
    );
    let hcm = &listeners
        .iter()
        .find(|l| l.name == "0.0.0.0_8080")
        .unwrap()
        .filter_chains[0]
        .filters[0];
    let Some(ConfigType::TypedConfig(any)) = &hcm.config_type else {
        panic!()
    };
    let hcm = envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    assert_eq!(
        names(&hcm.http_filters),
        [
            rbac::HTTP_RBAC,
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            "envoy.filters.http.router"
        ]
    );
}

#[test]
fn twins_carry_envoys_type_urls() {
    use envoy_types::pb::envoy::extensions::filters::{http, network};
    use prost::Name;
    assert_eq!(HttpRbac::type_url(), http::rbac::v3::Rbac::type_url());
    assert_eq!(NetworkRbac::type_url(), network::rbac::v3::Rbac::type_url());
    assert_eq!(
        JwtAuthentication::type_url(),
        http::jwt_authn::v3::JwtAuthentication::type_url()
    );
}

#[test]
fn encoding_is_deterministic() {
    let mesh = mesh(POLICIES);
    let p = proxy("shop", &[("app", "reviews")]);
    let first = http_filters(&mesh, &p);
    for _ in 0..5 {
        assert_eq!(http_filters(&mesh, &p), first);
    }
}

mod no_panic {
    use proptest::prelude::*;
    use trellis_api::istio::security::{Condition, Operation, Rule, RuleFrom, RuleTo, Source};

    use super::super::rule::{Action, Model};
    use super::super::trust_domain::TrustDomains;

    /// Values with the characters Istio's syntax gives meaning to.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9./*{}\\[\\]:@-]{0,12}",
            Just("*".to_string()),
            Just("{**}".to_string()),
            any::<String>(),
        ]
    }

    fn values() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(value(), 0..3)
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "request.headers[x]",
                "request.headers",
                "request.auth.claims[a][b]",
                "request.auth.claims[",
                "request.auth.claims]x[",
                "source.ip",
                "remote.ip",
                "destination.ip",
                "destination.port",
                "connection.sni",
                "source.namespace",
                "source.principal",
                "source.serviceAccount",
                "source.trustDomain",
                "request.auth.principal",
                "request.auth.audiences",
                "request.auth.presenter",
                "experimental.envoy.filters.a[b]",
                "experimental.envoy.filters.nobracket",
            ])
            .prop_map(str::to_string),
            any::<String>(),
        ]
    }

    prop_compose! {
        fn source()(v in prop::collection::vec(values(), 14)) -> Source {
            let mut s = Source::default();
            let fields = [
                &mut s.principals, &mut s.not_principals, &mut s.request_principals,
                &mut s.not_request_principals, &mut s.namespaces, &mut s.not_namespaces,
                &mut s.service_accounts, &mut s.not_service_accounts, &mut s.ip_blocks,
                &mut s.not_ip_blocks, &mut s.remote_ip_blocks, &mut s.not_remote_ip_blocks,
                &mut s.trust_domains, &mut s.not_trust_domains,
            ];
            for (field, values) in fields.into_iter().zip(v) {
                *field = values;
            }
            s
        }
    }

    prop_compose! {
        fn operation()(v in prop::collection::vec(values(), 8)) -> Operation {
            let mut o = Operation::default();
            let fields = [
                &mut o.hosts, &mut o.not_hosts, &mut o.ports, &mut o.not_ports,
                &mut o.methods, &mut o.not_methods, &mut o.paths, &mut o.not_paths,
            ];
            for (field, values) in fields.into_iter().zip(v) {
                *field = values;
            }
            o
        }
    }

    prop_compose! {
        fn rule()(
            from in prop::collection::vec(prop::option::of(source()), 0..2),
            to in prop::collection::vec(prop::option::of(operation()), 0..2),
            when in prop::collection::vec((key(), values(), values()), 0..3),
        ) -> Rule {
            Rule {
                from: from.into_iter().map(|source| RuleFrom { source }).collect(),
                to: to.into_iter().map(|operation| RuleTo { operation }).collect(),
                when: when
                    .into_iter()
                    .map(|(key, values, not_values)| Condition { key, values, not_values })
                    .collect(),
            }
        }
    }

    proptest! {
        #[test]
        fn any_rule_translates_without_panicking(
            rule in rule(),
            tcp in any::<bool>(),
            action in prop::sample::select(vec![Action::Allow, Action::Deny, Action::Log]),
        ) {
            let domains = TrustDomains::of(&Default::default());
            if let Ok(model) = Model::new("ns", &rule, &domains) {
                let _ = model.generate(tcp, action);
            }
        }
    }
}
