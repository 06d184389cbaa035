//! `trellis validate`: Istio's per-object validation, one line per finding on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use trellis_config::store::read_sources;
use trellis_config::validate::{Level, validate};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to validate (`-` for standard input).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Files or directories to validate, as plain arguments.
    #[arg(value_name = "FILE")]
    paths: Vec<PathBuf>,
    /// Namespace for objects that do not name one.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
}

/// Exit 0 when every object is valid (warnings allowed), 1 on any error.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let paths: Vec<PathBuf> = args.files.iter().chain(&args.paths).cloned().collect();
    anyhow::ensure!(
        !paths.is_empty(),
        "no files given (trellis validate -f FILE...)"
    );
    let (sources, problems) = read_sources(&paths, &args.namespace);
    let mut errors = problems.len();
    for problem in &problems {
        eprintln!("Error: {problem}");
    }
    let mut objects = 0;
    for source in &sources {
        for error in &source.decoded.errors {
            errors += 1;
            eprintln!(
                "Error: {}",
                located(
                    error.object.as_deref(),
                    error.path.as_deref(),
                    &error.message,
                    &error.origin.to_string()
                )
            );
        }
        for skipped in &source.decoded.skipped {
            tracing::info!(
                "{}: skipped {} {}: not an Istio or mesh kind",
                skipped.origin,
                skipped.kind,
                skipped.name
            );
        }
        for resource in &source.decoded.resources {
            objects += 1;
            for finding in validate(resource) {
                let label = match finding.level {
                    Level::Error => {
                        errors += 1;
                        "Error"
                    }
                    Level::Warning => "Warning",
                };
                let object = resource.display_name();
                eprintln!(
                    "{label}: {}",
                    located(
                        Some(&object),
                        Some(&finding.path),
                        &finding.message,
                        &resource.origin.to_string()
                    )
                );
            }
        }
    }
    if errors > 0 {
        eprintln!("{errors} error(s); {objects} object(s) decoded");
        return Ok(ExitCode::FAILURE);
    }
    println!("{objects} object(s) in {} file(s) are valid", sources.len());
    Ok(ExitCode::SUCCESS)
}

/// `Kind ns/name: path: message (file:line)`, leaving out what is unknown.
fn located(object: Option<&str>, path: Option<&str>, message: &str, origin: &str) -> String {
    let mut line = String::new();
    for part in [object, path]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
    {
        line.push_str(part);
        line.push_str(": ");
    }
    format!("{line}{message} ({origin})")
}
