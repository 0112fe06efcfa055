//! Delivery benchmarks against bare-channel baselines kept in this file.
//!
//! - `plain_delivery/{bus_subscribe,bare_broadcast}`: publish one IPC event and
//!   take it from a plain `subscribe()` receiver with `try_recv`, against a
//!   bare `tokio::sync::broadcast` send + `try_recv` of `Arc<AstridEvent>`.
//! - `topic_fanout_16/{bus_topic_index,broadcast_and_filter}`: 16 topic
//!   subscribers on distinct topics, one publisher round-robining over the
//!   topics, every subscriber draining after each chunk. Baseline: the 0.8.0
//!   design, one broadcast channel whose 16 receivers each receive every
//!   event and keep those matching their pattern (`topic_pattern_matches`).
//!
//! - `retention_unretained/{without_retention,with_retention}`: publish on
//!   a topic nobody retains, to 16 topic subscribers, on a bus without
//!   retention and on one retaining `registry.v1.*` (100 topics retained).
//!
//! Both sides take an owned `AstridEvent` and wrap it in an `Arc`. Event
//! construction and dropping the received events are outside the timed region
//! (`iter_custom`); everything else (publish, receive, filter) is timed. No
//! runtime is needed: only `try_recv` is used.
//!
//! Run: `cargo bench -p astrid-events --bench delivery` (on a shared
//! machine, `ASTRID_BENCH_CLOCK=cpu` times with the thread's CPU time; see
//! `support/clock.rs`).

#[path = "support/clock.rs"]
mod clock;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use astrid_events::{
    AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload, topic_pattern_matches,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::broadcast;
use uuid::Uuid;

use clock::Clock;

/// Channel capacity of both sides (the bus default).
const CAPACITY: usize = 1024;

fn ipc_event(topic: &str) -> AstridEvent {
    let message = IpcMessage::new(
        topic,
        IpcPayload::Custom {
            data: serde_json::json!({ "ok": true }),
        },
        Uuid::nil(),
    )
    .with_principal("user-1");
    AstridEvent::Ipc {
        metadata: EventMetadata::new("bench"),
        message,
    }
}

/// Times `iters` iterations in chunks of at most `chunk` events: builds the
/// chunk's events (untimed), runs `step` on them (timed), then drops what
/// `step` collected (untimed).
fn chunked(
    iters: u64,
    chunk: u64,
    mut topic_of: impl FnMut(u64) -> &'static str,
    mut step: impl FnMut(Vec<AstridEvent>, &mut Vec<Arc<AstridEvent>>),
) -> Duration {
    let clock = Clock::from_env();
    let mut total = Duration::ZERO;
    let mut done = 0;
    let mut out = Vec::with_capacity(chunk as usize);
    while done < iters {
        let n = chunk.min(iters - done);
        let events: Vec<_> = (done..done + n).map(|i| ipc_event(topic_of(i))).collect();
        let ((), elapsed) = clock.time(|| step(events, &mut out));
        total += elapsed;
        debug_assert_eq!(out.len() as u64, n);
        out.clear();
        done += n;
    }
    total
}

fn plain_delivery(c: &mut Criterion) {
    const CHUNK: u64 = 256;
    let mut group = c.benchmark_group("plain_delivery");
    group.throughput(Throughput::Elements(1));

    let bus = EventBus::with_capacity(CAPACITY);
    let mut rx = bus.subscribe();
    group.bench_function("bus_subscribe", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                CHUNK,
                |_| "tool.v1.execute.read.result",
                |events, out| {
                    for event in events {
                        black_box(bus.publish(event));
                        if let Some(event) = rx.try_recv() {
                            out.push(event);
                        }
                    }
                },
            )
        });
    });
    assert_eq!(rx.drain_lagged(), 0);

    let (tx, mut bare_rx) = broadcast::channel::<Arc<AstridEvent>>(CAPACITY);
    group.bench_function("bare_broadcast", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                CHUNK,
                |_| "tool.v1.execute.read.result",
                |events, out| {
                    for event in events {
                        black_box(tx.send(Arc::new(event)).unwrap_or(0));
                        if let Ok(event) = bare_rx.try_recv() {
                            out.push(event);
                        }
                    }
                },
            )
        });
    });
    group.finish();
}

const TOPICS: [&str; 16] = [
    "fanout.v1.t00.event",
    "fanout.v1.t01.event",
    "fanout.v1.t02.event",
    "fanout.v1.t03.event",
    "fanout.v1.t04.event",
    "fanout.v1.t05.event",
    "fanout.v1.t06.event",
    "fanout.v1.t07.event",
    "fanout.v1.t08.event",
    "fanout.v1.t09.event",
    "fanout.v1.t10.event",
    "fanout.v1.t11.event",
    "fanout.v1.t12.event",
    "fanout.v1.t13.event",
    "fanout.v1.t14.event",
    "fanout.v1.t15.event",
];

fn topic_fanout(c: &mut Criterion) {
    // Below the broadcast capacity, so the baseline never lags; 32 events
    // per topic queue, far below the topic queue capacity.
    const CHUNK: u64 = 512;
    let round_robin = |i: u64| TOPICS[(i % TOPICS.len() as u64) as usize];
    let mut group = c.benchmark_group("topic_fanout_16");
    group.throughput(Throughput::Elements(1));

    let bus = EventBus::with_capacity(CAPACITY);
    let mut receivers: Vec<_> = TOPICS.iter().map(|t| bus.subscribe_topic(*t)).collect();
    group.bench_function("bus_topic_index", |b| {
        b.iter_custom(|iters| {
            chunked(iters, CHUNK, round_robin, |events, out| {
                for event in events {
                    black_box(bus.publish(event));
                }
                for rx in &mut receivers {
                    while let Some(event) = rx.try_recv() {
                        out.push(event);
                    }
                }
            })
        });
    });
    for rx in &mut receivers {
        assert_eq!(rx.drain_lagged(), 0);
    }

    let (tx, _) = broadcast::channel::<Arc<AstridEvent>>(CAPACITY);
    let mut filtered: Vec<_> = TOPICS.iter().map(|t| (*t, tx.subscribe())).collect();
    group.bench_function("broadcast_and_filter", |b| {
        b.iter_custom(|iters| {
            chunked(iters, CHUNK, round_robin, |events, out| {
                for event in events {
                    black_box(tx.send(Arc::new(event)).unwrap_or(0));
                }
                for (pattern, rx) in &mut filtered {
                    while let Ok(event) = rx.try_recv() {
                        if let AstridEvent::Ipc { message, .. } = event.as_ref()
                            && topic_pattern_matches(pattern, &message.topic)
                        {
                            out.push(event);
                        }
                    }
                }
            })
        });
    });
    group.finish();
}

fn retention_unretained(c: &mut Criterion) {
    const CHUNK: u64 = 512;
    let round_robin = |i: u64| TOPICS[(i % TOPICS.len() as u64) as usize];
    let mut group = c.benchmark_group("retention_unretained");
    group.throughput(Throughput::Elements(1));
    let plain = EventBus::with_capacity(CAPACITY);
    let retaining = EventBus::builder()
        .capacity(CAPACITY)
        .retention(astrid_events::RetentionPolicy::new(["registry.v1.*"]))
        .build();
    for i in 0..100 {
        retaining.publish(ipc_event(&format!("registry.v1.key{i}")));
    }
    for (name, bus) in [
        ("without_retention", &plain),
        ("with_retention", &retaining),
    ] {
        let mut receivers: Vec<_> = TOPICS.iter().map(|t| bus.subscribe_topic(*t)).collect();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                chunked(iters, CHUNK, round_robin, |events, out| {
                    for event in events {
                        black_box(bus.publish(event));
                    }
                    for rx in &mut receivers {
                        while let Some(event) = rx.try_recv() {
                            out.push(event);
                        }
                    }
                })
            });
        });
    }
    assert!(retaining.last("registry.v1.key7").is_some());
    group.finish();
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
    targets = plain_delivery, topic_fanout, retention_unretained
}
criterion_main!(benches);
