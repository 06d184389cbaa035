//! `outlierDetection` → Envoy outlier detection with Istio's enforcing values: success-rate
//! ejection off, consecutive 5xx / gateway errors enforced at 100% when their count is
//! positive, and `minHealthPercent` as the cluster's healthy panic threshold.

use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection as EnvoyOutlier;
use envoy_types::pb::envoy::config::cluster::v3::cluster::CommonLbConfig;
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::UInt32Value;
use trellis_api::istio::networking::OutlierDetection;

use super::Building;
use crate::translate::pb_duration;

fn u32v(value: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value })
}

/// Enforcement follows the count: 100% when it is positive, off when it is zero.
fn enforcing(count: u32) -> Option<UInt32Value> {
    u32v(if count > 0 { 100 } else { 0 })
}

/// Applies `outlierDetection` (nothing when unset).
pub fn apply(b: &mut Building, outlier: Option<&OutlierDetection>) {
    let Some(o) = outlier else {
        return;
    };
    let mut out = EnvoyOutlier {
        enforcing_success_rate: u32v(0),
        ..Default::default()
    };
    // `consecutiveErrors` is the deprecated spelling of consecutive5xxErrors.
    let five_xx = o
        .consecutive_5xx_errors
        .or_else(|| u32::try_from(o.consecutive_errors).ok().filter(|v| *v > 0));
    if let Some(v) = five_xx {
        out.consecutive_5xx = u32v(v);
        out.enforcing_consecutive_5xx = enforcing(v);
    }
    if let Some(v) = o.consecutive_gateway_errors {
        out.consecutive_gateway_failure = u32v(v);
        out.enforcing_consecutive_gateway_failure = enforcing(v);
    }
    out.interval = o.interval.map(|d| pb_duration(d.to_std()));
    out.base_ejection_time = o.base_ejection_time.map(|d| pb_duration(d.to_std()));
    if o.max_ejection_percent > 0 {
        out.max_ejection_percent = u32v(o.max_ejection_percent.unsigned_abs());
    }
    if o.split_external_local_origin_errors {
        out.split_external_local_origin_errors = true;
        if let Some(v) = o.consecutive_local_origin_failures.filter(|v| *v > 0) {
            out.consecutive_local_origin_failure = u32v(v);
            out.enforcing_consecutive_local_origin_failure = u32v(100);
        }
        out.enforcing_local_origin_success_rate = u32v(0);
    }
    b.cluster.outlier_detection = Some(out);
    if o.min_health_percent >= 0 {
        b.cluster
            .common_lb_config
            .get_or_insert_with(CommonLbConfig::default)
            .healthy_panic_threshold = Some(Percent {
            value: f64::from(o.min_health_percent),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_enforcing_values() {
        let o = OutlierDetection {
            consecutive_5xx_errors: Some(1),
            consecutive_gateway_errors: Some(0),
            interval: Some(trellis_api::Duration::from_secs(1)),
            base_ejection_time: Some(trellis_api::Duration::from_secs(180)),
            max_ejection_percent: 100,
            ..Default::default()
        };
        let mut b = Building::new("c".into());
        apply(&mut b, Some(&o));
        let out = b.cluster.outlier_detection.unwrap();
        assert_eq!(out.consecutive_5xx, u32v(1));
        assert_eq!(out.enforcing_consecutive_5xx, u32v(100));
        assert_eq!(out.consecutive_gateway_failure, u32v(0));
        assert_eq!(out.enforcing_consecutive_gateway_failure, u32v(0));
        assert_eq!(out.enforcing_success_rate, u32v(0));
        assert_eq!(out.max_ejection_percent, u32v(100));
        assert_eq!(out.base_ejection_time.map(|d| d.seconds), Some(180));
        let panic = b.cluster.common_lb_config.unwrap().healthy_panic_threshold;
        assert_eq!(panic, Some(Percent { value: 0.0 }));
    }

    #[test]
    fn unset_means_none() {
        let mut b = Building::new("c".into());
        apply(&mut b, None);
        assert!(b.cluster.outlier_detection.is_none());
    }
}
