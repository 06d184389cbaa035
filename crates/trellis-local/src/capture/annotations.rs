//! Istio's pod annotations that tune capture (`traffic.sidecar.istio.io/...`), read into
//! [`CaptureOptions`] with Istio's meanings: `*` is everything, an empty value nothing,
//! otherwise a comma-separated list.

use std::collections::BTreeMap;

use super::{CaptureError, CaptureOptions, Cidr, Selection};

const PREFIX: &str = "traffic.sidecar.istio.io/";

/// `base` changed by the capture annotations in `annotations`; other annotations are
/// ignored, an unknown `traffic.sidecar.istio.io/` key is an error (a typo would
/// otherwise silently capture what the user meant to exclude).
pub fn from_annotations(
    base: CaptureOptions,
    annotations: &BTreeMap<String, String>,
) -> Result<CaptureOptions, CaptureError> {
    let mut o = base;
    for (key, value) in annotations {
        let Some(name) = key.strip_prefix(PREFIX) else {
            continue;
        };
        match name {
            "includeInboundPorts" => o.include_inbound_ports = selection(value, port)?,
            "excludeInboundPorts" => o.exclude_inbound_ports = list(value, port)?,
            "includeOutboundIPRanges" => o.include_outbound_ranges = selection(value, cidr)?,
            "excludeOutboundIPRanges" => o.exclude_outbound_ranges = list(value, cidr)?,
            "includeOutboundPorts" => o.include_outbound_ports = list(value, port)?,
            "excludeOutboundPorts" => o.exclude_outbound_ports = list(value, port)?,
            _ => return Err(CaptureError::Annotation(key.clone())),
        }
    }
    Ok(o)
}

fn selection<T>(
    value: &str,
    item: fn(&str) -> Result<T, CaptureError>,
) -> Result<Selection<T>, CaptureError> {
    if value.trim() == "*" {
        return Ok(Selection::All);
    }
    list(value, item).map(Selection::Only)
}

fn list<T>(value: &str, item: fn(&str) -> Result<T, CaptureError>) -> Result<Vec<T>, CaptureError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(item)
        .collect()
}

fn port(s: &str) -> Result<u16, CaptureError> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| CaptureError::Port(s.to_string()))
}

fn cidr(s: &str) -> Result<Cidr, CaptureError> {
    s.parse()
}
