//! `trellis analyze`: Istio's analyzers over files and directories, in istioctl's formats
//! and with its exit code (79 when an Error-level message is found).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use trellis_api::decode_mesh_config;
use trellis_api::istio::mesh::MeshConfig;
use trellis_config::analyze::{Input, Level, Message, analyze_input, by_default};
use trellis_config::store::read_sources;

/// istioctl's exit code when analysis finds errors.
const EXIT_ANALYZE_ERRORS: u8 = 79;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
enum Threshold {
    Error,
    Warning,
    Info,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to analyze together.
    #[arg(value_name = "PATH", required = true)]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "text")]
    output: Format,
    /// Namespace for objects that do not name one.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// A MeshConfig file (the `mesh` key of Istio's ConfigMap).
    #[arg(
        long = "meshConfigFile",
        alias = "mesh-config-file",
        value_name = "FILE"
    )]
    mesh_config_file: Option<PathBuf>,
    /// The lowest level that is printed.
    #[arg(long = "output-threshold", value_enum, default_value = "info")]
    output_threshold: Threshold,
    /// The lowest level that makes the command fail.
    #[arg(long = "failure-threshold", value_enum, default_value = "error")]
    failure_threshold: Threshold,
}

#[derive(Serialize)]
struct Printed<'a> {
    code: &'a str,
    level: &'a str,
    origin: &'a str,
    message: &'a str,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mesh = read_mesh_config(args.mesh_config_file.as_ref())?;
    let (sources, problems) = read_sources(&args.paths, &args.namespace);
    for problem in &problems {
        eprintln!("Error: {problem}");
    }
    let resources: Vec<_> = sources
        .iter()
        .flat_map(|s| s.decoded.resources.iter().cloned())
        .collect();
    // Objects that do not decode are reported as IST0106, as istioctl does.
    let decode_errors: Vec<_> = sources
        .iter()
        .flat_map(|s| s.decoded.errors.iter().cloned())
        .collect();
    let input = Input {
        resources: &resources,
        mesh: &mesh,
        decode_errors: &decode_errors,
    };
    let mut messages = analyze_input(&input, by_default);
    messages.sort_by(|a, b| (a.level, &a.origin, a.code).cmp(&(b.level, &b.origin, b.code)));
    let shown: Vec<&Message> = messages
        .iter()
        .filter(|m| threshold(m.level) <= args.output_threshold)
        .collect();
    print(&shown, args.output, &args.namespace)?;
    let failed = messages
        .iter()
        .any(|m| threshold(m.level) <= args.failure_threshold)
        || !problems.is_empty();
    Ok(if failed {
        ExitCode::from(EXIT_ANALYZE_ERRORS)
    } else {
        ExitCode::SUCCESS
    })
}

fn read_mesh_config(path: Option<&PathBuf>) -> anyhow::Result<MeshConfig> {
    let Some(path) = path else {
        return Ok(MeshConfig::default());
    };
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(decode_mesh_config(&path.display().to_string(), &bytes)?)
}

fn threshold(level: Level) -> Threshold {
    match level {
        Level::Error => Threshold::Error,
        Level::Warning => Threshold::Warning,
        Level::Info => Threshold::Info,
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "Error",
        Level::Warning => "Warning",
        Level::Info => "Info",
    }
}

fn print(messages: &[&Message], format: Format, namespace: &str) -> anyhow::Result<()> {
    let printed: Vec<Printed> = messages
        .iter()
        .map(|m| Printed {
            code: m.code,
            level: level_name(m.level),
            origin: &m.origin,
            message: &m.message,
        })
        .collect();
    match format {
        Format::Text if printed.is_empty() => {
            eprintln!("\u{2714} No validation issues found when analyzing namespace: {namespace}.");
        }
        Format::Text => {
            for m in &printed {
                println!("{} [{}] ({}) {}", m.level, m.code, m.origin, m.message);
            }
        }
        Format::Json => println!("{}", serde_json::to_string_pretty(&printed)?),
        Format::Yaml => print!("{}", serde_saphyr::to_string(&printed)?),
    }
    Ok(())
}
