//! Istio's resource annotations as data: each name, the maturity of the feature behind it,
//! whether it is deprecated, and the kinds of object it belongs on.
//!
//! The facts are those of Istio's annotation definitions (`istio/api`, `annotation/
//! annotations.yaml`, whose generated list is `annotation.AllResourceAnnotations()`), at
//! the API version the corpus's Istio commit builds against. An annotation without a
//! declared feature status is Alpha there, and is Alpha here. Keep the rows sorted by name.

/// The maturity of the feature an annotation controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Alpha,
    Beta,
    Stable,
}

/// The kinds of object Istio's annotation table names. `Any` means the annotation may be
/// put on any object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Any,
    AuthorizationPolicy,
    Gateway,
    GatewayClass,
    Ingress,
    Namespace,
    Pod,
    Service,
    ServiceEntry,
    WorkloadEntry,
}

impl Target {
    /// The name Istio prints for the kind (`Pod`, `Service`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Any => "Any",
            Target::AuthorizationPolicy => "AuthorizationPolicy",
            Target::Gateway => "Gateway",
            Target::GatewayClass => "GatewayClass",
            Target::Ingress => "Ingress",
            Target::Namespace => "Namespace",
            Target::Pod => "Pod",
            Target::Service => "Service",
            Target::ServiceEntry => "ServiceEntry",
            Target::WorkloadEntry => "WorkloadEntry",
        }
    }
}

/// One annotation Istio defines.
#[derive(Debug, Clone, Copy)]
pub struct Annotation {
    pub name: &'static str,
    pub status: Status,
    pub deprecated: bool,
    /// The kinds the annotation belongs on, in Istio's order.
    pub targets: &'static [Target],
}

const fn a(
    name: &'static str,
    status: Status,
    deprecated: bool,
    targets: &'static [Target],
) -> Annotation {
    Annotation {
        name,
        status,
        deprecated,
        targets,
    }
}

use Status::{Alpha, Beta, Stable};
use Target::{
    Any, AuthorizationPolicy, Gateway, GatewayClass, Ingress, Namespace, Pod, Service,
    ServiceEntry, WorkloadEntry,
};

/// Every annotation Istio defines, sorted by name.
pub const ANNOTATIONS: &[Annotation] = &[
    a(
        "alpha.istio.io/canonical-serviceaccounts",
        Alpha,
        true,
        &[Service],
    ),
    a(
        "alpha.istio.io/kubernetes-serviceaccounts",
        Alpha,
        true,
        &[Service],
    ),
    a(
        "ambient.istio.io/bypass-inbound-capture",
        Alpha,
        false,
        &[Pod],
    ),
    a("ambient.istio.io/dns-capture", Alpha, false, &[Pod]),
    a("ambient.istio.io/redirection", Beta, false, &[Pod]),
    a(
        "ambient.istio.io/waypoint-inbound-binding",
        Alpha,
        false,
        &[GatewayClass, Gateway],
    ),
    a("galley.istio.io/analyze-suppress", Alpha, false, &[Any]),
    a("gateway.istio.io/controller-version", Alpha, false, &[Any]),
    a("gateway.istio.io/name-override", Alpha, false, &[Gateway]),
    a("gateway.istio.io/service-account", Alpha, false, &[Gateway]),
    a("inject.istio.io/templates", Alpha, false, &[Pod]),
    a(
        "istio.io/autoRegistrationGroup",
        Alpha,
        false,
        &[WorkloadEntry],
    ),
    a("istio.io/connectedAt", Alpha, false, &[WorkloadEntry]),
    a("istio.io/disconnectedAt", Alpha, false, &[WorkloadEntry]),
    a("istio.io/dry-run", Alpha, false, &[AuthorizationPolicy]),
    a("istio.io/reroute-virtual-interfaces", Alpha, false, &[Pod]),
    a("istio.io/rev", Alpha, false, &[Pod]),
    a(
        "istio.io/use-waypoint-canary-weight",
        Alpha,
        false,
        &[Service, ServiceEntry, Namespace],
    ),
    a(
        "istio.io/workloadController",
        Alpha,
        false,
        &[WorkloadEntry],
    ),
    a("kubernetes.io/ingress.class", Stable, false, &[Ingress]),
    a("networking.istio.io/exportTo", Alpha, false, &[Service]),
    a("networking.istio.io/service-type", Alpha, false, &[Gateway]),
    a(
        "networking.istio.io/traffic-distribution",
        Alpha,
        false,
        &[Namespace, Service, ServiceEntry],
    ),
    a("prometheus.istio.io/merge-metrics", Alpha, false, &[Pod]),
    a("proxy.istio.io/config", Beta, false, &[Pod]),
    a("proxy.istio.io/overrides", Alpha, false, &[Pod]),
    a(
        "readiness.status.sidecar.istio.io/applicationPorts",
        Alpha,
        false,
        &[Pod],
    ),
    a(
        "readiness.status.sidecar.istio.io/failureThreshold",
        Alpha,
        false,
        &[Pod],
    ),
    a(
        "readiness.status.sidecar.istio.io/initialDelaySeconds",
        Alpha,
        false,
        &[Pod],
    ),
    a(
        "readiness.status.sidecar.istio.io/periodSeconds",
        Alpha,
        false,
        &[Pod],
    ),
    a("sidecar.istio.io/agentLogLevel", Alpha, false, &[Pod]),
    a("sidecar.istio.io/bootstrapOverride", Alpha, false, &[Pod]),
    a("sidecar.istio.io/componentLogLevel", Alpha, false, &[Pod]),
    a("sidecar.istio.io/discoveryAddress", Alpha, true, &[Pod]),
    a("sidecar.istio.io/extraStatTags", Alpha, true, &[Pod]),
    a("sidecar.istio.io/inject", Beta, true, &[Pod]),
    a("sidecar.istio.io/interceptionMode", Alpha, false, &[Pod]),
    a("sidecar.istio.io/logLevel", Alpha, false, &[Pod]),
    a("sidecar.istio.io/nativeSidecar", Alpha, false, &[Pod]),
    a("sidecar.istio.io/proxyCPU", Alpha, false, &[Pod]),
    a("sidecar.istio.io/proxyCPULimit", Alpha, false, &[Pod]),
    a("sidecar.istio.io/proxyImage", Alpha, false, &[Pod]),
    a("sidecar.istio.io/proxyImageType", Alpha, false, &[Pod]),
    a("sidecar.istio.io/proxyMemory", Alpha, false, &[Pod]),
    a("sidecar.istio.io/proxyMemoryLimit", Alpha, false, &[Pod]),
    a(
        "sidecar.istio.io/rewriteAppHTTPProbers",
        Alpha,
        false,
        &[Pod],
    ),
    a("sidecar.istio.io/statsCompression", Alpha, true, &[Pod]),
    a(
        "sidecar.istio.io/statsEvictionInterval",
        Alpha,
        false,
        &[Pod],
    ),
    a("sidecar.istio.io/statsFlushInterval", Alpha, false, &[Pod]),
    a("sidecar.istio.io/statsHistogramBins", Alpha, false, &[Pod]),
    a(
        "sidecar.istio.io/statsHistogramBuckets",
        Alpha,
        false,
        &[Pod],
    ),
    a(
        "sidecar.istio.io/statsInclusionPrefixes",
        Alpha,
        true,
        &[Pod],
    ),
    a(
        "sidecar.istio.io/statsInclusionRegexps",
        Alpha,
        true,
        &[Pod],
    ),
    a(
        "sidecar.istio.io/statsInclusionSuffixes",
        Alpha,
        true,
        &[Pod],
    ),
    a("sidecar.istio.io/status", Alpha, false, &[Pod]),
    a("sidecar.istio.io/userVolume", Alpha, false, &[Pod]),
    a("sidecar.istio.io/userVolumeMount", Alpha, false, &[Pod]),
    a("status.sidecar.istio.io/port", Alpha, false, &[Pod]),
    a(
        "topology.istio.io/controlPlaneClusters",
        Alpha,
        false,
        &[Namespace],
    ),
    a("traffic.istio.io/nodeSelector", Stable, false, &[Service]),
    a(
        "traffic.sidecar.istio.io/excludeInboundPorts",
        Alpha,
        false,
        &[Pod],
    ),
    a(
        "traffic.sidecar.istio.io/excludeInterfaces",
        Alpha,
        false,
        &[Pod],
    ),
    a(
        "traffic.sidecar.istio.io/excludeOutboundIPRanges",
        Alpha,
        false,
        &[Pod],
    ),
    a(
        "traffic.sidecar.istio.io/excludeOutboundPorts",
        Alpha,
        false,
        &[Pod],
    ),
    a(
        "traffic.sidecar.istio.io/includeInboundPorts",
        Alpha,
        false,
        &[Pod],
    ),
    a(
        "traffic.sidecar.istio.io/includeOutboundIPRanges",
        Alpha,
        false,
        &[Pod],
    ),
    a(
        "traffic.sidecar.istio.io/includeOutboundPorts",
        Alpha,
        false,
        &[Pod],
    ),
    a(
        "traffic.sidecar.istio.io/kubevirtInterfaces",
        Alpha,
        true,
        &[Pod],
    ),
];

/// The definition of an annotation, if Istio defines it.
pub fn lookup(name: &str) -> Option<&'static Annotation> {
    ANNOTATIONS
        .binary_search_by(|a| a.name.cmp(name))
        .ok()
        .map(|i| &ANNOTATIONS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_without_repeats() {
        for w in ANNOTATIONS.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
    }

    #[test]
    fn lookup_finds_known_names_only() {
        let a = lookup("sidecar.istio.io/inject").expect("defined");
        assert!(a.deprecated);
        assert_eq!(a.targets, &[Target::Pod]);
        assert!(lookup("networking.istio.io/exportThree").is_none());
    }
}
