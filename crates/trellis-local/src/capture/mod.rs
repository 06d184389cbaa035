//! Transparent traffic capture, as Istio's `istio-iptables` does it in REDIRECT mode: one
//! pure function from [`CaptureOptions`] to the `iptables-restore` input that installs it
//! in a pod's network namespace (and only there).
//!
//! The structure follows Istio's rule set, chain for chain: `PREROUTING` sends inbound TCP
//! to `ISTIO_INBOUND`, which returns the proxy's own ports and the excluded ones and sends
//! the rest to `ISTIO_IN_REDIRECT` (→ 15006); `OUTPUT` sends the pod's connections to
//! `ISTIO_OUTPUT`, which lets the proxy's own traffic (uid/gid 1337) and the inbound
//! passthrough source 127.0.0.6 through, hands the proxy's calls to its own pod IP back to
//! inbound, leaves loopback alone, and sends what is left to `ISTIO_REDIRECT` (→ 15001).
//!
//! DNS capture (`--redirect-dns` with `--capture-all-dns`, the pod's resolver being the
//! sidecar whatever its address): after the proxy's own traffic has returned, `ISTIO_OUTPUT`
//! jumps to `ISTIO_OUTPUT_DNS`, which redirects TCP and UDP port 53 to the DNS proxy
//! (15053); the loopback rules of the uid skip TCP port 53 so that a resolver on
//! localhost is captured too. Not generated: IPv6 rules (pods are IPv4-only), TPROXY
//! mode, and the `raw`-table conntrack zones Istio adds for UDP DNS — they keep the
//! agent's upstream queries apart from the app's, and nothing is forwarded upstream here.

mod annotations;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

pub use annotations::from_annotations;

/// The uid and gid the sidecar runs as; its own traffic is never captured.
pub const PROXY_UID: u32 = 1337;
/// Where captured outbound connections go (`virtualOutbound`).
pub const OUTBOUND_CAPTURE_PORT: u16 = 15001;
/// Where captured inbound connections go (`virtualInbound`).
pub const INBOUND_CAPTURE_PORT: u16 = 15006;
/// The sidecar's DNS proxy.
pub const DNS_CAPTURE_PORT: u16 = 15053;
/// The proxy's own ports, never captured inbound: admin, both capture listeners, merged
/// metrics, health, Prometheus.
pub const PROXY_PORTS: [u16; 6] = [15000, 15001, 15006, 15020, 15021, 15090];
/// The source address of the sidecar's inbound passthrough connections.
const INBOUND_PASSTHROUGH_SOURCE: &str = "127.0.0.6/32";

/// All of something (`*`) or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection<T> {
    All,
    Only(Vec<T>),
}

impl<T> Selection<T> {
    /// Nothing selected.
    pub fn none() -> Self {
        Selection::Only(Vec::new())
    }
}

/// An IPv4 network, `a.b.c.d/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    pub address: Ipv4Addr,
    pub prefix: u8,
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl Cidr {
    /// The `offset`-th address of the network (0 is the network address itself); `None`
    /// past its end.
    pub fn nth(&self, offset: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.prefix));
        (u64::from(offset) < size).then(|| {
            let mask = if self.prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(self.prefix))
            };
            Ipv4Addr::from((u32::from(self.address) & mask).wrapping_add(offset))
        })
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

impl TryFrom<String> for Cidr {
    type Error = CaptureError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FromStr for Cidr {
    type Err = CaptureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CaptureError::Cidr(s.to_string());
        let (address, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, p.parse::<u8>().map_err(|_| bad())?),
            None => (s, 32),
        };
        let address: Ipv4Addr = address.trim().parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Cidr { address, prefix })
    }
}

/// A capture option that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error("{0:?} is not an IPv4 address or CIDR (a.b.c.d/n)")]
    Cidr(String),
    #[error("{0:?} is not a port (1-65535)")]
    Port(String),
    #[error("unknown capture annotation {0:?}")]
    Annotation(String),
}

/// What to capture; [`Default`] is Istio's sidecar default (everything in and out, DNS
/// left alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureOptions {
    pub proxy_uid: u32,
    pub proxy_gid: u32,
    pub inbound_capture_port: u16,
    pub outbound_capture_port: u16,
    /// Inbound ports sent to the sidecar (`includeInboundPorts`).
    pub include_inbound_ports: Selection<u16>,
    /// Inbound ports left alone when all are included (`excludeInboundPorts`), on top of
    /// [`PROXY_PORTS`].
    pub exclude_inbound_ports: Vec<u16>,
    /// Destinations sent to the sidecar (`includeOutboundIPRanges`).
    pub include_outbound_ranges: Selection<Cidr>,
    /// Destinations left alone (`excludeOutboundIPRanges`).
    pub exclude_outbound_ranges: Vec<Cidr>,
    /// Destination ports sent to the sidecar whatever the address
    /// (`includeOutboundPorts`).
    pub include_outbound_ports: Vec<u16>,
    /// Destination ports left alone (`excludeOutboundPorts`).
    pub exclude_outbound_ports: Vec<u16>,
    /// Send the app's DNS (UDP and TCP 53) to the sidecar's DNS proxy on this port. Off by
    /// default, as in istio-iptables; on when the sidecar serves DNS.
    pub dns_capture_port: Option<u16>,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            proxy_uid: PROXY_UID,
            proxy_gid: PROXY_UID,
            inbound_capture_port: INBOUND_CAPTURE_PORT,
            outbound_capture_port: OUTBOUND_CAPTURE_PORT,
            include_inbound_ports: Selection::All,
            exclude_inbound_ports: Vec::new(),
            include_outbound_ranges: Selection::All,
            exclude_outbound_ranges: Vec::new(),
            include_outbound_ports: Vec::new(),
            exclude_outbound_ports: Vec::new(),
            dns_capture_port: None,
        }
    }
}

const INBOUND: &str = "ISTIO_INBOUND";
const REDIRECT: &str = "ISTIO_REDIRECT";
const IN_REDIRECT: &str = "ISTIO_IN_REDIRECT";
const OUTPUT: &str = "ISTIO_OUTPUT";
const OUTPUT_DNS: &str = "ISTIO_OUTPUT_DNS";

/// The `iptables-restore` input (one line per element) that installs `o` in the `nat`
/// table of the namespace it is restored into. Deterministic: the same options give the
/// same lines.
pub fn rules(o: &CaptureOptions) -> Vec<String> {
    let mut out: Vec<String> = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for chain in [INBOUND, REDIRECT, IN_REDIRECT, OUTPUT] {
        out.push(format!(":{chain} - [0:0]"));
    }
    if o.dns_capture_port.is_some() {
        out.push(format!(":{OUTPUT_DNS} - [0:0]"));
    }
    out.push(format!(
        "-A {REDIRECT} -p tcp -j REDIRECT --to-ports {}",
        o.outbound_capture_port
    ));
    out.push(format!(
        "-A {IN_REDIRECT} -p tcp -j REDIRECT --to-ports {}",
        o.inbound_capture_port
    ));
    out.extend(inbound(o));
    out.extend(output(o));
    out.push("COMMIT".to_string());
    out
}

/// The `iptables-restore` input that removes all capture: an empty `nat` table.
pub fn removal() -> Vec<String> {
    ["*nat", "COMMIT"].iter().map(|s| s.to_string()).collect()
}

fn inbound(o: &CaptureOptions) -> Vec<String> {
    let mut out = Vec::new();
    match &o.include_inbound_ports {
        Selection::Only(ports) if ports.is_empty() => return out,
        Selection::Only(ports) => {
            out.push(format!("-A PREROUTING -p tcp -j {INBOUND}"));
            for port in ports.iter().filter(|p| !PROXY_PORTS.contains(p)) {
                out.push(format!(
                    "-A {INBOUND} -p tcp --dport {port} -j {IN_REDIRECT}"
                ));
            }
        }
        Selection::All => {
            out.push(format!("-A PREROUTING -p tcp -j {INBOUND}"));
            let mut excluded = PROXY_PORTS.to_vec();
            excluded.extend(o.exclude_inbound_ports.iter().copied());
            dedup(&mut excluded);
            for port in excluded {
                out.push(format!("-A {INBOUND} -p tcp --dport {port} -j RETURN"));
            }
            out.push(format!("-A {INBOUND} -p tcp -j {IN_REDIRECT}"));
        }
    }
    out
}

fn output(o: &CaptureOptions) -> Vec<String> {
    let dns = o.dns_capture_port;
    let mut out = vec![match dns {
        Some(_) => format!("-A OUTPUT -j {OUTPUT}"),
        None => format!("-A OUTPUT -p tcp -j {OUTPUT}"),
    }];
    let mut excluded_ports = o.exclude_outbound_ports.clone();
    dedup(&mut excluded_ports);
    for port in excluded_ports {
        out.push(format!("-A {OUTPUT} -p tcp --dport {port} -j RETURN"));
    }
    out.push(format!(
        "-A {OUTPUT} -o lo -s {INBOUND_PASSTHROUGH_SOURCE} -j RETURN"
    ));
    // The proxy calling its own pod IP (a service it also serves) goes through inbound;
    // other loopback traffic, and everything else the proxy sends, is left alone. With DNS
    // capture, Istio leaves TCP port 53 out of the uid's redirect to inbound (not the
    // gid's) and out of both loopback returns.
    let not_dns = if dns.is_some() {
        " -p tcp ! --dport 53"
    } else {
        ""
    };
    for (kind, id) in [("uid", o.proxy_uid), ("gid", o.proxy_gid)] {
        let tcp = if kind == "uid" && dns.is_some() {
            " -p tcp ! --dport 53"
        } else {
            " -p tcp"
        };
        out.push(format!(
            "-A {OUTPUT} -o lo ! -d 127.0.0.1/32{tcp} -m owner --{kind}-owner {id} -j {IN_REDIRECT}"
        ));
        out.push(format!(
            "-A {OUTPUT} -o lo{not_dns} -m owner ! --{kind}-owner {id} -j RETURN"
        ));
        out.push(format!(
            "-A {OUTPUT} -m owner --{kind}-owner {id} -j RETURN"
        ));
    }
    if let Some(port) = dns {
        out.push(format!("-A {OUTPUT} -j {OUTPUT_DNS}"));
        out.push(format!(
            "-A {OUTPUT_DNS} -p tcp --dport 53 -j REDIRECT --to-ports {port}"
        ));
        out.push(format!(
            "-A {OUTPUT_DNS} -p udp --dport 53 -j REDIRECT --to-ports {port}"
        ));
    }
    out.push(format!("-A {OUTPUT} -d 127.0.0.1/32 -j RETURN"));
    for range in &o.exclude_outbound_ranges {
        out.push(format!("-A {OUTPUT} -d {range} -j RETURN"));
    }
    for port in &o.include_outbound_ports {
        out.push(format!("-A {OUTPUT} -p tcp --dport {port} -j {REDIRECT}"));
    }
    match &o.include_outbound_ranges {
        Selection::All => out.push(format!("-A {OUTPUT} -j {REDIRECT}")),
        Selection::Only(ranges) if ranges.is_empty() => {}
        Selection::Only(ranges) => {
            for range in ranges {
                out.push(format!("-A {OUTPUT} -d {range} -j {REDIRECT}"));
            }
            out.push(format!("-A {OUTPUT} -j RETURN"));
        }
    }
    out
}

/// Sorts and removes duplicates, so that rules come out in a stable order.
fn dedup(ports: &mut Vec<u16>) {
    ports.sort_unstable();
    ports.dedup();
}
