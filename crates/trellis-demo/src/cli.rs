//! The command line of the demo applications, one subcommand per app: the `trellis-app`
//! binary, and `trellis app` (so one binary is all a local mesh's pods need). Arguments and
//! Bookinfo's environment variables (`DETAILS_HOSTNAME`, `REVIEWS_SERVICE_PORT`,
//! `SERVICES_DOMAIN`...) are read here; everything else is the rest of this library.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use crate::bookinfo::{ProductPage, Reviews, ReviewsVersion, Services};
use crate::client::{self, ClientConfig, Target};
use crate::httpbin::Httpbin;
use crate::upstream::Upstream;
use crate::{App, bookinfo, httpbin, tcp_echo};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};

#[derive(Parser)]
#[command(name = "trellis-app", version, about = "Trellis's demo applications")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bookinfo's productpage (port 9080): /productpage, /login, /api/v1/products...
    Productpage(ProductPageArgs),
    /// Bookinfo's details (port 9080): /details/<id>.
    Details(Plain),
    /// Bookinfo's reviews (port 9080): /reviews/<id>; v2 and v3 call ratings.
    Reviews(ReviewsArgs),
    /// Bookinfo's ratings (port 9080): /ratings/<id>.
    Ratings(Plain),
    /// An httpbin-like server (port 8000): /status, /delay, /headers, /anything...
    Httpbin(Plain),
    /// Istio's tcp-echo (port 9000): answers every line with "PREFIX line".
    TcpEcho(TcpEchoArgs),
    /// Sends a fixed number of HTTP requests and reports statuses, groups, errors, latency.
    Client(ClientArgs),
    /// Sends lines to a tcp-echo server and prints the answers.
    TcpClient(TcpClientArgs),
}

#[derive(Args)]
struct Listen {
    /// Port to listen on, on all IPv4 addresses (default: the app's port).
    #[arg(long)]
    port: Option<u16>,
    /// Full address to listen on (overrides --port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

impl Listen {
    fn address(&self, default_port: u16) -> SocketAddr {
        self.listen.unwrap_or_else(|| {
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.port.unwrap_or(default_port)))
        })
    }
}

#[derive(Args)]
struct Plain {
    #[command(flatten)]
    listen: Listen,
    /// Version named in the x-trellis-app header.
    #[arg(long, default_value = "v1")]
    version: String,
}

#[derive(Args)]
struct Domain {
    /// Appended to every service host name, as Bookinfo's SERVICES_DOMAIN.
    #[arg(long, env = "SERVICES_DOMAIN")]
    services_domain: Option<String>,
}

impl Domain {
    fn upstream(&self, host: &str, port: u16) -> Upstream {
        match self.services_domain.as_deref().filter(|d| !d.is_empty()) {
            Some(domain) => Upstream::new(format!("{host}.{domain}"), port),
            None => Upstream::new(host, port),
        }
    }
}

#[derive(Args)]
struct RatingsAt {
    #[arg(long, env = "RATINGS_HOSTNAME", default_value = "ratings")]
    ratings_host: String,
    #[arg(long, env = "RATINGS_SERVICE_PORT", default_value_t = bookinfo::PORT)]
    ratings_port: u16,
}

#[derive(Args)]
struct ProductPageArgs {
    #[command(flatten)]
    listen: Listen,
    #[arg(long, default_value = "v1")]
    version: String,
    #[command(flatten)]
    domain: Domain,
    #[arg(long, env = "DETAILS_HOSTNAME", default_value = "details")]
    details_host: String,
    #[arg(long, env = "DETAILS_SERVICE_PORT", default_value_t = bookinfo::PORT)]
    details_port: u16,
    #[arg(long, env = "REVIEWS_HOSTNAME", default_value = "reviews")]
    reviews_host: String,
    #[arg(long, env = "REVIEWS_SERVICE_PORT", default_value_t = bookinfo::PORT)]
    reviews_port: u16,
    #[command(flatten)]
    ratings: RatingsAt,
    /// Deadline of each call to details, reviews and ratings.
    #[arg(long, default_value = "3s", value_parser = duration)]
    timeout: Duration,
}

#[derive(Args)]
struct ReviewsArgs {
    #[command(flatten)]
    listen: Listen,
    /// v1 (no stars), v2 (black stars), v3 (red stars).
    #[arg(long, default_value = "v1")]
    version: ReviewsVersion,
    #[command(flatten)]
    domain: Domain,
    #[command(flatten)]
    ratings: RatingsAt,
    /// Shown as `podname` (default: reviews-VERSION).
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// Shown as `clustername`.
    #[arg(long, env = "CLUSTER_NAME", default_value = "null")]
    cluster_name: String,
}

#[derive(Args)]
struct TcpEchoArgs {
    #[command(flatten)]
    listen: Listen,
    /// Written before every echoed line.
    #[arg(long, default_value = "hello")]
    prefix: String,
}

#[derive(Args)]
struct ClientArgs {
    /// http://HOST[:PORT][/PATH]
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Requests per second, e.g. 50 or 50/s (default: as fast as the workers go).
    #[arg(long, value_parser = rate)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    #[arg(long, default_value = "GET")]
    method: String,
    /// Request header NAME:VALUE (repeatable).
    #[arg(long = "header", short = 'H', value_parser = header)]
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Request body.
    #[arg(long)]
    data: Option<String>,
    /// Deadline of each request.
    #[arg(long, default_value = "5s", value_parser = duration)]
    timeout: Duration,
    /// Count responses by this header's value (e.g. x-trellis-app).
    #[arg(long, value_name = "HEADER")]
    group_by_header: Option<HeaderName>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 when any request got no response.
    #[arg(long)]
    fail_on_error: bool,
}

#[derive(Args)]
struct TcpClientArgs {
    /// HOST:PORT of the tcp-echo server.
    #[arg(long)]
    address: String,
    #[arg(long, default_value = "hello")]
    message: String,
    #[arg(long, default_value_t = 1)]
    count: u64,
    #[arg(long, default_value = "5s", value_parser = duration)]
    timeout: Duration,
}

fn duration(arg: &str) -> Result<Duration, client::ArgError> {
    client::parse_duration(arg)
}

fn header(arg: &str) -> Result<(HeaderName, HeaderValue), client::ArgError> {
    client::parse_header(arg)
}

fn rate(arg: &str) -> Result<f64, client::ArgError> {
    client::parse_rate(arg)
}

/// Runs the app named by `args` (the first item is the program name), logging to stderr
/// after `TRELLIS_LOG` (default `info`) when `init_logging`; returns the exit status.
pub fn main<I, T>(args: I, init_logging: bool) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    if init_logging {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    let cli = Cli::parse_from(args);
    let result = tokio::runtime::Runtime::new()
        .context("start the runtime")
        .and_then(|runtime| runtime.block_on(run(cli.command)));
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("trellis-app: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Productpage(args) => {
            let services = Services {
                details: args.domain.upstream(&args.details_host, args.details_port),
                reviews: args.domain.upstream(&args.reviews_host, args.reviews_port),
                ratings: args
                    .domain
                    .upstream(&args.ratings.ratings_host, args.ratings.ratings_port),
            };
            let app = App::ProductPage(ProductPage {
                version: args.version,
                services,
                timeout: args.timeout,
            });
            serve(app, args.listen.address(bookinfo::PORT)).await
        }
        Command::Details(args) => {
            serve(
                App::Details(args.version),
                args.listen.address(bookinfo::PORT),
            )
            .await
        }
        Command::Ratings(args) => {
            serve(
                App::Ratings(args.version),
                args.listen.address(bookinfo::PORT),
            )
            .await
        }
        Command::Reviews(args) => {
            let app = App::Reviews(Reviews {
                version: args.version,
                ratings: args
                    .domain
                    .upstream(&args.ratings.ratings_host, args.ratings.ratings_port),
                pod_name: args
                    .pod_name
                    .unwrap_or_else(|| format!("reviews-{}", args.version)),
                cluster_name: args.cluster_name,
            });
            serve(app, args.listen.address(bookinfo::PORT)).await
        }
        Command::Httpbin(args) => {
            let app = App::Httpbin(Httpbin {
                version: args.version,
            });
            serve(app, args.listen.address(httpbin::PORT)).await
        }
        Command::TcpEcho(args) => {
            let address = args.listen.address(tcp_echo::PORT);
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("listen on {address}"))?;
            tracing::info!(%address, "tcp-echo listening");
            tcp_echo::serve(&args.prefix, listener, shutdown_signal()).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(args) => run_client(args).await,
        Command::TcpClient(args) => {
            for _ in 0..args.count {
                let reply = tcp_echo::send(&args.address, &args.message, args.timeout)
                    .await
                    .with_context(|| format!("tcp-echo at {}", args.address))?;
                println!("{reply}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(app: App, address: SocketAddr) -> Result<ExitCode> {
    if HeaderValue::from_str(&app.label()).is_err() {
        anyhow::bail!("--version must be printable ASCII (it goes in a header)");
    }
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listen on {address}"))?;
    tracing::info!(app = app.label(), %address, "listening");
    crate::serve(app, listener, shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}

async fn run_client(args: ClientArgs) -> Result<ExitCode> {
    let method = args
        .method
        .parse()
        .with_context(|| format!("invalid method {:?}", args.method))?;
    let mut config = ClientConfig::new(Target::parse(&args.url)?, args.count);
    config.rate = args.rate;
    config.concurrency = usize::from(args.concurrency);
    config.method = method;
    config.headers = args.headers;
    config.body = args.data.map(Bytes::from).unwrap_or_default();
    config.timeout = args.timeout;
    config.group_by = args.group_by_header;
    let report = client::run(&config).await;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render());
    }
    if args.fail_on_error && report.transport_errors() > 0 {
        Ok(ExitCode::from(1))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(Cli::try_parse_from(["trellis-app", "reviews", "--version", "v9"]).is_err());
        assert!(
            Cli::try_parse_from(["trellis-app", "client", "--url", "http://x", "--rate", "0"])
                .is_err()
        );
        assert!(
            Cli::try_parse_from([
                "trellis-app",
                "client",
                "--url",
                "http://x",
                "--concurrency",
                "0"
            ])
            .is_err()
        );
        assert!(
            Cli::try_parse_from([
                "trellis-app",
                "client",
                "--url",
                "http://x",
                "-H",
                "nocolon"
            ])
            .is_err()
        );
    }
}
