//! The throughput series, and progress on stderr when it is a terminal
//! (a bar; nothing otherwise, so logs and pipes stay clean).

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::config::DemoConfig;
use super::ctx::{Ctx, SAMPLE_EVERY};

/// Samples throughput and shows progress until publishers stop. Returns the
/// throughput series.
pub(super) async fn sample_progress(ctx: Arc<Ctx>, config: DemoConfig) -> Vec<(f64, f64)> {
    let total = config.seconds as f64;
    let bar = (config.progress && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(config.seconds * 1000);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} [{bar:40}] {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let mut series = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut last_t, mut last_n) = (0.0f64, 0u64);
    loop {
        tick.tick().await;
        let done = !ctx.publishing();
        let t = ctx.start.elapsed().as_secs_f64();
        let n = ctx.published.load(Ordering::Relaxed);
        if t > last_t {
            let rate = (n - last_n) as f64 / (t - last_t);
            if t > 0.01 {
                series.push((t, rate));
            }
            let msg = || {
                format!(
                    "{:>5.1}/{total:.0} s  {:>10.0} events/s  {n} published",
                    t.min(total),
                    rate
                )
            };
            if let Some(bar) = &bar {
                bar.set_position((t.min(total) * 1000.0) as u64);
                bar.set_message(msg());
            }
            (last_t, last_n) = (t, n);
        }
        if done {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    series
}
