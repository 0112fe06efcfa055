//! `astrid-bus monitor`: a live table of a `BusMonitor` snapshot.
//!
//! The monitored bus is either an in-process demo bus (`--demo`) or a local
//! bus fed by a NATS bridge importing remote IPC traffic (`--nats URL`).

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use astrid_events::EventBus;
use astrid_events::monitor::{BusMonitor, MonitorSnapshot};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::MonitorArgs;
use crate::demo::{Demo, DemoConfig};
use crate::nats_cmd;
use crate::signal::StopSignals;

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
        if let Some(url) = &args.nats {
            let patterns = if args.pattern.is_empty() {
                EVERY_TOPIC.iter().map(|p| (*p).to_owned()).collect()
            } else {
                args.pattern.clone()
            };
            return Ok(Source::Nats {
                url: url.clone(),
                patterns,
            });
        }
        bail!(
            "nothing to monitor: pass --demo to monitor an in-process demo bus \
             or --nats URL to monitor a NATS server"
        )
    }
}

pub(crate) async fn run(args: MonitorArgs) -> anyhow::Result<ExitCode> {
    let source = Source::from_args(&args)?;
    if let Some(addr) = args.metrics_addr {
        crate::install_metrics(addr)?;
    }
    match source {
        Source::Demo => monitor_demo(&args).await,
        Source::Nats { url, patterns } => monitor_nats(&args, &url, &patterns).await,
    }
}

async fn monitor_nats(
    args: &MonitorArgs,
    url: &str,
    patterns: &[String],
) -> anyhow::Result<ExitCode> {
    let bus = EventBus::new();
    let monitor = BusMonitor::attach(&bus);
    let bridge = nats_cmd::start_import(&bus, url, patterns, &args.import).await?;
    // Before the readiness line: see `signal.rs`.
    let mut signals = StopSignals::install().context("cannot install the signal handlers")?;
    // Same readiness line as `sub`: traffic sent from now on is counted.
    eprintln!("subscribed {}", patterns.join(" "));
    let end = tokio::time::Instant::now() + Duration::from_secs(args.seconds);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = tokio::time::sleep_until(end) => break,
            () = signals.recv() => break,
        }
        if tokio::time::Instant::now() >= end {
            break;
        }
        print_snapshot(&monitor.snapshot()).context("cannot write to stdout")?;
        print_bridge_line(&bridge.stats()).context("cannot write to stdout")?;
    }
    let _ = bridge.shutdown().await;
    print_snapshot(&monitor.snapshot()).context("cannot write to stdout")?;
    print_bridge_line(&bridge.stats()).context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// What the bridge let in and kept out.
fn print_bridge_line(s: &astrid_events_nats::BridgeStats) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "nats: imported {}   rejected (signature) {}   rejected (malformed) {}",
        s.imported, s.rejected_signature, s.rejected_malformed
    )?;
    out.flush()
}

async fn monitor_demo(args: &MonitorArgs) -> anyhow::Result<ExitCode> {
    let demo = Demo::new(DemoConfig {
        seconds: args.seconds,
        capsules: 50,
        principals: 200,
        progress: false,
    });
    let monitor = BusMonitor::attach(demo.bus());
    let recorder = monitor.recorder();
    let render_recorder = recorder.clone();
    let render = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            if print_snapshot(&render_recorder.snapshot()).is_err() {
                break;
            }
        }
    });
    let outcome = demo.run(Some(recorder.clone()), Some(monitor)).await;
    render.abort();
    let _ = render.await;
    let outcome = outcome?;
    print_snapshot(&recorder.snapshot()).context("cannot write to stdout")?;
    let lost: u64 = outcome.groups.iter().map(|g| g.lost).sum();
    if lost != 0 {
        bail!("{lost} events lost without record");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_snapshot(s: &MonitorSnapshot) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if out.is_terminal() {
        // Clear the screen and go home, so the table refreshes in place.
        write!(out, "\x1b[2J\x1b[H")?;
    }
    writeln!(
        out,
        "uptime {:.1} s   events {}   ipc {}   lag {}   evictions {}",
        s.uptime_seconds, s.events_total, s.ipc_events_total, s.lag_total, s.evictions_total
    )?;
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
    writeln!(out, "{topics}")?;
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
    writeln!(out, "{named}")?;
    out.flush()
}
