//! Telemetry API `accessLogging`, as istiod merges it for one proxy and one side.
//!
//! The Telemetries that apply, in order: the root namespace's namespace-wide one, the
//! proxy's namespace's namespace-wide one, then those of the proxy's namespace whose
//! `selector` (or `targetRefs`, for Kubernetes Gateway deployments) picks the workload. A
//! namespace-wide Telemetry has neither; the first of a namespace (by name) counts. Their
//! `accessLogging` entries are merged as istiod's `mergeLogs` does: the last level naming
//! providers for this side decides which are in scope (meshConfig
//! `defaultProviders.accessLogging` when none does), entries without providers inherit
//! their predecessor's, `match.mode` keeps an entry to CLIENT or SERVER, `disabled` turns
//! a provider off and the last `filter.expression` given for a provider becomes an Envoy
//! CEL filter. When no Telemetry sets access logging and the mesh has no default provider,
//! [`logging`] returns `None` and meshConfig's own settings apply.
//!
//! Providers are meshConfig `extensionProviders` (names compared ignoring ASCII case) over
//! the built-in `envoy` (a file logger on `/dev/stdout` in meshConfig's format). Only
//! `envoyFileAccessLog` providers make loggers here; other kinds are reported by the
//! analyzer (TRL0001) and skipped.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::accesslog::v3::access_log_filter::FilterSpecifier;
use envoy_types::pb::envoy::config::accesslog::v3::extension_filter::ConfigType as FilterConfig;
use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, AccessLogFilter, ExtensionFilter};
use envoy_types::pb::envoy::extensions::access_loggers::filters::cel::v3::ExpressionFilter;
use envoy_types::util::pack_any;
use trellis_api::istio::mesh::{
    MeshConfig, MeshConfigExtensionProviderEnvoyFileAccessLogProvider as FileProvider,
};
use trellis_api::istio::telemetry::{AccessLogging, Telemetry, WorkloadMode};
use trellis_api::{Kind, Resource, Spec};
use trellis_config::validate::access_log::{check_format_string, check_json_values};

use super::Mode;
use super::file::{LogFormat, file_access_log};
use crate::mesh::MeshSnapshot;
use crate::proxy::ProxyNode;
use crate::translate::authz::select::attaches;

/// The built-in provider's name.
pub const BUILTIN_PROVIDER: &str = "envoy";
/// Envoy's CEL access-log filter.
pub const CEL_FILTER: &str = "envoy.access_loggers.extension_filters.cel";
/// Where file providers write when they name no path.
const STDOUT: &str = "/dev/stdout";

/// What the merge decided for one provider.
#[derive(Debug, Clone, Default, PartialEq)]
struct ProviderSpec {
    filter: Option<String>,
    disabled: bool,
}

/// The loggers Telemetry gives `proxy` on side `mode`, sorted by provider name; `None`
/// when Telemetry configures no known provider for it (meshConfig's settings apply then,
/// as in istiod). A disabled provider still counts as configured: it only logs nothing.
pub fn logging(mesh: &MeshSnapshot, proxy: &ProxyNode, mode: Mode) -> Option<Vec<AccessLog>> {
    let levels = applicable(mesh, proxy);
    let defaults = default_providers(&mesh.mesh);
    if levels.is_empty() && defaults.is_empty() {
        return None;
    }
    let mut configured: Vec<(String, Option<AccessLog>)> = merge(&levels, &defaults, mode)
        .into_iter()
        .filter_map(|(name, spec)| {
            let (provider_name, file) = provider(&mesh.mesh, &name)?;
            let log = (!spec.disabled).then(|| {
                let mut log = file_logger(&mesh.mesh, &provider_name, &file);
                log.filter = spec.filter.as_deref().map(cel_filter);
                log
            });
            Some((provider_name, log))
        })
        .collect();
    if configured.is_empty() {
        return None;
    }
    configured.sort_by(|a, b| a.0.cmp(&b.0));
    Some(configured.into_iter().filter_map(|(_, log)| log).collect())
}

fn default_providers(mesh: &MeshConfig) -> Vec<String> {
    mesh.default_providers
        .as_ref()
        .map(|d| d.access_logging.clone())
        .unwrap_or_default()
}

/// The `accessLogging` lists of the Telemetries that apply to `proxy`, outermost first
/// (levels without access logging left out).
fn applicable<'a>(mesh: &'a MeshSnapshot, proxy: &ProxyNode) -> Vec<&'a [AccessLogging]> {
    let telemetries: Vec<(&Resource, &Telemetry)> = mesh
        .config
        .of_kind(Kind::Telemetry)
        .filter_map(|r| match &r.spec {
            Spec::Telemetry(t) => Some((r.as_ref(), t)),
            _ => None,
        })
        .collect();
    let namespace_wide = |ns: &str| {
        telemetries
            .iter()
            .find(|(r, t)| r.meta.namespace == ns && is_namespace_wide(t))
            .map(|(_, t)| t.access_logging.as_slice())
    };
    let mut levels = Vec::new();
    levels.extend(namespace_wide(&mesh.root_namespace));
    if proxy.namespace != mesh.root_namespace {
        levels.extend(namespace_wide(&proxy.namespace));
    }
    levels.extend(
        telemetries
            .iter()
            .filter(|(r, t)| {
                r.meta.namespace == proxy.namespace && !is_namespace_wide(t) && attaches(r, proxy)
            })
            .map(|(_, t)| t.access_logging.as_slice()),
    );
    levels.retain(|l| !l.is_empty());
    levels
}

fn is_namespace_wide(t: &Telemetry) -> bool {
    t.selector
        .as_ref()
        .is_none_or(|s| s.match_labels.is_empty())
        && t.target_ref.is_none()
        && t.target_refs.is_empty()
}

fn applies_to(entry: &AccessLogging, mode: Mode) -> bool {
    match entry.r#match.as_ref().map(|m| m.mode) {
        None | Some(WorkloadMode::ClientAndServer) => true,
        Some(WorkloadMode::Client) => mode == Mode::Client,
        Some(WorkloadMode::Server) => mode == Mode::Server,
    }
}

fn names(entry: &AccessLogging) -> Vec<String> {
    entry.providers.iter().map(|p| p.name.clone()).collect()
}

/// istiod's `mergeLogs`: provider name → what applies to it.
fn merge(
    levels: &[&[AccessLogging]],
    defaults: &[String],
    mode: Mode,
) -> BTreeMap<String, ProviderSpec> {
    let mut providers = BTreeMap::new();
    if levels.is_empty() {
        for name in defaults {
            providers.insert(name.clone(), ProviderSpec::default());
        }
        return providers;
    }
    let mut in_scope: Vec<String> = defaults.to_vec();
    let mut filters: BTreeMap<String, ProviderSpec> = BTreeMap::new();
    for level in levels {
        let mut named = BTreeSet::new();
        for entry in level.iter().filter(|e| applies_to(e, mode)) {
            for name in names(entry) {
                let filter = entry.filter.as_ref().map(|f| f.expression.clone());
                filters.insert(
                    name.clone(),
                    ProviderSpec {
                        filter,
                        disabled: false,
                    },
                );
                named.insert(name);
            }
        }
        if !named.is_empty() {
            in_scope = named.into_iter().collect();
        }
    }
    let mut parent: Vec<String> = defaults.to_vec();
    for level in levels {
        for entry in level.iter() {
            let mut entry_names = names(entry);
            if entry_names.is_empty() {
                entry_names = parent.clone();
            }
            parent = entry_names.clone();
            if !applies_to(entry, mode) {
                continue;
            }
            for name in entry_names.into_iter().filter(|n| in_scope.contains(n)) {
                let spec = if entry.disabled == Some(true) {
                    ProviderSpec {
                        filter: None,
                        disabled: true,
                    }
                } else {
                    filters.get(&name).cloned().unwrap_or_default()
                };
                providers.insert(name, spec);
            }
        }
    }
    providers
}

/// The file provider called `name` (its own name and settings); the built-in `envoy`
/// unless meshConfig redefines it. `None` for unknown names and other provider kinds.
fn provider(mesh: &MeshConfig, name: &str) -> Option<(String, FileProvider)> {
    match mesh
        .extension_providers
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
    {
        Some(p) => Some((p.name.clone(), p.envoy_file_access_log.clone()?)),
        None if name.eq_ignore_ascii_case(BUILTIN_PROVIDER) => Some((
            BUILTIN_PROVIDER.to_string(),
            FileProvider {
                path: STDOUT.to_string(),
                ..Default::default()
            },
        )),
        None => None,
    }
}

/// A file provider's logger: the built-in one without format of its own takes meshConfig's
/// format; formats that do not parse fall back to Istio's defaults.
fn file_logger(mesh: &MeshConfig, name: &str, file: &FileProvider) -> AccessLog {
    let path = if file.path.is_empty() {
        STDOUT
    } else {
        &file.path
    };
    if name == BUILTIN_PROVIDER && file.log_format.is_none() && !file.omit_empty_values {
        return file_access_log(path, &super::mesh_format(mesh), false);
    }
    let format = match file.log_format.as_ref() {
        Some(f) => match (&f.text, &f.labels) {
            (Some(text), _) => LogFormat::Text(
                check_format_string(text)
                    .map(|()| text.clone())
                    .unwrap_or_default(),
            ),
            (None, Some(labels)) => LogFormat::Json(
                labels
                    .as_object()
                    .filter(|_| check_json_values(labels).is_ok())
                    .cloned()
                    .unwrap_or_default(),
            ),
            (None, None) => LogFormat::Text(String::new()),
        },
        None => LogFormat::Text(String::new()),
    };
    file_access_log(path, &format, file.omit_empty_values)
}

/// Envoy's CEL filter on `expression` (the Telemetry's `filter.expression`).
fn cel_filter(expression: &str) -> AccessLogFilter {
    let cel = ExpressionFilter {
        expression: expression.to_string(),
        ..Default::default()
    };
    AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::ExtensionFilter(ExtensionFilter {
            name: CEL_FILTER.to_string(),
            config_type: Some(FilterConfig::TypedConfig(pack_any(cel))),
        })),
    }
}

#[cfg(test)]
#[path = "telemetry_tests.rs"]
mod tests;
