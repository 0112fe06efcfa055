//! `astrid-bus monitor`: a live table of a `BusMonitor` snapshot.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use astrid_events::monitor::{BusMonitor, MonitorSnapshot};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::MonitorArgs;
use crate::demo::{Demo, DemoConfig};

/// Where the monitored events come from.
enum Source {
    /// A demo bus in this process.
    Demo,
    // A `Nats { url }` source goes here: it would feed a local bus from the
    // bridge and monitor that bus the same way.
}

impl Source {
    fn from_args(args: &MonitorArgs) -> anyhow::Result<Self> {
        if args.demo {
            return Ok(Source::Demo);
        }
        bail!("nothing to monitor: pass --demo to monitor an in-process demo bus")
    }
}

pub(crate) async fn run(args: MonitorArgs) -> anyhow::Result<ExitCode> {
    let source = Source::from_args(&args)?;
    if let Some(addr) = args.metrics_addr {
        crate::install_metrics(addr)?;
    }
    match source {
        Source::Demo => monitor_demo(&args).await,
    }
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
