//! The consumers: each takes what its receiver hands out and counts it
//! (`received`) and what `drain_lagged` reports (`lagged`), feeding the
//! monitor's recorder when one is attached. The tool host also publishes a
//! result per request; the flooded route's consumer is slow on purpose.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use astrid_events::{
    AstridEvent, EventBus, EventReceiver, EventSubscriber, IpcPayload, RoutedEventReceiver,
};
use serde_json::json;
use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::accounting::{Tallies, Tally};
use super::classes::Class;
use super::ctx::{Ctx, LatencyBuf, SAMPLE_EVERY};
use super::outcome::FloodOutcome;
use super::publishers::ipc;
use super::topology::{ACTIVE_MODEL_TOPIC, TOOLS_PER_CAPSULE};

/// The flooded route's consumer takes this many bytes every
/// [`FLOOD_DRAIN_EVERY`]: a slow consumer, so the runaway overflows the
/// route's budget.
const FLOOD_DRAIN_BYTES: usize = 16 * 1024;
const FLOOD_DRAIN_EVERY: Duration = Duration::from_millis(5);

/// Counts every event it sees, inside `publish`.
pub(super) struct SyncCounter {
    pub(super) tally: Arc<Tally>,
}

impl EventSubscriber for SyncCounter {
    fn on_event(&self, _event: &AstridEvent, _bus: &EventBus) {
        self.tally.received.fetch_add(1, Ordering::Relaxed);
    }

    fn name(&self) -> &str {
        "demo-sync-counter"
    }
}

pub(super) fn spawn_routed(
    mut rx: RoutedEventReceiver,
    tally: Arc<Tally>,
    ctx: &Arc<Ctx>,
    capsule: String,
) -> JoinHandle<()> {
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        let mut latency = LatencyBuf::new(&ctx);
        let mut buf = Vec::with_capacity(64);
        loop {
            let n = rx.recv_many(&mut buf, 64).await;
            tally.received.fetch_add(n as u64, Ordering::Relaxed);
            for event in buf.drain(..) {
                latency.record(&event);
            }
            note_route_lag(&mut rx, &tally, &ctx, &capsule);
            if n == 0 {
                break;
            }
        }
    })
}

pub(super) fn note_route_lag(
    rx: &mut RoutedEventReceiver,
    tally: &Tally,
    ctx: &Ctx,
    capsule: &str,
) {
    let lagged = rx.drain_lagged();
    if lagged > 0 {
        tally.lagged.fetch_add(lagged, Ordering::Relaxed);
        if let Some(r) = &ctx.recorder {
            r.record_evictions(capsule, lagged);
        }
    }
}

pub(super) fn spawn_plain(
    mut rx: EventReceiver,
    tally: Arc<Tally>,
    ctx: &Arc<Ctx>,
) -> JoinHandle<()> {
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        let mut latency = LatencyBuf::new(&ctx);
        let mut buf = Vec::with_capacity(256);
        loop {
            let n = rx.recv_many(&mut buf, 256).await;
            tally.received.fetch_add(n as u64, Ordering::Relaxed);
            for event in buf.drain(..) {
                latency.record(&event);
            }
            let lagged = rx.drain_lagged();
            if lagged > 0 {
                tally.lagged.fetch_add(lagged, Ordering::Relaxed);
                if let Some(r) = &ctx.recorder {
                    r.record_lag(rx.subscriber(), lagged);
                }
            }
            if n == 0 {
                break;
            }
        }
    })
}

/// The flooded route's consumer: slow on purpose while publishers run, then
/// drains everything.
pub(super) async fn consume_flood(
    capsule: String,
    mut rx: RoutedEventReceiver,
    tally: Arc<Tally>,
    ctx: Arc<Ctx>,
    state: Arc<AsyncMutex<FloodOutcome>>,
) {
    let mut tick = tokio::time::interval(FLOOD_DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next_sample = Duration::ZERO;
    let names = state.lock().await.principals.clone();
    let mut delivered = vec![0u64; names.len()];
    let take = |events: Vec<Arc<AstridEvent>>, delivered: &mut Vec<u64>| {
        for event in &events {
            if let AstridEvent::Ipc { message, .. } = event.as_ref()
                && let Some(p) = &message.principal
                && let Some(i) = names.iter().position(|n| n == p)
            {
                delivered[i] += 1;
            }
        }
        events.len() as u64
    };
    while !ctx.publishers_done.load(Ordering::Relaxed) {
        tick.tick().await;
        let n = take(rx.try_drain(FLOOD_DRAIN_BYTES), &mut delivered);
        tally.received.fetch_add(n, Ordering::Relaxed);
        note_route_lag(&mut rx, &tally, &ctx, &capsule);
        let now = ctx.start.elapsed();
        if now >= next_sample {
            next_sample = now + SAMPLE_EVERY;
            state
                .lock()
                .await
                .samples
                .push((now.as_secs_f64(), delivered.clone()));
        }
    }
    let mut buf = Vec::new();
    loop {
        rx.recv_many(&mut buf, 256).await;
        let n = take(std::mem::take(&mut buf), &mut delivered);
        tally.received.fetch_add(n, Ordering::Relaxed);
        note_route_lag(&mut rx, &tally, &ctx, &capsule);
        if n == 0 {
            break;
        }
    }
    let mut s = state.lock().await;
    s.samples
        .push((ctx.start.elapsed().as_secs_f64(), delivered.clone()));
    s.delivered = delivered;
}

/// Consumes tool requests and publishes each result to the tool's owner (and
/// the observers). Ends once publishers are done and its queue is empty.
pub(super) async fn tool_host_loop(
    capsule: String,
    mut rx: RoutedEventReceiver,
    bus: EventBus,
    t: Arc<Tallies>,
    ctx: Arc<Ctx>,
    capsule_ids: Arc<Vec<Uuid>>,
) {
    let mut latency = LatencyBuf::new(&ctx);
    loop {
        let Some(request) = rx.recv(Some(Duration::from_millis(20))).await else {
            note_route_lag(&mut rx, &t.tool_host, &ctx, &capsule);
            if ctx.publishers_done.load(Ordering::Relaxed) {
                break;
            }
            continue;
        };
        t.tool_host.received.fetch_add(1, Ordering::Relaxed);
        latency.record(&request);
        note_route_lag(&mut rx, &t.tool_host, &ctx, &capsule);
        let AstridEvent::Ipc { message, .. } = request.as_ref() else {
            continue;
        };
        let IpcPayload::Custom { data } = &message.payload else {
            continue;
        };
        let (Some(c), Some(k)) = (data["c"].as_u64(), data["k"].as_u64()) else {
            continue;
        };
        let (c, k) = (
            usize::try_from(c).unwrap_or(0),
            usize::try_from(k).unwrap_or(0),
        );
        let result = json!({"t": ctx.now_nanos(), "ok": true, "bytes": 42});
        let source = capsule_ids[c % capsule_ids.len()];
        bus.publish(ipc(
            format!("tool.v1.execute.c{c}t{k}.result"),
            result,
            source,
            message.principal.as_deref(),
        ));
        t.tool_owner[c * TOOLS_PER_CAPSULE + k].expect(1);
        for o in &t.tool_observers {
            o.expect(1);
        }
        ctx.count(Class::ToolResult);
    }
}

/// The late joiner: checks that the retained active model arrives among the
/// first (retained) events, then counts live ones.
pub(super) async fn late_joiner(
    mut rx: EventReceiver,
    tally: Arc<Tally>,
    ctx: Arc<Ctx>,
    retained: usize,
) -> bool {
    let mut got_model = false;
    let mut seen = 0usize;
    while let Some(event) = rx.recv().await {
        if seen < retained
            && let AstridEvent::Ipc { message, .. } = event.as_ref()
            && message.topic == ACTIVE_MODEL_TOPIC
        {
            got_model = true;
        }
        seen += 1;
        tally.received.fetch_add(1, Ordering::Relaxed);
        let lagged = rx.drain_lagged();
        if lagged > 0 {
            tally.lagged.fetch_add(lagged, Ordering::Relaxed);
            if let Some(r) = &ctx.recorder {
                r.record_lag(rx.subscriber(), lagged);
            }
        }
    }
    tally.lagged.fetch_add(rx.drain_lagged(), Ordering::Relaxed);
    got_model
}
