//! Golden files of the capture rules for several option sets
//! (`TRELLIS_UPDATE_GOLDEN=1` rewrites them; review the diff), and the annotations.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;

fn golden(name: &str, options: &CaptureOptions) {
    let text = rules(options).join("\n") + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/capture/golden")
        .join(format!("{name}.rules"));
    if std::env::var_os("TRELLIS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (TRELLIS_UPDATE_GOLDEN=1 writes it)",
            path.display()
        )
    });
    assert_eq!(text, want, "{name}: rules differ from {}", path.display());
}

fn annotated(pairs: &[(&str, &str)]) -> CaptureOptions {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (format!("traffic.sidecar.istio.io/{k}"), v.to_string()))
        .collect();
    from_annotations(CaptureOptions::default(), &map).unwrap()
}

#[test]
fn default_captures_everything_in_and_out() {
    golden("default", &CaptureOptions::default());
}

#[test]
fn inbound_ports_listed() {
    golden(
        "inbound-ports-include",
        &annotated(&[("includeInboundPorts", "9080,15000,8080")]),
    );
}

#[test]
fn no_inbound_capture() {
    golden("inbound-none", &annotated(&[("includeInboundPorts", "")]));
}

#[test]
fn excluded_ports_and_ranges() {
    golden(
        "exclude",
        &annotated(&[
            ("excludeInboundPorts", "9090,22"),
            ("excludeOutboundPorts", "9090,3306,9090"),
            ("excludeOutboundIPRanges", "10.0.0.0/8,192.168.1.1"),
        ]),
    );
}

#[test]
fn only_listed_ranges_and_ports_outbound() {
    golden(
        "outbound-ranges-include",
        &annotated(&[
            ("includeOutboundIPRanges", "240.240.0.0/16"),
            ("includeOutboundPorts", "5432"),
        ]),
    );
}

#[test]
fn dns_capture() {
    golden(
        "dns",
        &CaptureOptions {
            dns_capture_port: Some(DNS_CAPTURE_PORT),
            ..CaptureOptions::default()
        },
    );
}

#[test]
fn dns_goes_to_the_dns_proxy_after_the_proxys_own_traffic_returned() {
    let lines = rules(&CaptureOptions {
        dns_capture_port: Some(DNS_CAPTURE_PORT),
        ..CaptureOptions::default()
    });
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l == needle)
            .unwrap_or_else(|| panic!("missing {needle}"))
    };
    // Every protocol enters ISTIO_OUTPUT (UDP too), the proxy's own DNS leaves it first.
    let all = position("-A OUTPUT -j ISTIO_OUTPUT");
    let gid_return = position("-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN");
    let jump = position("-A ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS");
    let redirect = position("-A ISTIO_OUTPUT -j ISTIO_REDIRECT");
    assert!(all < gid_return && gid_return < jump && jump < redirect);
    for proto in ["tcp", "udp"] {
        position(&format!(
            "-A ISTIO_OUTPUT_DNS -p {proto} --dport 53 -j REDIRECT --to-ports 15053"
        ));
    }
    // Without DNS capture, no trace of it.
    let plain = rules(&CaptureOptions::default()).join("\n");
    assert!(!plain.contains("53"), "{plain}");
}

#[test]
fn proxy_traffic_and_loopback_are_never_redirected() {
    let lines = rules(&CaptureOptions::default());
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l == needle)
            .unwrap_or_else(|| panic!("missing {needle}"))
    };
    let uid_return = position("-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN");
    let redirect = position("-A ISTIO_OUTPUT -j ISTIO_REDIRECT");
    let passthrough = position("-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN");
    assert!(passthrough < uid_return && uid_return < redirect);
    for port in PROXY_PORTS {
        position(&format!("-A ISTIO_INBOUND -p tcp --dport {port} -j RETURN"));
    }
    assert_eq!(lines.last().map(String::as_str), Some("COMMIT"));
}

#[test]
fn bad_annotations_are_errors() {
    let bad = |k: &str, v: &str| {
        let map = BTreeMap::from([(format!("traffic.sidecar.istio.io/{k}"), v.to_string())]);
        from_annotations(CaptureOptions::default(), &map).unwrap_err()
    };
    assert_eq!(
        bad("excludeOutboundPorts", "80,http"),
        CaptureError::Port("http".into())
    );
    assert_eq!(
        bad("includeOutboundIPRanges", "10.0.0.0/33"),
        CaptureError::Cidr("10.0.0.0/33".into())
    );
    assert!(matches!(
        bad("excludeOutbondPorts", "80"),
        CaptureError::Annotation(_)
    ));
    let other = BTreeMap::from([("sidecar.istio.io/inject".to_string(), "true".to_string())]);
    assert_eq!(
        from_annotations(CaptureOptions::default(), &other).unwrap(),
        CaptureOptions::default()
    );
}
