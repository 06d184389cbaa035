//! Cross-object analysis: the mistakes Istio's analyzers catch, with Istio's codes, levels
//! and wording (`Error [IST0101] (VirtualService default/reviews) Referenced host not found`).
//!
//! Every analyzer is a pure function over the whole set of objects ([`Context`]) that
//! appends [`Message`]s. Analyzers carry Istio's analyzer names (`virtualservice.
//! DestinationHostAnalyzer`...) so that a user or a test can run one of them alone, as
//! `istioctl analyze` and Istio's own test table do. Host matching, short-name resolution
//! and exportTo visibility live in one place, [`hosts`], shared by every analyzer.
//!
//! One analyzer is Trellis's own: `trellis.UnsupportedFieldAnalyzer` (code TRL0001) names
//! what the translation does not honour yet ([`UNSUPPORTED`]).

mod annotations;
mod authn;
mod authz;
mod context;
mod deployment;
mod destinationrule;
mod envoyfilter;
mod gateway;
pub mod hosts;
mod messages;
mod schema;
mod selector;
mod service;
mod serviceentry;
mod sidecar;
mod telemetry;
mod unsupported;
mod virtualservice;
mod workload;

pub use context::Context;
pub use unsupported::{NAME as UNSUPPORTED_FIELD_ANALYZER, Target, UNSUPPORTED, Unsupported, When};

use trellis_api::istio::mesh::MeshConfig;
use trellis_api::{DecodeError, Resource};

/// The level of an analyzer message, as istioctl prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error,
    Warning,
    Info,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "Error",
            Level::Warning => "Warning",
            Level::Info => "Info",
        }
    }
}

/// One analyzer message about one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Message {
    /// Istio's code, e.g. `IST0101`, or Trellis's own (`TRL...`, outside Istio's range).
    pub code: &'static str,
    pub level: Level,
    /// `Kind namespace/name` of the object the message is about (Istio's "origin");
    /// `Kind name` for objects without a namespace.
    pub origin: String,
    pub message: String,
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{}] ({}) {}",
            self.level.as_str(),
            self.code,
            self.origin,
            self.message
        )
    }
}

/// Everything analysis looks at: the decoded objects, the mesh config, and the objects that
/// could not be decoded (reported as IST0106 SchemaValidationError).
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub resources: &'a [Resource],
    pub mesh: &'a MeshConfig,
    pub decode_errors: &'a [DecodeError],
}

/// One analyzer: Istio's name for it, and the function that runs it.
pub struct Analyzer {
    /// Istio's analyzer name, e.g. `virtualservice.DestinationHostAnalyzer`.
    pub name: &'static str,
    pub description: &'static str,
    run: fn(&Context<'_>, &mut Vec<Message>),
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

macro_rules! analyzers {
    ($($name:literal => $run:path, $desc:literal;)+) => {
        /// Every analyzer Trellis runs, in a fixed order.
        pub const ANALYZERS: &[Analyzer] = &[
            $(Analyzer { name: $name, description: $desc, run: $run },)+
        ];
    };
}

analyzers! {
    "schema.ValidationAnalyzer" => schema::validation,
        "Objects that fail Istio's validation rules or cannot be decoded";
    "virtualservice.UnreachableRulesAnalyzer" => virtualservice::routes::unreachable_rules,
        "VirtualService rules and matches that can never be reached";
    "virtualservice.DestinationHostAnalyzer" => virtualservice::destination_hosts,
        "Destination hosts of each VirtualService exist and have the port routed to";
    "virtualservice.DestinationRuleAnalyzer" => virtualservice::destination_rules,
        "Subsets routed to by each VirtualService are defined by a DestinationRule";
    "virtualservice.GatewayAnalyzer" => virtualservice::gateways,
        "Gateways of each VirtualService exist and serve its hosts";
    "virtualservice.ConflictingMeshGatewayHostsAnalyzer" => virtualservice::conflicting_mesh_hosts,
        "VirtualServices bound to the mesh gateway that define the same host";
    "virtualservice.JWTClaimRouteAnalyzer" => virtualservice::jwt_claim_route,
        "JWT claim based routing has a RequestAuthentication on the gateway pods";
    "gateway.ConflictingGatewayAnalyzer" => gateway::conflicting,
        "Gateways that select the same workload with the same port and host";
    "gateway.SecretAnalyzer" => gateway::secrets,
        "Credentials referenced by Gateways exist and hold a certificate";
    "gateway.CertificateAnalyzer" => gateway::duplicate_certificates,
        "The same certificate used by several Gateways";
    "gateway.IngressGatewayPortAnalyzer" => gateway::ingress_ports,
        "Gateway ports are exposed by the Service of the gateway workload";
    "sidecar.SelectorAnalyzer" => sidecar::selectors,
        "Sidecars that select no workload, or the same workload as another Sidecar";
    "destinationrule.CaCertificateAnalyzer" => destinationrule::ca_certificates,
        "DestinationRules with TLS but no CA certificate to verify the server";
    "destinationrule.PodNotSelectedAnalyzer" => destinationrule::subsets_select_pods,
        "DestinationRule hosts that match no service, subsets that select no pod";
    "service.PortNameAnalyzer" => service::port_names,
        "Service port names that do not follow Istio's protocol naming";
    "serviceentry.ProtocolAddressesAnalyzer" => serviceentry::protocol_addresses,
        "ServiceEntries whose protocol needs addresses";
    "serviceentry.ConflictingServiceEntryProtocolAnalyzer" => serviceentry::conflicting_protocols,
        "ServiceEntries that give one host and port different protocols";
    "authz.AuthorizationPoliciesAnalyzer" => authz::authorization_policies,
        "AuthorizationPolicies that select nothing or name unknown namespaces";
    "telemetry.SelectorAnalyzer" => telemetry::selectors,
        "Telemetries that select no workload, or the same workload as another";
    "telemetry.DefaultSelectorAnalyzer" => telemetry::default_selectors,
        "Several Telemetries without a selector in one namespace";
    "telemetry.ProviderAnalyzer" => telemetry::providers,
        "Telemetries with no provider when the mesh has no default provider";
    "telemetry.LightstepAnalyzer" => telemetry::lightstep,
        "Use of the deprecated Lightstep provider";
    "envoyfilter.EnvoyPatchAnalyzer" => envoyfilter::patches,
        "EnvoyFilter patch operations that are fragile or ignored";
    "deployment.ServiceAssociationAnalyzer" => deployment::service_association,
        "Deployments that several Services expose with conflicting ports or protocols";
    "deprecation.FieldAnalyzer" => deployment::deprecated_fields,
        "Use of deprecated Istio fields";
    "deployment.ApplicationUIDAnalyzer" => deployment::application_uid,
        "Pods and Deployments whose application runs as the proxy's user ID 1337";
    "annotations.K8sAnalyzer" => annotations::kubernetes,
        "Istio annotations that are unknown, misplaced, deprecated or invalid";
    "maturity.AlphaAnalyzer" => annotations::alpha,
        "Istio annotations of alpha-phase features";
    "authn.BlockedCIDRsAnalyzer" => authn::blocked_cidrs,
        "RequestAuthentications while istiod does not restrict the addresses of JWKS fetches";
    "trellis.UnsupportedFieldAnalyzer" => unsupported::unsupported_fields,
        "Fields and kinds that Trellis does not implement yet and ignores (TRL0001)";
}

/// Analyzers that run only when asked for by name: Istio leaves them out of `istioctl
/// analyze`'s default set (the alpha analyzer flags annotations that are set by default).
pub const OPT_IN: &[&str] = &["maturity.AlphaAnalyzer"];

/// Whether an analyzer runs when none is named: every analyzer but the [`OPT_IN`] ones.
pub fn by_default(name: &str) -> bool {
    !OPT_IN.contains(&name)
}

/// Runs the default analyzers ([`by_default`]) over a set of objects.
pub fn analyze(resources: &[Resource], mesh: &MeshConfig) -> Vec<Message> {
    analyze_input(
        &Input {
            resources,
            mesh,
            decode_errors: &[],
        },
        by_default,
    )
}

/// Runs only [`UNSUPPORTED_FIELD_ANALYZER`]: what in these objects and this mesh config the
/// translation ignores today (Trellis's TRL0001 warnings), for the control plane to report.
pub fn unsupported_fields(resources: &[Resource], mesh: &MeshConfig) -> Vec<Message> {
    analyze_input(
        &Input {
            resources,
            mesh,
            decode_errors: &[],
        },
        |name| name == UNSUPPORTED_FIELD_ANALYZER,
    )
}

/// Runs the analyzers whose name `select` accepts, and returns their messages sorted by
/// origin, then code, then text (a stable order for output and tests), without repeats.
pub fn analyze_input(input: &Input<'_>, select: impl Fn(&str) -> bool) -> Vec<Message> {
    let defaults = context::default_resources(input.mesh);
    let ctx = Context::new(input, &defaults);
    let mut out = Vec::new();
    for analyzer in ANALYZERS.iter().filter(|a| select(a.name)) {
        (analyzer.run)(&ctx, &mut out);
    }
    out.sort_by(|a, b| (&a.origin, a.code, &a.message).cmp(&(&b.origin, b.code, &b.message)));
    // Istio reports a message once per object however many fields repeat the mistake.
    out.dedup();
    out
}
