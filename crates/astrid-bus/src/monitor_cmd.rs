//! `astrid-bus monitor`: a live table of a `BusMonitor` snapshot.
//!
//! The monitored bus is either an in-process demo bus (`--demo`) or a local
//! bus fed by a NATS bridge importing remote IPC traffic (`--nats URL`, or
//! `NATS_URL`; built with the `nats` feature).
//!
//! It runs until Ctrl-C or SIGTERM, or for `--seconds` (a `--demo` load at
//! most 86,400 s, its longest run), then prints a last table. Exit 0, or 1
//! when the demo load finds events lost without record; a reader of stdout
//! that goes away ends it quietly (exit 0).

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use astrid_events::monitor::{BusMonitor, MonitorSnapshot};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::demo::{Demo, DemoConfig};
use crate::{MonitorArgs, output};

/// The longest `--demo` load: `--seconds`' upper bound.
const DEMO_MAX_SECONDS: u64 = 86_400;

/// Import patterns that together match every topic: `*` the one-segment
/// topics, `*.*` (a trailing wildcard) every topic of two or more segments.
const EVERY_TOPIC: [&str; 2] = ["*", "*.*"];

/// Where the monitored events come from.
enum Source {
    /// A demo bus in this process.
    Demo,
    /// A local bus fed by a bridge importing `patterns` from NATS at `url`.
    Nats { url: String, patterns: Vec<String> },
}

impl Source {
    fn from_args(args: &MonitorArgs) -> anyhow::Result<Self> {
        if args.demo {
            return Ok(Source::Demo);
        }
        let from_env = || {
            std::env::var(crate::nats_args::NATS_URL_ENV)
                .ok()
                .filter(|u| !u.is_empty())
        };
        if let Some(url) = args.connect.nats.clone().or_else(from_env) {
            let patterns = if args.pattern.is_empty() {
                EVERY_TOPIC.iter().map(|p| (*p).to_owned()).collect()
            } else {
                args.pattern.clone()
            };
            return Ok(Source::Nats { url, patterns });
        }
        bail!(
            "nothing to monitor: pass --demo to monitor an in-process demo bus \
             or --nats URL (or set NATS_URL) to monitor a NATS server"
        )
    }
}

pub(crate) async fn run(args: MonitorArgs) -> anyhow::Result<ExitCode> {
    let source = Source::from_args(&args)?;
    if let Some(addr) = args.metrics_addr {
        crate::metrics_http::install(addr)?;
    }
    let outcome = match source {
        Source::Demo => monitor_demo(&args).await,
        Source::Nats { url, patterns } => monitor_nats(&args, &url, &patterns).await,
    };
    match outcome {
        Err(e) if output::is_stdout_closed(&e) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

#[cfg(not(feature = "nats"))]
async fn monitor_nats(
    _args: &MonitorArgs,
    _url: &str,
    _patterns: &[String],
) -> anyhow::Result<ExitCode> {
    crate::nats_args::not_built("monitor --nats")
}

#[cfg(feature = "nats")]
async fn monitor_nats(
    args: &MonitorArgs,
    url: &str,
    patterns: &[String],
) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;

    let bus = astrid_events::EventBus::new();
    let monitor = BusMonitor::attach(&bus);
    let bridge =
        crate::nats_cmd::start_import(&bus, url, &args.connect.auth, patterns, &args.import)
            .await?;
    // Before the readiness line: see `signal.rs`.
    let mut signals =
        crate::signal::StopSignals::install().context("cannot install the signal handlers")?;
    // Same readiness line as `sub`: traffic sent from now on is counted.
    output::stderr_line(format_args!("subscribed {}", patterns.join(" ")));
    let end = async {
        match args.seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(end);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let shown = loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut end => break Ok(()),
            () = signals.recv() => break Ok(()),
        }
        let shown = show(&monitor.snapshot(), Some(&bridge_line(&bridge.stats())));
        if shown.is_err() {
            break shown;
        }
    };
    let _ = bridge.shutdown().await;
    shown?;
    show(&monitor.snapshot(), Some(&bridge_line(&bridge.stats())))?;
    Ok(ExitCode::SUCCESS)
}

/// What the bridge let in and kept out.
#[cfg(feature = "nats")]
fn bridge_line(s: &astrid_events_nats::BridgeStats) -> String {
    format!(
        "nats: imported {}   rejected (signature) {}   rejected (malformed) {}",
        s.imported, s.rejected_signature, s.rejected_malformed
    )
}

async fn monitor_demo(args: &MonitorArgs) -> anyhow::Result<ExitCode> {
    let demo = Demo::new(DemoConfig {
        seconds: args.seconds.unwrap_or(DEMO_MAX_SECONDS),
        capsules: 50,
        principals: 200,
        progress: false,
    });
    let monitor = BusMonitor::attach(demo.bus());
    let recorder = monitor.recorder();
    let render_recorder = recorder.clone();
    let stop = demo.stop_handle();
    let render = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            if show(&render_recorder.snapshot(), None).is_err() {
                // Nobody reads the tables any more: end the load.
                stop.stop();
                break;
            }
        }
    });
    let outcome = demo.run(Some(recorder.clone()), Some(monitor)).await;
    render.abort();
    let _ = render.await;
    let outcome = outcome?;
    // A reader that went away misses the table; the exit code still says
    // whether the accounting held.
    match show(&recorder.snapshot(), None) {
        Err(e) if !output::is_stdout_closed(&e) => return Err(e),
        _ => {}
    }
    let lost: u64 = outcome.groups.iter().map(|g| g.lost).sum();
    if lost != 0 {
        output::stderr_line(format_args!("error: {lost} events lost without record"));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `s` (and `footer`, if any) as one block on stdout.
///
/// # Errors
/// [`output::StdoutClosed`] if the reader went away, else the write error.
fn show(s: &MonitorSnapshot, footer: Option<&str>) -> anyhow::Result<()> {
    let mut text = String::new();
    if std::io::stdout().is_terminal() {
        // Clear the screen and go home, so the table refreshes in place.
        text.push_str("\x1b[2J\x1b[H");
    }
    render(&mut text, s);
    if let Some(footer) = footer {
        text.push('\n');
        text.push_str(footer);
    }
    output::stdout_line(&text)
}

/// The snapshot as a status line and two tables.
fn render(out: &mut String, s: &MonitorSnapshot) {
    let _ = writeln!(
        out,
        "uptime {:.1} s   events {}   ipc {}   lag {}   evictions {}",
        s.uptime_seconds, s.events_total, s.ipc_events_total, s.lag_total, s.evictions_total
    );
    let mut topics = Table::new();
    topics.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        format!("top topics by rate (last {:.1} s window)", s.window_seconds),
        "events/s".to_owned(),
        "total (upper bound)".to_owned(),
    ]);
    for t in s.top_topics_by_rate.iter().take(15) {
        let total = s
            .top_topics
            .iter()
            .find(|x| x.topic == t.topic)
            .map_or("-".to_owned(), |x| x.count.to_string());
        topics.add_row(vec![t.topic.clone(), format!("{:.0}", t.per_second), total]);
    }
    topics.add_row(vec![
        format!("<other> (of top {} tracked)", s.top_k),
        String::new(),
        s.other_topics.to_string(),
    ]);
    let _ = writeln!(out, "{topics}");
    let mut named = Table::new();
    named.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "lag by subscriber",
        "lost",
        "evictions by capsule",
        "evicted",
    ]);
    let rows = s.lag.len().max(s.evictions.len()).min(10);
    for i in 0..rows {
        let (a, b) = s.lag.get(i).map_or((String::new(), String::new()), |n| {
            (n.name.clone(), n.count.to_string())
        });
        let (c, d) = s
            .evictions
            .get(i)
            .map_or((String::new(), String::new()), |n| {
                (n.name.clone(), n.count.to_string())
            });
        named.add_row(vec![a, b, c, d]);
    }
    let _ = write!(out, "{named}");
}
