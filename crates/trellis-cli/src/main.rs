//! `trellis`: the command line of the Trellis service mesh. It parses arguments and calls
//! the libraries; what it prints and its exit codes are its only logic.

mod commands;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Trellis: a service mesh that speaks Istio's configuration API.
#[derive(Debug, Parser)]
#[command(name = "trellis", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate Istio configuration files object by object, by Istio's rules.
    Validate(commands::validate::Args),
    /// Analyze configuration files and directories for cross-object problems (Istio's
    /// analyzers and message codes).
    Analyze(commands::analyze::Args),
    /// Run the control plane: watch a config directory and serve Envoy xDS (ADS).
    ControlPlane(commands::control_plane::Args),
    /// Show which proxies are connected and whether each is in sync with the control
    /// plane (istioctl's proxy-status).
    ProxyStatus(commands::proxy_status::Args),
    /// Show a proxy's clusters, listeners, routes or endpoints, from the control plane or
    /// from Envoy's admin (istioctl's proxy-config).
    ProxyConfig(commands::proxy_config::Args),
    /// Print proxy bootstrap configuration (`trellis bootstrap envoy ...`).
    #[command(subcommand)]
    Bootstrap(commands::bootstrap::Command),
    /// Run the Trellis proxy: join the control plane over ADS and serve its listeners.
    Proxy(commands::proxy::Args),
    /// Run Envoy as a mesh sidecar with its workload certificate (Istio's pilot-agent):
    /// get the certificate from the CA, serve it over SDS, run Envoy.
    Agent(commands::agent::Args),
    /// Print a bootstrap token for a workload to get its first certificate with.
    Token(commands::token::Args),
    /// Manage the control plane's CA roots (rotation).
    #[command(subcommand)]
    Ca(commands::ca::Command),
    /// Start the local mesh: the pods' bridge and a control plane watching a directory.
    Up(commands::up::Args),
    /// Stop and remove everything the local mesh started (pods, control plane, bridge).
    Down(commands::down::Args),
    /// Run a workload in its own pod with a sidecar and transparent traffic capture.
    Run(commands::run::Args),
    /// Validate configuration files and add them to the local control plane's directory.
    Apply(commands::apply::Args),
    /// Remove configuration files from the local control plane's directory.
    Delete(commands::apply::Args),
    /// Run the local Bookinfo mesh, mutual TLS between its sidecars, with live traffic
    /// (`--check`: Istio's routing, fault injection and mTLS migration tasks as a scripted
    /// tour).
    Demo(commands::demo::Args),
    /// The demo applications (`trellis-app`), so one binary is all a pod needs.
    #[command(hide = true, disable_help_flag = true)]
    App {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Print a shell completion script.
    Completion {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let log_level = commands::log_level::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => commands::validate::run(&args),
        Command::Analyze(args) => commands::analyze::run(&args),
        Command::ControlPlane(args) => commands::control_plane::run(&args),
        Command::ProxyStatus(args) => commands::proxy_status::run(&args),
        Command::ProxyConfig(args) => commands::proxy_config::run(&args),
        Command::Bootstrap(command) => commands::bootstrap::run(&command),
        Command::Proxy(args) => commands::proxy::run(&args, log_level),
        Command::Agent(args) => commands::agent::run(&args),
        Command::Token(args) => commands::token::run(&args),
        Command::Ca(command) => commands::ca::run(&command),
        Command::Up(args) => commands::up::run(&args),
        Command::Down(args) => commands::down::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Apply(args) => commands::apply::apply(&args),
        Command::Delete(args) => commands::apply::delete(&args),
        Command::Demo(args) => commands::demo::run(&args),
        Command::App { args } => Ok(trellis_demo::cli::main(
            std::iter::once("trellis app".into()).chain(args),
            false,
        )),
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "trellis",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|error| {
        eprintln!("Error: {error:#}");
        ExitCode::FAILURE
    })
}
