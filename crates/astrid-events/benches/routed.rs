//! Routed-subscription benchmarks.
//!
//! - `routed_publish_scaling/{10,1000,10000}`: publish one IPC event that
//!   matches exactly one route while N non-matching routes are installed.
//!   The index should make the cost independent of N.
//! - `routed_vs_linear_5000/{indexed,linear_scan}`: the same workload at
//!   5,000 routes on the bus and on a linear-scan baseline kept in this file
//!   (the 0.8.0 design: a `Vec` of routes, each a `Mutex<VecDeque<_>>` plus its
//!   pattern; every publish locks and matches every route).
//! - `routed_churn`: subscribe a route, publish a few events to it, drop it,
//!   with 1,000 other routes installed.
//! - `routed_principals_5000`: one route, 5,000 principals published to
//!   round-robin in rounds of 400 events (400 distinct principals active at
//!   once: what the byte budget holds with each principal's slot), each
//!   round drained with `try_drain`.
//!
//! Event construction and the draining of the matching route in the scaling
//! benches happen outside the timed region (`iter_custom`); where draining is
//! part of what is measured, the bench says so.
//!
//! Run: `cargo bench -p astrid-events --bench routed` (on a shared machine,
//! `ASTRID_BENCH_CLOCK=cpu` times with the thread's CPU time; see
//! `support/clock.rs`).

#[path = "support/clock.rs"]
mod clock;

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use astrid_events::{
    AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload, RoutedEventReceiver,
    topic_pattern_matches,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use uuid::Uuid;

use clock::Clock;

/// The one topic the measured publishes use, and the one route matching it.
const HOT_TOPIC: &str = "tool.v1.execute.bench.result";
const HOT_PATTERN: &str = "tool.v1.execute.*.result";

/// Events published between two (untimed) drains of the matching route: far
/// below its byte budget, so nothing is ever evicted.
const CHUNK: u64 = 256;

fn ipc_event(topic: &str, principal: &str) -> AstridEvent {
    let message = IpcMessage::new(
        topic,
        IpcPayload::Custom {
            data: serde_json::json!({ "ok": true }),
        },
        Uuid::nil(),
    )
    .with_principal(principal);
    AstridEvent::Ipc {
        metadata: EventMetadata::new("bench"),
        message,
    }
}

/// Pattern `i` of the non-matching population: four shapes on distinct topic
/// trees, some with wildcards, some sharing the hot topic's prefix.
fn cold_pattern(i: usize) -> String {
    match i % 4 {
        0 => format!("capsule.{i}.v1.*"),
        1 => format!("tool.v1.execute.{i}.result"),
        2 => format!("tool.v1.execute.*.progress{i}"),
        _ => format!("*.agent{i}.v1.*"),
    }
}

/// A bus with `cold` non-matching routes and one route matching
/// [`HOT_TOPIC`]. Returns the bus, the hot receiver and the cold receivers
/// (kept alive).
fn bus_with_routes(cold: usize) -> (EventBus, RoutedEventReceiver, Vec<RoutedEventReceiver>) {
    let bus = EventBus::new();
    let capsule = Uuid::new_v4();
    let cold_rx: Vec<_> = (0..cold)
        .map(|i| bus.subscribe_topic_routed(capsule, cold_pattern(i), "cold", "bench"))
        .collect();
    let hot = bus.subscribe_topic_routed(capsule, HOT_PATTERN, "hot", "bench");
    assert_eq!(bus.routed_subscription_count(), cold + 1);
    assert!(cold_pattern(1).starts_with("tool.v1.execute."));
    (bus, hot, cold_rx)
}

/// Times `iters` publishes of [`HOT_TOPIC`] events in chunks, building the
/// events before and draining the hot route after each chunk, untimed.
fn timed_hot_publishes(
    clock: Clock,
    iters: u64,
    mut publish: impl FnMut(AstridEvent) -> usize,
    mut drain: impl FnMut() -> usize,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = CHUNK.min(iters - done);
        let events: Vec<_> = (0..n).map(|_| ipc_event(HOT_TOPIC, "user-1")).collect();
        let ((), elapsed) = clock.time(|| {
            for event in events {
                black_box(publish(black_box(event)));
            }
        });
        total += elapsed;
        let drained = drain();
        debug_assert_eq!(drained as u64, n);
        done += n;
    }
    total
}

fn routed_publish_scaling(c: &mut Criterion) {
    let clock = Clock::from_env();
    let mut group = c.benchmark_group("routed_publish_scaling");
    group.throughput(Throughput::Elements(1));
    for cold in [10usize, 1_000, 10_000] {
        let (bus, mut hot, _cold_rx) = bus_with_routes(cold);
        group.bench_with_input(BenchmarkId::from_parameter(cold), &cold, |b, _| {
            b.iter_custom(|iters| {
                timed_hot_publishes(
                    clock,
                    iters,
                    |event| bus.publish(event),
                    || hot.try_drain(usize::MAX).len(),
                )
            });
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// Linear-scan baseline: the 0.8.0 routed design.

/// One route of the baseline: its pattern and its queue.
struct LinearRoute {
    pattern: String,
    queue: Mutex<VecDeque<Arc<AstridEvent>>>,
}

/// The baseline bus: every publish locks and matches every route.
struct LinearBus {
    routes: Vec<LinearRoute>,
}

impl LinearBus {
    fn new(patterns: impl IntoIterator<Item = String>) -> Self {
        Self {
            routes: patterns
                .into_iter()
                .map(|pattern| LinearRoute {
                    pattern,
                    queue: Mutex::new(VecDeque::new()),
                })
                .collect(),
        }
    }

    fn publish(&self, event: AstridEvent) -> usize {
        let event = Arc::new(event);
        let AstridEvent::Ipc { message, .. } = event.as_ref() else {
            return 0;
        };
        let mut reached = 0;
        for route in &self.routes {
            let mut queue = route.queue.lock().unwrap_or_else(|e| e.into_inner());
            if topic_pattern_matches(&route.pattern, &message.topic) {
                queue.push_back(Arc::clone(&event));
                reached += 1;
            }
        }
        reached
    }

    fn drain(&self, route: usize) -> usize {
        let mut queue = self.routes[route]
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = queue.len();
        queue.clear();
        n
    }
}

fn routed_vs_linear(c: &mut Criterion) {
    const ROUTES: usize = 5_000;
    let clock = Clock::from_env();
    let mut group = c.benchmark_group("routed_vs_linear_5000");
    group.throughput(Throughput::Elements(1));

    let (bus, mut hot, _cold_rx) = bus_with_routes(ROUTES - 1);
    group.bench_function("indexed", |b| {
        b.iter_custom(|iters| {
            timed_hot_publishes(
                clock,
                iters,
                |event| bus.publish(event),
                || hot.try_drain(usize::MAX).len(),
            )
        });
    });

    let linear = LinearBus::new(
        (0..ROUTES - 1)
            .map(cold_pattern)
            .chain([HOT_PATTERN.to_owned()]),
    );
    group.bench_function("linear_scan", |b| {
        b.iter_custom(|iters| {
            timed_hot_publishes(
                clock,
                iters,
                |event| linear.publish(event),
                || linear.drain(ROUTES - 1),
            )
        });
    });
    group.finish();
}

// ---------------------------------------------------------------------------

fn routed_churn(c: &mut Criterion) {
    const EVENTS_PER_ROUTE: usize = 4;
    const DISTINCT: u64 = 1024;
    const CYCLES_PER_CHUNK: u64 = 64;
    let clock = Clock::from_env();
    let (bus, _hot, _cold_rx) = bus_with_routes(1_000);
    let capsule = Uuid::new_v4();
    let mut n = 0u64;
    let mut group = c.benchmark_group("routed_churn");
    group.throughput(Throughput::Elements(1));
    // One iteration: subscribe a route, publish 4 events to it, drop it
    // (closing the route and freeing what it holds). The pattern rotates, so
    // the trie grows and prunes nodes too. Building the events is untimed.
    group.bench_function("subscribe_publish4_drop", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let k = CYCLES_PER_CHUNK.min(iters - done);
                let cycles: Vec<_> = (0..k)
                    .map(|_| {
                        n = (n + 1) % DISTINCT;
                        let topic = format!("churn.v1.c{n}.result");
                        let events: Vec<_> = (0..EVENTS_PER_ROUTE)
                            .map(|_| ipc_event(&topic, "user-1"))
                            .collect();
                        (topic, events)
                    })
                    .collect();
                let (reached, elapsed) = clock.time(|| {
                    let mut reached = 0;
                    for (pattern, events) in cycles {
                        let rx = bus.subscribe_topic_routed(capsule, pattern, "churn", "bench");
                        for event in events {
                            reached += bus.publish(event);
                        }
                        drop(black_box(rx));
                    }
                    reached
                });
                debug_assert_eq!(reached as u64, k * EVENTS_PER_ROUTE as u64);
                total += elapsed;
                done += k;
            }
            total
        });
    });
    group.finish();
    assert_eq!(bus.routed_subscription_count(), 1_001);
}

fn routed_principals(c: &mut Criterion) {
    const PRINCIPALS: usize = 5_000;
    /// Events per round: one for each of this many distinct principals, as
    /// many as the route's byte budget holds at once (each brings its
    /// principal's slot).
    const PER_ROUND: usize = 400;
    /// Budget of one `try_drain` call, in accounted bytes.
    const DRAIN_BUDGET: usize = 64 * 1024;
    let bus = EventBus::new();
    let mut rx = bus.subscribe_topic_routed(Uuid::new_v4(), "tool.v1.*", "multi", "bench");
    let principals: Vec<String> = (0..PRINCIPALS).map(|i| format!("user-{i}")).collect();
    let mut next = 0usize;
    let clock = Clock::from_env();

    let mut group = c.benchmark_group("routed_principals_5000");
    group.throughput(Throughput::Elements(1));
    // Timed: publishing a round (up to `PER_ROUND` events, one per
    // principal, round-robin over all of them) and draining it all with
    // `try_drain`. Event construction is untimed.
    group.bench_function("publish_round_robin_then_try_drain", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                let n = (PER_ROUND as u64).min(iters - done);
                let events: Vec<_> = (0..n)
                    .map(|_| {
                        let p = &principals[next];
                        next = (next + 1) % PRINCIPALS;
                        ipc_event("tool.v1.execute", p)
                    })
                    .collect();
                let mut out = Vec::with_capacity(events.len());
                let ((), elapsed) = clock.time(|| {
                    for event in events {
                        black_box(bus.publish(event));
                    }
                    loop {
                        let batch = rx.try_drain(DRAIN_BUDGET);
                        if batch.is_empty() {
                            break;
                        }
                        out.push(batch);
                    }
                });
                total += elapsed;
                debug_assert_eq!(out.iter().map(Vec::len).sum::<usize>() as u64, n);
                drop(out);
                done += n;
            }
            total
        });
    });
    group.finish();
    assert_eq!(rx.drain_lagged(), 0, "nothing may be evicted in this bench");
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = routed_publish_scaling, routed_vs_linear, routed_churn, routed_principals
}
criterion_main!(benches);
