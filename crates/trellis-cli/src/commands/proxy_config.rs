//! `trellis proxy-config {cluster|listener|route|endpoint|all} PROXY`: one proxy's
//! configuration in istioctl's tables, from the control plane's view
//! (`/debug/config_dump?proxyID=`) or from Envoy's own (`--from-envoy ADMIN_ADDR`, its
//! `/config_dump?include_eds`). Both are summarised the same way, so they can be compared.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use trellis_control_plane::xds::dump::{ConfigDump, cluster_parts};

use super::proxy_status::{control_plane_dump, envoy_dump, table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    Cluster,
    Listener,
    Route,
    Endpoint,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Short,
    Json,
    Yaml,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to show.
    #[arg(value_enum)]
    section: Section,
    /// The proxy: node id, `name.namespace` or name.
    proxy: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "short")]
    output: Output,
    /// The control plane's debug address.
    #[arg(long, default_value = "127.0.0.1:15014")]
    control_plane: SocketAddr,
    /// Read Envoy's admin `/config_dump` at this address instead of asking the control
    /// plane.
    #[arg(long, value_name = "ADMIN_ADDR")]
    from_envoy: Option<SocketAddr>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let dump = match args.from_envoy {
        Some(admin) => envoy_dump(admin, &args.proxy)?,
        None => control_plane_dump(args.control_plane, &args.proxy)?,
    };
    print!("{}", render(&dump, args.section, args.output)?);
    Ok(ExitCode::SUCCESS)
}

/// The output for one section in one format.
pub fn render(dump: &ConfigDump, section: Section, output: Output) -> anyhow::Result<String> {
    let value = match section {
        Section::All => serde_json::to_value(dump),
        Section::Cluster => serde_json::to_value(&dump.clusters),
        Section::Listener => serde_json::to_value(&dump.listeners),
        Section::Route => serde_json::to_value(&dump.routes),
        Section::Endpoint => serde_json::to_value(&dump.endpoints),
    }?;
    Ok(match output {
        Output::Json => serde_json::to_string_pretty(&value)? + "\n",
        Output::Yaml => serde_saphyr::to_string(&value).context("cannot write YAML")?,
        Output::Short => match section {
            Section::Cluster => clusters(dump),
            Section::Listener => listeners(dump),
            Section::Route => routes(dump),
            Section::Endpoint => endpoints(dump),
            Section::All => [
                clusters(dump),
                listeners(dump),
                routes(dump),
                endpoints(dump),
            ]
            .join("\n"),
        },
    })
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}

/// `SERVICE FQDN  PORT  SUBSET  DIRECTION  TYPE  DESTINATION RULE`.
pub fn clusters(dump: &ConfigDump) -> String {
    let rows: Vec<Vec<String>> = dump
        .clusters
        .iter()
        .map(|c| {
            let (fqdn, port, subset, direction) = cluster_parts(&c.name)
                .unwrap_or_else(|| (c.name.clone(), String::new(), String::new(), String::new()));
            vec![
                or_dash(&fqdn),
                or_dash(&port),
                or_dash(&subset),
                or_dash(&direction),
                c.kind.clone(),
                or_dash(c.destination_rule.as_deref().unwrap_or_default()),
            ]
        })
        .collect();
    table(
        &[
            "SERVICE FQDN",
            "PORT",
            "SUBSET",
            "DIRECTION",
            "TYPE",
            "DESTINATION RULE",
        ],
        &rows,
    )
}

/// `ADDRESSES  PORT  MATCH  DESTINATION`, one row per filter chain.
pub fn listeners(dump: &ConfigDump) -> String {
    let mut listeners: Vec<_> = dump.listeners.iter().collect();
    listeners.sort_by(|a, b| (a.port, &a.address).cmp(&(b.port, &b.address)));
    let mut rows = Vec::new();
    for l in listeners {
        for chain in &l.chains {
            rows.push(vec![
                or_dash(&l.address),
                l.port.to_string(),
                chain.matches.clone(),
                chain.destination.clone(),
            ]);
        }
    }
    table(&["ADDRESSES", "PORT", "MATCH", "DESTINATION"], &rows)
}

/// `NAME  VHOST NAME  DOMAINS  MATCH  VIRTUAL SERVICE`.
pub fn routes(dump: &ConfigDump) -> String {
    let rows: Vec<Vec<String>> = dump
        .routes
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.virtual_host.clone(),
                domains(&r.domains),
                r.matches.clone(),
                or_dash(r.virtual_service.as_deref().unwrap_or_default()),
            ]
        })
        .collect();
    table(
        &["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"],
        &rows,
    )
}

/// The shortest domain stands for the others, as in istioctl (`reviews + 4 more...`).
fn domains(domains: &[String]) -> String {
    let Some(shortest) = domains.iter().min_by_key(|d| (d.len(), d.as_str())) else {
        return "-".to_string();
    };
    match domains.len() {
        1 => shortest.clone(),
        n => format!("{shortest} + {} more...", n - 1),
    }
}

/// `ENDPOINT  STATUS  OUTLIER CHECK  CLUSTER`. Outlier ejection is not in a config dump;
/// the column says `OK` unless the endpoint is unhealthy.
pub fn endpoints(dump: &ConfigDump) -> String {
    let rows: Vec<Vec<String>> = dump
        .endpoints
        .iter()
        .map(|e| {
            vec![
                e.endpoint.clone(),
                e.status.clone(),
                if e.status == "HEALTHY" { "OK" } else { "-" }.to_string(),
                e.cluster.clone(),
            ]
        })
        .collect();
    table(&["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"], &rows)
}

#[cfg(test)]
mod tests {
    use trellis_control_plane::xds::dump::ClusterInfo;

    use super::*;

    fn dump() -> ConfigDump {
        serde_json::from_value(serde_json::json!({
            "proxy": "p",
            "clusters": [
                {"name": "BlackHoleCluster", "type": "STATIC"},
                {"name": "inbound|9080||", "type": "ORIGINAL_DST"},
                {"name": "outbound|9080|v1|reviews.default.svc.cluster.local", "type": "EDS",
                 "destination_rule": "reviews.default"}
            ],
            "listeners": [
                {"name": "127.0.0.2_9080", "address": "127.0.0.2", "port": 9080, "chains": [
                    {"match": "ALL", "destination": "Route: 9080"}]},
                {"name": "virtualOutbound", "address": "0.0.0.0", "port": 15001, "chains": [
                    {"match": "ALL", "destination": "Cluster: PassthroughCluster"}]}
            ],
            "routes": [
                {"name": "9080", "virtual_host": "reviews.default.svc.cluster.local:9080",
                 "domains": ["reviews.default.svc.cluster.local", "reviews", "reviews.default"],
                 "match": "/*", "virtual_service": "reviews.default"}
            ],
            "endpoints": [
                {"endpoint": "127.0.0.11:9080", "status": "HEALTHY",
                 "cluster": "outbound|9080|v1|reviews.default.svc.cluster.local"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn cluster_table() {
        assert_eq!(
            clusters(&dump()),
            "\
SERVICE FQDN                        PORT   SUBSET   DIRECTION   TYPE           DESTINATION RULE
BlackHoleCluster                    -      -        -           STATIC         -
-                                   9080   -        inbound     ORIGINAL_DST   -
reviews.default.svc.cluster.local   9080   v1       outbound    EDS            reviews.default
"
        );
    }

    #[test]
    fn listener_table() {
        assert_eq!(
            listeners(&dump()),
            "\
ADDRESSES   PORT    MATCH   DESTINATION
127.0.0.2   9080    ALL     Route: 9080
0.0.0.0     15001   ALL     Cluster: PassthroughCluster
"
        );
    }

    #[test]
    fn route_table() {
        assert_eq!(
            routes(&dump()),
            "\
NAME   VHOST NAME                               DOMAINS               MATCH   VIRTUAL SERVICE
9080   reviews.default.svc.cluster.local:9080   reviews + 2 more...   /*      reviews.default
"
        );
    }

    #[test]
    fn endpoint_table() {
        assert_eq!(
            endpoints(&dump()),
            "\
ENDPOINT          STATUS    OUTLIER CHECK   CLUSTER
127.0.0.11:9080   HEALTHY   OK              outbound|9080|v1|reviews.default.svc.cluster.local
"
        );
    }

    #[test]
    fn json_and_yaml_carry_the_summary() {
        let d = dump();
        let json = render(&d, Section::Cluster, Output::Json).unwrap();
        let back: Vec<ClusterInfo> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d.clusters);
        let yaml = render(&d, Section::Endpoint, Output::Yaml).unwrap();
        assert!(yaml.contains("endpoint: 127.0.0.11:9080"), "{yaml}");
        let all = render(&d, Section::All, Output::Short).unwrap();
        assert!(all.contains("SERVICE FQDN") && all.contains("ENDPOINT"));
    }
}
