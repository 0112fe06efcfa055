//! `astrid-bus`: drives and watches an `astrid-events` bus from the command
//! line.
//!
//! - `astrid-bus demo`: one in-process bus under a realistic load (thousands
//!   of routed subscriptions, an LLM token stream with backpressure, tool
//!   calls, scoped audit feeds, lifecycle events, a late joiner and a runaway
//!   principal), then a report that accounts for every event.
//! - `astrid-bus monitor --demo`: the same load, watched live through
//!   `BusMonitor`; `monitor --nats URL`: the IPC traffic of a NATS server,
//!   imported through the `astrid-events-nats` bridge, watched the same way.
//! - `astrid-bus pub --nats URL TOPIC JSON`: publishes one IPC event to NATS;
//!   `astrid-bus sub --nats URL PATTERN`: prints the IPC events received
//!   from NATS as JSON lines; `astrid-bus keygen FILE`: an ed25519 key pair
//!   for signing (`pub --sign-key`) and trusting (`sub --trust`). See
//!   `nats_cmd` for readiness, exit codes and the signature policy.
//!
//! Errors are flattened into one line on stderr and a non-zero exit; only
//! this binary does that (the library keeps typed errors).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod demo;
mod keyfile;
mod monitor_cmd;
mod nats_cmd;
mod plot;
mod report;
mod signal;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

/// Command line of `astrid-bus`.
#[derive(Debug, Parser)]
#[command(
    name = "astrid-bus",
    version,
    about = "Drive and watch an astrid-events bus"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a realistic load on an in-process bus, then report what happened
    /// to every event.
    Demo(DemoArgs),
    /// Show a live table of the busiest topics, lag and evictions.
    Monitor(MonitorArgs),
    /// Publish one IPC event to NATS, then exit.
    Pub(nats_cmd::PubArgs),
    /// Print IPC events received from NATS, one JSON line each (0.8.0
    /// format). Prints `subscribed PATTERN` on stderr once subscribed.
    /// Exits 0 after --count events; at --timeout-ms exits 0 without
    /// --count, fails (exit 2) with it.
    Sub(nats_cmd::SubArgs),
    /// Create an ed25519 key pair: FILE (secret, for pub --sign-key) and
    /// FILE.pub (for sub --trust); prints the public key.
    Keygen(nats_cmd::KeygenArgs),
}

/// Options of `astrid-bus demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How long to publish, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) seconds: u64,
    /// Number of capsules (each gets dozens of routed subscriptions).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=2000))]
    pub(crate) capsules: u64,
    /// Number of principals (half users `user-<n>`, half agents `agent.<n>`).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) principals: u64,
    /// Print the report as one JSON object on stdout (and nothing else).
    #[arg(long)]
    pub(crate) json: bool,
    /// Write an SVG chart of throughput and of the flooded route's shares.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
    /// Serve every bus metric for Prometheus at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
}

/// Options of `astrid-bus monitor`.
#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    /// Monitor a demo bus running in this process.
    #[arg(long, conflicts_with = "nats")]
    pub(crate) demo: bool,
    /// Monitor the IPC traffic of this NATS server (see --pattern).
    #[arg(long, value_name = "URL")]
    pub(crate) nats: Option<String>,
    /// With --nats: topic patterns to import; repeatable (default: every
    /// topic).
    #[arg(long, value_name = "P", requires = "nats")]
    pub(crate) pattern: Vec<String>,
    #[command(flatten)]
    pub(crate) import: nats_cmd::ImportArgs,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) seconds: u64,
    /// Serve every bus metric for Prometheus at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::Error::new(e).context("cannot start the tokio runtime")),
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => run_demo(args).await,
            Command::Monitor(args) => monitor_cmd::run(args).await,
            Command::Pub(args) => nats_cmd::publish(args).await,
            Command::Sub(args) => nats_cmd::subscribe(args).await,
            Command::Keygen(args) => nats_cmd::keygen(&args),
        }
    });
    // Tasks still parked on a closed bus must not hold the process.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// Prints `error` as one line on stderr.
fn fail(error: &anyhow::Error) -> ExitCode {
    let line = format!("{error:#}").replace('\n', " ");
    let _ = writeln!(std::io::stderr(), "error: {line}");
    ExitCode::from(2)
}

/// Installs the Prometheus exporter on `addr` (must run inside the runtime).
pub(crate) fn install_metrics(addr: SocketAddr) -> anyhow::Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .with_context(|| format!("cannot serve metrics on {addr}"))
}

async fn run_demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.plot {
        plot::check_writable(path)?;
    }
    if let Some(addr) = args.metrics_addr {
        install_metrics(addr)?;
    }
    let config = demo::DemoConfig::from_args(&args);
    let outcome = demo::Demo::new(config).run(None, None).await?;
    let report = report::Report::from_outcome(&outcome);
    if let Some(path) = &args.plot {
        plot::write_svg(path, &outcome)
            .with_context(|| format!("cannot write plot {}", path.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut stdout, &report).context("cannot write the JSON report")?;
        writeln!(stdout).context("cannot write the JSON report")?;
    } else {
        writeln!(stdout, "{}", report.render()).context("cannot write the report")?;
    }
    if report.lost_without_record != 0 || report.unexpected_deliveries != 0 {
        let _ = writeln!(
            std::io::stderr(),
            "error: {} events lost without record, {} unexpected deliveries",
            report.lost_without_record,
            report.unexpected_deliveries
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
