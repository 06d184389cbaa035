//! Checks of the values of the injection annotations whose syntax Istio's injector checks
//! (ports, CIDR lists, interface names, integers, booleans, resource quantities, proxy
//! config). An annotation not listed here accepts any value. Error texts follow Go's
//! (`strconv.ParseUint: parsing "bar": invalid syntax`), since the analyzer prints them.

use trellis_api::istio::mesh::ProxyConfig;

use crate::validate::common::{is_cidr, parse_go_bool};

/// The problem with `value` for annotation `name`, if the injector would refuse it.
pub fn check(name: &str, value: &str) -> Result<(), String> {
    match name {
        "sidecar.istio.io/interceptionMode" => interception_mode(value),
        "status.sidecar.istio.io/port" => port(value)
            .map(|_| ())
            .map_err(|e| format!("excludeInboundPorts invalid: {e}")),
        "readiness.status.sidecar.istio.io/initialDelaySeconds"
        | "readiness.status.sidecar.istio.io/periodSeconds"
        | "readiness.status.sidecar.istio.io/failureThreshold" => uint32(value),
        "traffic.sidecar.istio.io/includeOutboundIPRanges" if value == "*" => Ok(()),
        "traffic.sidecar.istio.io/includeOutboundIPRanges" => {
            cidr_list(value).map_err(|e| format!("includeIPRanges invalid: {e}"))
        }
        "traffic.sidecar.istio.io/excludeOutboundIPRanges" => {
            cidr_list(value).map_err(|e| format!("excludeIPRanges invalid: {e}"))
        }
        "traffic.sidecar.istio.io/includeInboundPorts" if value == "*" => Ok(()),
        "traffic.sidecar.istio.io/includeInboundPorts" => port_list("includeInboundPorts", value),
        "traffic.sidecar.istio.io/excludeInboundPorts" => port_list("excludeInboundPorts", value),
        "traffic.sidecar.istio.io/excludeOutboundPorts" => port_list("excludeOutboundPorts", value),
        "traffic.sidecar.istio.io/excludeInterfaces"
        | "traffic.sidecar.istio.io/kubevirtInterfaces"
        | "istio.io/reroute-virtual-interfaces" => interface_names(value),
        "prometheus.istio.io/merge-metrics" => match parse_go_bool(value) {
            Some(_) => Ok(()),
            None => Err(format!(
                "strconv.ParseBool: parsing {value:?}: invalid syntax"
            )),
        },
        "proxy.istio.io/config" => proxy_config(value),
        "sidecar.istio.io/proxyCPU"
        | "sidecar.istio.io/proxyMemory"
        | "sidecar.istio.io/proxyCPULimit"
        | "sidecar.istio.io/proxyMemoryLimit" => quantity(value),
        _ => Ok(()),
    }
}

fn interception_mode(mode: &str) -> Result<(), String> {
    match mode {
        "REDIRECT" | "TPROXY" | "NONE" => Ok(()),
        _ => Err(format!(
            "interceptionMode invalid, use REDIRECT,TPROXY,NONE: {mode}"
        )),
    }
}

/// Go's `strconv.ParseUint(value, 10, bits)` error text.
fn parse_uint(value: &str, max: u64) -> Result<u64, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {value:?}: invalid syntax"
        ));
    }
    match value.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "strconv.ParseUint: parsing {value:?}: value out of range"
        )),
    }
}

fn uint32(value: &str) -> Result<(), String> {
    parse_uint(value, u64::from(u32::MAX)).map(|_| ())
}

fn port(value: &str) -> Result<u64, String> {
    parse_uint(value.trim(), u64::from(u16::MAX))
        .map_err(|e| format!("failed parsing port '{value}': {e}"))
}

fn port_list(parameter: &str, ports: &str) -> Result<(), String> {
    let ports = ports.trim();
    if ports.is_empty() {
        return Ok(());
    }
    for p in ports.split(',') {
        port(p).map_err(|e| format!("{parameter} invalid: failed parsing port '{p}': {e}"))?;
    }
    Ok(())
}

fn cidr_list(cidrs: &str) -> Result<(), String> {
    if cidrs.is_empty() {
        return Ok(());
    }
    for cidr in cidrs.split(',') {
        if !is_cidr(cidr) {
            return Err(format!(
                "failed parsing cidr '{cidr}': netip.ParsePrefix({cidr:?}): invalid prefix"
            ));
        }
    }
    Ok(())
}

fn interface_names(interfaces: &str) -> Result<(), String> {
    if interfaces.is_empty() {
        return Ok(());
    }
    for iface in interfaces.split(',').map(str::trim) {
        if iface.is_empty() {
            return Err("empty interface name".to_string());
        }
        if iface.len() > 15 {
            return Err(format!("interface name {iface:?} too long (max 15 chars)"));
        }
        let mut chars = iface.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !first_ok || !rest_ok {
            return Err(format!(
                "interface name {iface:?} contains invalid characters"
            ));
        }
    }
    Ok(())
}

/// A Kubernetes resource quantity (`100m`, `1Gi`, `1.5`, `2e3`).
fn quantity(value: &str) -> Result<(), String> {
    const SHAPE: &str = "quantities must match the regular expression \
                         '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
    if value.chars().any(char::is_control) {
        return Err("value contains control characters".to_string());
    }
    let unsigned = value.strip_prefix(['+', '-']).unwrap_or(value);
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let digits_ok = {
        let mut parts = number.splitn(2, '.');
        let whole = parts.next().unwrap_or_default();
        let frac = parts.next();
        !(whole.is_empty() && frac.is_none_or(str::is_empty))
            && frac.is_none_or(|f| !f.contains('.'))
    };
    if !digits_ok {
        return Err(SHAPE.to_string());
    }
    let suffix_ok = match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T"
        | "P" | "E" => true,
        s => s
            .strip_prefix(['e', 'E'])
            .map(|exp| exp.strip_prefix(['+', '-']).unwrap_or(exp))
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())),
    };
    if suffix_ok {
        Ok(())
    } else {
        Err("unable to parse quantity's suffix".to_string())
    }
}

/// The annotation holds ProxyConfig fields in YAML (or JSON), laid over the defaults.
fn proxy_config(value: &str) -> Result<(), String> {
    let tree: serde_json::Value = serde_saphyr::from_str(value)
        .map_err(|e| format!("failed to convert to apply proxy config: {e}"))?;
    let tree = if tree.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        tree
    };
    let config: ProxyConfig = serde_json::from_value(tree)
        .map_err(|e| format!("failed to convert to apply proxy config: {e}"))?;
    let config = crate::validate::proxy_config_with_defaults(config);
    let findings = crate::validate::validate_proxy_config(&config);
    match findings
        .iter()
        .find(|f| f.level == crate::validate::Level::Error)
    {
        Some(f) => Err(f.message.clone()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_ports() {
        assert!(check("readiness.status.sidecar.istio.io/periodSeconds", "10").is_ok());
        assert_eq!(
            check(
                "readiness.status.sidecar.istio.io/initialDelaySeconds",
                "bar"
            ),
            Err(r#"strconv.ParseUint: parsing "bar": invalid syntax"#.to_string())
        );
        assert!(check("traffic.sidecar.istio.io/excludeInboundPorts", "15020, 80").is_ok());
        assert!(check("traffic.sidecar.istio.io/excludeInboundPorts", "70000").is_err());
        assert!(check("traffic.sidecar.istio.io/includeInboundPorts", "*").is_ok());
    }

    #[test]
    fn ranges_interfaces_quantities() {
        assert!(check("traffic.sidecar.istio.io/includeOutboundIPRanges", "*").is_ok());
        assert!(
            check(
                "traffic.sidecar.istio.io/excludeOutboundIPRanges",
                "10.0.0.0/8"
            )
            .is_ok()
        );
        assert!(
            check(
                "traffic.sidecar.istio.io/excludeOutboundIPRanges",
                "10.0.0.0"
            )
            .is_err()
        );
        assert!(check("traffic.sidecar.istio.io/excludeInterfaces", "eth0,net1").is_ok());
        assert!(check("traffic.sidecar.istio.io/excludeInterfaces", "0eth").is_err());
        for ok in ["100m", "1Gi", "1.5", "2e3", "+1"] {
            assert!(quantity(ok).is_ok(), "{ok}");
        }
        for bad in ["", "abc", "1x", "1..2", "."] {
            assert!(quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxy_config_annotation() {
        assert!(check("proxy.istio.io/config", "{}").is_ok());
        assert!(check("proxy.istio.io/config", "concurrency: 2").is_ok());
        assert!(check("proxy.istio.io/config", "nosuchfield: 2").is_err());
    }
}
