//! `trellis proxy-status [PROXY]`: istioctl's sync table from the control plane's
//! `/debug/syncz`, and for one proxy the comparison of the control plane's view with
//! Envoy's own config dump. Also the small HTTP client and table printer that
//! `proxy-config` shares.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use trellis_control_plane::xds::dump::ConfigDump;

/// How long a request to the control plane or Envoy may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Types in istioctl's column order.
const TYPES: [(&str, &str); 4] = [
    ("cds", "CDS"),
    ("lds", "LDS"),
    ("eds", "EDS"),
    ("rds", "RDS"),
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One proxy (node id, `name.namespace` or name): its sync status per type and, with
    /// `--from-envoy`, what differs between the control plane's view and Envoy's.
    proxy: Option<String>,
    /// The control plane's debug address.
    #[arg(long, default_value = "127.0.0.1:15014")]
    control_plane: SocketAddr,
    /// Envoy's admin address, to compare its config dump with the control plane's view.
    #[arg(long, value_name = "ADMIN_ADDR", requires = "proxy")]
    from_envoy: Option<SocketAddr>,
}

/// One connection in `/debug/syncz`.
#[derive(Debug, Clone, Deserialize)]
pub struct ProxySync {
    pub proxy: String,
    pub variant: String,
    pub generation: u64,
    pub types: BTreeMap<String, TypeStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TypeStatus {
    pub version_sent: String,
    pub version_acked: String,
    pub last_nack: Option<Nack>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Nack {
    pub version: String,
    pub detail: String,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let body = http_get(args.control_plane, "/debug/syncz")?;
    let syncs: Vec<ProxySync> =
        serde_json::from_str(&body).context("the control plane's /debug/syncz is not valid")?;
    let control_plane = args.control_plane.to_string();
    let Some(wanted) = &args.proxy else {
        print!("{}", status_table(&syncs, &control_plane));
        return Ok(ExitCode::SUCCESS);
    };
    let mine: Vec<ProxySync> = syncs
        .into_iter()
        .filter(|s| names_proxy(&s.proxy, wanted))
        .collect();
    if mine.is_empty() {
        bail!("proxy {wanted:?} is not connected to the control plane at {control_plane}");
    }
    print!("{}", status_table(&mine, &control_plane));
    if let Some(admin) = args.from_envoy {
        let ours = control_plane_dump(args.control_plane, wanted)?;
        let theirs = envoy_dump(admin, wanted)?;
        print!("\n{}", compare(&ours, &theirs));
    }
    Ok(ExitCode::SUCCESS)
}

/// True when `wanted` names the proxy with node id `id` (the id, `name.namespace`, or name).
pub fn names_proxy(id: &str, wanted: &str) -> bool {
    if id == wanted {
        return true;
    }
    let name = id.split('~').nth(2).unwrap_or_default();
    name == wanted || name.split('.').next() == Some(wanted)
}

/// istioctl's status of one type.
pub fn type_status(status: Option<&TypeStatus>) -> &'static str {
    match status {
        None => "NOT SENT",
        Some(s) if s.version_sent.is_empty() => "NOT SENT",
        Some(s) if s.version_acked.is_empty() => "STALE (Never Acknowledged)",
        Some(s) if s.version_acked == s.version_sent => "SYNCED",
        Some(_) => "STALE",
    }
}

/// The table of `trellis proxy-status`, then the last NACK of each proxy that has one.
pub fn status_table(syncs: &[ProxySync], control_plane: &str) -> String {
    let mut header = vec!["NAME"];
    header.extend(TYPES.iter().map(|(_, h)| *h));
    header.extend(["CONTROL PLANE", "XDS", "GENERATION"]);
    let mut sorted: Vec<&ProxySync> = syncs.iter().collect();
    sorted.sort_by(|a, b| a.proxy.cmp(&b.proxy));
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|s| {
            let mut row = vec![s.proxy.clone()];
            row.extend(
                TYPES
                    .iter()
                    .map(|(t, _)| type_status(s.types.get(*t)).to_string()),
            );
            row.extend([
                control_plane.to_string(),
                s.variant.clone(),
                s.generation.to_string(),
            ]);
            row
        })
        .collect();
    let mut out = table(&header, &rows);
    for s in sorted {
        for (t, header) in TYPES {
            if let Some(nack) = s.types.get(t).and_then(|x| x.last_nack.as_ref()) {
                out.push_str(&format!(
                    "{}: {header} NACK (still on version {}): {}\n",
                    s.proxy,
                    if nack.version.is_empty() {
                        "none"
                    } else {
                        &nack.version
                    },
                    nack.detail
                ));
            }
        }
    }
    out
}

/// What differs between the control plane's view and Envoy's, type by type, as istioctl
/// words it (`Clusters Match`, `Listeners Don't Match` with `-`/`+` lines: `-` only in the
/// control plane, `+` only in Envoy).
pub fn compare(ours: &ConfigDump, theirs: &ConfigDump) -> String {
    fn names<T>(items: &[T], key: impl Fn(&T) -> String) -> Vec<String> {
        let mut v: Vec<String> = items.iter().map(key).collect();
        v.sort();
        v.dedup();
        v
    }
    // Envoy's own bootstrap clusters are not the control plane's to send.
    let bootstrap = |name: &str| name == "xds-grpc" || name == "prometheus_stats";
    let envoy_clusters: Vec<_> = theirs
        .clusters
        .iter()
        .filter(|c| !bootstrap(&c.name))
        .cloned()
        .collect();
    let envoy_endpoints: Vec<_> = theirs
        .endpoints
        .iter()
        .filter(|e| !bootstrap(&e.cluster))
        .cloned()
        .collect();
    let sections = [
        (
            "Clusters",
            names(&ours.clusters, |c| c.name.clone()),
            names(&envoy_clusters, |c| c.name.clone()),
        ),
        (
            "Listeners",
            names(&ours.listeners, |l| l.name.clone()),
            names(&theirs.listeners, |l| l.name.clone()),
        ),
        (
            "Routes",
            names(&ours.routes, |r| format!("{} {}", r.name, r.virtual_host)),
            names(&theirs.routes, |r| format!("{} {}", r.name, r.virtual_host)),
        ),
        (
            "Endpoints",
            names(&ours.endpoints, |e| format!("{} {}", e.cluster, e.endpoint)),
            names(&envoy_endpoints, |e| {
                format!("{} {}", e.cluster, e.endpoint)
            }),
        ),
    ];
    let mut out = String::new();
    for (what, ours, theirs) in sections {
        let missing: Vec<&String> = ours.iter().filter(|n| !theirs.contains(n)).collect();
        let extra: Vec<&String> = theirs.iter().filter(|n| !ours.contains(n)).collect();
        if missing.is_empty() && extra.is_empty() {
            out.push_str(&format!("{what} Match\n"));
            continue;
        }
        out.push_str(&format!("{what} Don't Match\n"));
        for n in missing {
            out.push_str(&format!("-  {n}\n"));
        }
        for n in extra {
            out.push_str(&format!("+  {n}\n"));
        }
    }
    out
}

/// The control plane's summary of what it would send `proxy` now.
pub fn control_plane_dump(control_plane: SocketAddr, proxy: &str) -> anyhow::Result<ConfigDump> {
    let path = format!("/debug/config_dump?proxyID={}", query_escape(proxy));
    let body = http_get(control_plane, &path)?;
    serde_json::from_str(&body).context("the control plane's /debug/config_dump is not valid")
}

/// Envoy's own configuration, summarised the same way.
pub fn envoy_dump(admin: SocketAddr, proxy: &str) -> anyhow::Result<ConfigDump> {
    let body = http_get(admin, "/config_dump?include_eds")?;
    let value: serde_json::Value =
        serde_json::from_str(&body).context("Envoy's /config_dump is not JSON")?;
    Ok(ConfigDump::from_envoy(proxy, &value))
}

fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Columns padded to their widest cell, three spaces apart, like istioctl's tables.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count() + 3;
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// GET `path` from `address` over HTTP/1.1; the body of a 200, an error otherwise.
pub fn http_get(address: SocketAddr, path: &str) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (status, body) = runtime
        .block_on(async {
            tokio::time::timeout(TIMEOUT, fetch(address, path))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out after {TIMEOUT:?}")))
        })
        .with_context(|| format!("GET http://{address}{path}"))?;
    if status != 200 {
        bail!("GET http://{address}{path}: {status}: {}", body.trim());
    }
    Ok(body)
}

async fn fetch(address: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, address.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(json: &str) -> Vec<ProxySync> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn statuses_follow_istioctl() {
        let syncs = sync(
            r#"[{"proxy": "sidecar~127.0.0.2~productpage-v1.default~default.svc.cluster.local",
                 "variant": "sotw", "generation": 3, "types": {
                   "cds": {"version_sent": "1", "nonce_sent": "2", "version_acked": "1", "last_nack": null, "resources_sent": 5},
                   "eds": {"version_sent": "3", "nonce_sent": "4", "version_acked": "", "last_nack": null, "resources_sent": 5},
                   "lds": {"version_sent": "7", "nonce_sent": "8", "version_acked": "5",
                           "last_nack": {"version": "5", "nonce": "8", "detail": "bad listener"}, "resources_sent": 2}}}]"#,
        );
        let out = status_table(&syncs, "127.0.0.1:15014");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            format!(
                "NAME{}   CDS      LDS     EDS                          RDS        CONTROL PLANE     XDS    GENERATION",
                " ".repeat(66 - 4)
            )
        );
        assert_eq!(
            lines[1],
            "sidecar~127.0.0.2~productpage-v1.default~default.svc.cluster.local   SYNCED   STALE   STALE (Never Acknowledged)   NOT SENT   127.0.0.1:15014   sotw   3"
        );
        assert_eq!(
            lines[2],
            "sidecar~127.0.0.2~productpage-v1.default~default.svc.cluster.local: LDS NACK (still on version 5): bad listener"
        );
    }

    #[test]
    fn a_proxy_is_named_by_id_name_dot_namespace_or_name() {
        let id = "sidecar~127.0.0.2~productpage-v1.default~default.svc.cluster.local";
        assert!(names_proxy(id, id));
        assert!(names_proxy(id, "productpage-v1.default"));
        assert!(names_proxy(id, "productpage-v1"));
        assert!(!names_proxy(id, "reviews"));
    }

    #[test]
    fn comparison_lists_what_only_one_side_has() {
        use trellis_control_plane::xds::dump::ClusterInfo;
        let cluster = |name: &str| ClusterInfo {
            name: name.into(),
            kind: "EDS".into(),
            destination_rule: None,
        };
        let ours = ConfigDump {
            clusters: vec![cluster("a"), cluster("b")],
            ..Default::default()
        };
        let theirs = ConfigDump {
            clusters: vec![cluster("a"), cluster("c"), cluster("xds-grpc")],
            ..Default::default()
        };
        assert_eq!(
            compare(&ours, &theirs),
            "Clusters Don't Match\n-  b\n+  c\nListeners Match\nRoutes Match\nEndpoints Match\n"
        );
    }

    #[test]
    fn node_ids_are_escaped_in_queries() {
        assert_eq!(query_escape("sidecar~1.2.3.4~a b"), "sidecar~1.2.3.4~a%20b");
    }
}
