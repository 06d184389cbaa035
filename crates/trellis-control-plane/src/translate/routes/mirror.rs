//! Traffic mirroring: `mirror` (with `mirrorPercentage`, or the deprecated integer
//! `mirrorPercent`) and `mirrors` → Envoy `request_mirror_policies`. No percentage means
//! all requests; a percentage of 0 means no mirror at all, as in Istio.

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::route::v3::route_action::RequestMirrorPolicy;
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use envoy_types::pb::google::protobuf::BoolValue;
use trellis_api::istio::networking::{HttpRoute, Percent};

use super::{RouteContext, destinations};

pub(super) fn mirror_policies(
    ctx: &RouteContext<'_>,
    route: &HttpRoute,
) -> Vec<RequestMirrorPolicy> {
    let mut out = Vec::new();
    if let Some(dest) = &route.mirror {
        let fraction = match (&route.mirror_percentage, route.mirror_percent) {
            (Some(p), _) => (p.value > 0.0).then(|| percent(p)),
            (None, Some(p)) => (p > 0).then(|| hundredths(p)),
            (None, None) => Some(hundredths(100)),
        };
        if let Some(fraction) = fraction {
            out.push(policy(destinations::cluster_name(ctx, dest), fraction));
        }
    }
    for m in &route.mirrors {
        let Some(dest) = &m.destination else { continue };
        let fraction = match &m.percentage {
            Some(p) => (p.value > 0.0).then(|| percent(p)),
            None => Some(hundredths(100)),
        };
        if let Some(fraction) = fraction {
            out.push(policy(destinations::cluster_name(ctx, dest), fraction));
        }
    }
    out
}

fn policy(cluster: String, fraction: FractionalPercent) -> RequestMirrorPolicy {
    RequestMirrorPolicy {
        cluster,
        runtime_fraction: Some(RuntimeFractionalPercent {
            default_value: Some(fraction),
            ..Default::default()
        }),
        trace_sampled: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

/// Istio's `Percent` (a double, 0–100) as parts per million.
pub(super) fn percent(p: &Percent) -> FractionalPercent {
    let millionths = (p.value * 10_000.0).clamp(0.0, 1_000_000.0);
    FractionalPercent {
        // Truncation toward zero, as Go's uint32 conversion does; clamped above.
        numerator: millionths as u32,
        denominator: DenominatorType::Million as i32,
    }
}

/// An integer percentage (0–100).
pub(super) fn hundredths(p: u32) -> FractionalPercent {
    FractionalPercent {
        numerator: p.min(100),
        denominator: DenominatorType::Hundred as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(percent(&Percent { value: 0.1 }).numerator, 1000);
        assert_eq!(percent(&Percent { value: 100.0 }).numerator, 1_000_000);
        assert_eq!(percent(&Percent { value: 250.0 }).numerator, 1_000_000);
        assert_eq!(percent(&Percent { value: f64::NAN }).numerator, 0);
        assert_eq!(hundredths(50).denominator, DenominatorType::Hundred as i32);
    }
}
