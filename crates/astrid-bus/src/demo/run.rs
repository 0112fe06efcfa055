//! Orchestration of a run: consumers first, then the tool host and the
//! publishers, then the bus's own shutdown and the final accounting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use astrid_events::RoutedEventReceiver;
use astrid_events::monitor::{BusMonitor, MonitorRecorder};
use hdrhistogram::Histogram;
use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinHandle;

use super::accounting::account;
use super::classes::Class;
use super::consumers::{consume_flood, spawn_plain, spawn_routed, tool_host_loop};
use super::ctx::Ctx;
use super::outcome::{FloodOutcome, Outcome};
use super::progress::sample_progress;
use super::publishers::{
    audit_traffic, capsule_traffic, flood_publisher, lifecycle, llm_stream, registry, tool_requests,
};
use super::topology::{Demo, Receivers};
use crate::signal::StopSignals;

impl Demo {
    /// Runs the load for the configured time (or until SIGINT or SIGTERM), then
    /// accounts for every event. `recorder` is fed lag and evictions;
    /// `attached` is dropped (detached) before the bus closes.
    pub(crate) async fn run(
        self,
        recorder: Option<MonitorRecorder>,
        attached: Option<BusMonitor>,
    ) -> anyhow::Result<Outcome> {
        let Demo {
            config,
            bus,
            capsule_ids,
            principals,
            flood_principals,
            receivers,
            tallies,
            stop,
        } = self;
        let routes = bus.routed_subscription_count();
        let start = Instant::now();
        let ctx = Arc::new(Ctx {
            start,
            deadline: start + Duration::from_secs(config.seconds),
            stop,
            interrupted: AtomicBool::new(false),
            publishers_done: AtomicBool::new(false),
            published: AtomicU64::new(0),
            by_class: Default::default(),
            backpressure_timeouts: AtomicU64::new(0),
            latency: std::sync::Mutex::new(Histogram::new_with_bounds(1, 120_000_000_000, 3)?),
            recorder,
        });
        let capsule_ids = Arc::new(capsule_ids);
        let principals = Arc::new(principals);

        // Installed before any progress line: see `signal.rs`.
        let mut signals = StopSignals::install()
            .map_err(|e| anyhow::anyhow!("cannot install the signal handlers: {e}"))?;
        let stop_signal = {
            let ctx = Arc::clone(&ctx);
            tokio::spawn(async move {
                signals.recv().await;
                ctx.interrupted.store(true, Ordering::Relaxed);
                ctx.stop.stop();
            })
        };

        // After the handlers: from this line on a signal stops the run.
        tracing::info!(
            seconds = config.seconds,
            routes,
            "demo publishing; Ctrl-C or SIGTERM stops it early"
        );

        // Consumers first, so nothing waits on an unpolled receiver.
        let mut consumers: Vec<JoinHandle<()>> = Vec::new();
        let Receivers {
            labels,
            llm,
            tool_host,
            tool_results,
            capsules,
            audit,
            flood,
            plain,
        } = receivers;
        let label = |rx: &RoutedEventReceiver| {
            labels
                .get(&rx.key().subscription_rep)
                .cloned()
                .unwrap_or_default()
        };
        let l = label(&llm);
        consumers.push(spawn_routed(llm, Arc::clone(&tallies.llm), &ctx, l));
        let owner_and_observers = tallies
            .tool_owner
            .iter()
            .chain(tallies.tool_observers.iter());
        for (rx, tally) in tool_results.into_iter().zip(owner_and_observers) {
            let l = label(&rx);
            consumers.push(spawn_routed(rx, Arc::clone(tally), &ctx, l));
        }
        for (rx, tally) in capsules.into_iter().zip(tallies.capsules.iter()) {
            let l = label(&rx);
            consumers.push(spawn_routed(rx, Arc::clone(tally), &ctx, l));
        }
        for (rx, tally) in audit.into_iter().zip(tallies.audit.iter()) {
            let l = label(&rx);
            consumers.push(spawn_routed(rx, Arc::clone(tally), &ctx, l));
        }
        for (rx, tally) in plain.into_iter().zip(tallies.plain.iter()) {
            consumers.push(spawn_plain(rx, Arc::clone(tally), &ctx));
        }
        let flood_state = Arc::new(AsyncMutex::new(FloodOutcome {
            principals: flood_principals.clone(),
            published: vec![0; flood_principals.len()],
            delivered: vec![0; flood_principals.len()],
            samples: Vec::new(),
        }));
        let flood_label = label(&flood);
        consumers.push(tokio::spawn(consume_flood(
            flood_label,
            flood,
            Arc::clone(&tallies.flood),
            Arc::clone(&ctx),
            Arc::clone(&flood_state),
        )));
        let late_outcome = Arc::new(AsyncMutex::new(None));

        // The tool host consumes requests and publishes results.
        let tool_host_label = label(&tool_host);
        let tool_host_task = tokio::spawn(tool_host_loop(
            tool_host_label,
            tool_host,
            bus.clone(),
            Arc::clone(&tallies),
            Arc::clone(&ctx),
            Arc::clone(&capsule_ids),
        ));

        let mut publishers: Vec<JoinHandle<()>> = vec![
            tokio::spawn(llm_stream(
                bus.clone(),
                Arc::clone(&tallies),
                Arc::clone(&ctx),
                Arc::clone(&principals),
            )),
            tokio::spawn(capsule_traffic(
                bus.clone(),
                Arc::clone(&tallies),
                Arc::clone(&ctx),
                Arc::clone(&principals),
            )),
            tokio::spawn(tool_requests(
                bus.clone(),
                Arc::clone(&tallies),
                Arc::clone(&ctx),
                Arc::clone(&principals),
            )),
            tokio::spawn(audit_traffic(
                bus.clone(),
                Arc::clone(&tallies),
                Arc::clone(&ctx),
                Arc::clone(&principals),
            )),
            tokio::spawn(lifecycle(bus.clone(), Arc::clone(&ctx))),
            tokio::spawn(registry(
                bus.clone(),
                Arc::clone(&tallies),
                Arc::clone(&ctx),
                Arc::clone(&late_outcome),
                config.capsules,
            )),
        ];
        for (i, name) in flood_principals.iter().enumerate() {
            publishers.push(tokio::spawn(flood_publisher(
                bus.clone(),
                Arc::clone(&tallies),
                Arc::clone(&ctx),
                Arc::clone(&flood_state),
                i,
                name.clone(),
            )));
        }
        let sampler = tokio::spawn(sample_progress(Arc::clone(&ctx), config.clone()));

        for p in publishers {
            p.await?;
        }
        let publish_seconds = ctx.start.elapsed().as_secs_f64();
        ctx.publishers_done.store(true, Ordering::Relaxed);
        tool_host_task.await?;
        let throughput = sampler.await?;
        // Close the bus: every receiver drains what is queued, then ends.
        drop(attached);
        let published = ctx.published.load(Ordering::Relaxed);
        for t in &tallies.plain {
            t.expect(published);
        }
        tallies.sync.expect(published);
        drop(bus);
        for c in consumers {
            c.await?;
        }
        stop_signal.abort();

        let groups = account(&tallies);
        let flood = flood_state.lock().await.clone();
        let late = late_outcome.lock().await.take();
        let late_joiner_joined = late.is_some();
        let late_joiner_got_retained = match late {
            Some(h) => h.await?,
            None => false,
        };
        let latency = ctx
            .latency
            .lock()
            .map(|h| h.clone())
            .map_err(|_| anyhow::anyhow!("latency histogram poisoned"))?;
        Ok(Outcome {
            config,
            interrupted: ctx.interrupted.load(Ordering::Relaxed),
            publish_seconds,
            wall_seconds: ctx.start.elapsed().as_secs_f64(),
            routes,
            published,
            by_class: Class::ALL
                .iter()
                .zip(ctx.by_class.iter())
                .map(|(c, n)| (*c, n.load(Ordering::Relaxed)))
                .collect(),
            groups,
            backpressure_timeouts: ctx.backpressure_timeouts.load(Ordering::Relaxed),
            latency,
            throughput,
            flood,
            late_joiner_joined,
            late_joiner_got_retained,
        })
    }
}
