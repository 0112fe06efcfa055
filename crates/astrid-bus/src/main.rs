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
//! The NATS verbs are built only with the `nats` cargo feature, so the
//! demo's first build compiles no NATS client. Without it their options
//! still parse (the command line is the same in both builds) and running
//! one is an error that says how to build it.
//!
//! Errors are flattened into one line on stderr and a non-zero exit; only
//! this binary does that (the library keeps typed errors). The exit codes
//! are listed once, in [`EXIT_CODES`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod demo;
#[cfg(feature = "nats")]
mod keyfile;
mod logging;
mod metrics_http;
mod monitor_cmd;
mod nats_args;
#[cfg(feature = "nats")]
mod nats_cmd;
mod output;
#[cfg(feature = "nats")]
mod payload;
mod plot;
mod report;
mod signal;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{ArgAction, Args, Parser, Subcommand};

/// The exit codes, as `--help` prints them.
const EXIT_CODES: &str = "\
Exit codes:
  0  success; also when the reader of stdout goes away (`| head -1`): the
     command stops quietly; `sub` at --timeout-ms without --count; a stop by
     Ctrl-C or SIGTERM ends a command as its normal end does
  1  `demo` or `monitor --demo` found events lost without record (or
     delivered unexpectedly): the accounting failed
  2  error: bad arguments or input, a file that cannot be read or written,
     NATS unreachable, `sub --count N` not reached, a NATS verb in a build
     without the `nats` feature

Logging: warnings (security events included) go to stderr; -v adds info,
-vv debug, -vvv trace; without -v, RUST_LOG (`warn`, `astrid_events=debug`,
`info,async_nats=off`, ...) sets the filter. The demo load's default leaves
out the security warnings of its deliberate flood (its report counts every
dropped event). NO_COLOR turns colour off.";

/// Command line of `astrid-bus`.
#[derive(Debug, Parser)]
#[command(
    name = "astrid-bus",
    version,
    long_version = long_version(),
    about = "Drive and watch an astrid-events bus",
    after_help = EXIT_CODES
)]
struct Cli {
    /// More log output on stderr: -v info, -vv debug, -vvv trace (default:
    /// warnings, or RUST_LOG when set).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// `--version`: the version and whether the NATS verbs are built in.
const fn long_version() -> &'static str {
    if cfg!(feature = "nats") {
        concat!(env!("CARGO_PKG_VERSION"), " (NATS verbs: built in)")
    } else {
        concat!(
            env!("CARGO_PKG_VERSION"),
            " (NATS verbs: not built; cargo feature `nats`)"
        )
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a realistic load on an in-process bus, then report what happened
    /// to every event.
    Demo(DemoArgs),
    /// Show a live table of the busiest topics, lag and evictions.
    Monitor(MonitorArgs),
    /// Publish one IPC event to NATS, then exit.
    Pub(nats_args::PubArgs),
    /// Print IPC events received from NATS, one JSON line each (0.8.0
    /// format). Prints `subscribed PATTERN` on stderr once subscribed.
    /// Exits 0 after --count events; at --timeout-ms exits 0 without
    /// --count, fails (exit 2) with it.
    Sub(nats_args::SubArgs),
    /// Create an ed25519 key pair: FILE (secret, for pub --sign-key) and
    /// FILE.pub (for sub --trust); prints the public key.
    Keygen(nats_args::KeygenArgs),
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
    /// Print the report as one JSON object on stdout (and nothing else); its
    /// field names are stable (README, "CLI: astrid-bus").
    #[arg(long)]
    pub(crate) json: bool,
    /// Write an SVG chart of throughput and of the flooded route's shares.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
    /// Serve every bus metric for Prometheus at http://ADDR/metrics (and
    /// `OK` at /health).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
}

/// Options of `astrid-bus monitor`.
#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    /// Monitor a demo bus running in this process.
    #[arg(long, conflicts_with = "nats")]
    pub(crate) demo: bool,
    #[command(flatten)]
    pub(crate) connect: nats_args::MonitorConnectArgs,
    /// With --nats: topic patterns to import; repeatable (default: every
    /// topic).
    #[arg(long, value_name = "P", conflicts_with = "demo")]
    pub(crate) pattern: Vec<String>,
    #[command(flatten)]
    pub(crate) import: nats_args::ImportArgs,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM;
    /// a --demo load runs at most 86400 s).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) seconds: Option<u64>,
    /// Serve every bus metric for Prometheus at http://ADDR/metrics (and
    /// `OK` at /health).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let demo_load = match &cli.command {
        Command::Demo(_) => true,
        Command::Monitor(m) => m.demo,
        _ => false,
    };
    if let Err(e) = logging::install(cli.verbose, demo_load) {
        return fail(&e);
    }
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
            Command::Pub(args) => nats_args::publish(args).await,
            Command::Sub(args) => nats_args::subscribe(args).await,
            Command::Keygen(args) => nats_args::keygen(&args),
        }
    });
    // Tasks still parked on a closed bus must not hold the process.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => code,
        Err(e) if output::is_stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints `error` as one line on stderr; exit code 2.
fn fail(error: &anyhow::Error) -> ExitCode {
    let line = format!("{error:#}").replace('\n', " ");
    output::stderr_line(format_args!("error: {line}"));
    ExitCode::from(2)
}

async fn run_demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.plot {
        plot::check_writable(path)?;
    }
    if let Some(addr) = args.metrics_addr {
        metrics_http::install(addr)?;
    }
    let config = demo::DemoConfig::from_args(&args);
    let outcome = demo::Demo::new(config).run(None, None).await?;
    let report = report::Report::from_outcome(&outcome);
    if let Some(path) = &args.plot {
        plot::write_svg(path, &outcome)
            .with_context(|| format!("cannot write plot {}", path.display()))?;
    }
    let text = if args.json {
        serde_json::to_string(&report).context("cannot serialize the JSON report")?
    } else {
        report.render()
    };
    // A reader that went away misses the report; the exit code still says
    // whether the accounting held.
    output::stdout_line_or_closed(&text)?;
    if report.lost_without_record != 0 || report.unexpected_deliveries != 0 {
        output::stderr_line(format_args!(
            "error: {} events lost without record, {} unexpected deliveries",
            report.lost_without_record, report.unexpected_deliveries
        ));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
