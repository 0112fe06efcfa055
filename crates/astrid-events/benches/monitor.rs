//! Publish cost with and without a `BusMonitor`, in the same run.
//!
//! Three variants on the same bus shape (a plain receiver, 100 routed
//! subscriptions in steady-state eviction, 1,000 distinct topics):
//!
//! - `no_monitor`: the baseline;
//! - `sync_monitor`: `BusMonitor::attach` (a synchronous subscriber, the
//!   design the library ships);
//! - `async_monitor_task`: the alternative, a `subscribe_as("monitor")`
//!   receiver drained on another thread into the same counters.
//!
//! Run: `ASTRID_BENCH_CLOCK=cpu cargo bench -p astrid-events --bench
//! monitor`; the overhead ratio is `sync_monitor / no_monitor`, printed at
//! the end from rounds in which the setups run in rotated order and only
//! `publish` is timed (events are cloned outside the timed region). The
//! criterion groups above it run in a fixed order and clone inside the loop:
//! read the printed ratio. 1,000 topics through a top-32 summary is the
//! monitor's worst case: every IPC event takes a counter over.

#[path = "support/clock.rs"]
mod clock;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use astrid_events::EventSubscriber;
use astrid_events::monitor::{BusMonitor, SpaceSaving};
use astrid_events::{
    AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload, RoutedEventReceiver,
};
use clock::Clock;
use criterion::{Criterion, criterion_group, criterion_main};
use uuid::Uuid;

const CAPSULES: usize = 100;
const TOPICS_PER_CAPSULE: usize = 10;

struct Fixture {
    bus: EventBus,
    events: Vec<AstridEvent>,
    _routes: Vec<RoutedEventReceiver>,
    _plain: astrid_events::EventReceiver,
}

fn fixture() -> Fixture {
    let bus = EventBus::new();
    let routes = (0..CAPSULES)
        .map(|c| {
            bus.subscribe_topic_routed(
                Uuid::new_v4(),
                format!("capsule.c{c}.v1.*"),
                format!("capsule-{c}"),
                "bench",
            )
        })
        .collect();
    let plain = bus.subscribe_as("bench-plain");
    let mut events = Vec::new();
    for t in 0..TOPICS_PER_CAPSULE {
        for c in 0..CAPSULES {
            let data = serde_json::json!({"state": "ok", "n": t});
            let message = IpcMessage::new(
                format!("capsule.c{c}.v1.evt{t}"),
                IpcPayload::Custom { data },
                Uuid::nil(),
            )
            .with_principal(format!("user-{}", (c * 7 + t) % 50));
            events.push(AstridEvent::Ipc {
                metadata: EventMetadata::new("bench"),
                message,
            });
        }
    }
    Fixture {
        bus,
        events,
        _routes: routes,
        _plain: plain,
    }
}

/// Publishes the fixture's events round-robin.
fn run(b: &mut criterion::Bencher<'_>, f: &Fixture) {
    let mut i = 0;
    b.iter(|| {
        i = (i + 1) % f.events.len();
        black_box(f.bus.publish(f.events[i].clone()))
    });
}

/// Mean time per publish of `variant` measured directly (for the ratio).
/// Mean cost of one publish over `n` publishes (round-robin over the
/// fixture's events), timed on `clock`. Events are cloned in chunks outside
/// the timed region: only `publish` is measured.
fn mean_publish(f: &Fixture, n: usize, clock: Clock) -> Duration {
    const CHUNK: usize = 1_000;
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < n {
        let chunk: Vec<AstridEvent> = (done..(done + CHUNK).min(n))
            .map(|r| f.events[r % f.events.len()].clone())
            .collect();
        done += chunk.len();
        let ((), t) = clock.time(|| {
            for event in chunk {
                black_box(f.bus.publish(event));
            }
        });
        total += t;
    }
    total / n as u32
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish");
    group.measurement_time(Duration::from_secs(3));

    let f = fixture();
    group.bench_function("no_monitor", |b| run(b, &f));

    let monitor = BusMonitor::attach(&f.bus);
    group.bench_function("sync_monitor", |b| run(b, &f));
    drop(monitor);

    // What the synchronous dispatch itself costs, with a subscriber that
    // does nothing.
    let noop = f.bus.register_subscriber(Arc::new(Noop));
    group.bench_function("noop_sync_subscriber", |b| run(b, &f));
    f.bus.unregister_subscriber(noop);

    // The alternative design: a plain receiver drained by a task elsewhere.
    let stop = Arc::new(AtomicBool::new(false));
    let mut rx = f.bus.subscribe_as("monitor");
    let drain = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut topics = SpaceSaving::new(32);
                let mut buf = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match tokio::time::timeout(
                        Duration::from_millis(50),
                        rx.recv_many(&mut buf, 256),
                    )
                    .await
                    {
                        Ok(0) => break,
                        Ok(_) => {
                            for e in buf.drain(..) {
                                if let AstridEvent::Ipc { message, .. } = e.as_ref() {
                                    topics.offer(&message.topic);
                                }
                            }
                            let _ = rx.drain_lagged();
                        }
                        Err(_) => {}
                    }
                }
            });
        })
    };
    group.bench_function("async_monitor_task", |b| run(b, &f));
    stop.store(true, Ordering::Relaxed);
    let _ = drain.join();
    group.finish();

    // The ratios. The three setups run back to back in every round, their
    // order rotated from round to round (the routes' queues keep filling, so
    // a fixed order would charge drift to whichever setup runs last); each
    // round gives its own ratios and the median is reported.
    let clock = Clock::from_env();
    let per_setup = 100_000;
    let rounds = 9;
    let (mut base_all, mut noop_ratios, mut with_ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut t = [Duration::ZERO; 3];
        for k in 0..3 {
            let setup = (round + k) % 3;
            t[setup] = match setup {
                0 => mean_publish(&f, per_setup, clock),
                1 => {
                    let id = f.bus.register_subscriber(Arc::new(Noop));
                    let d = mean_publish(&f, per_setup, clock);
                    f.bus.unregister_subscriber(id);
                    d
                }
                _ => {
                    let monitor = BusMonitor::attach(&f.bus);
                    let d = mean_publish(&f, per_setup, clock);
                    drop(monitor);
                    d
                }
            };
        }
        base_all.push(t[0]);
        noop_ratios.push(t[1].as_secs_f64() / t[0].as_secs_f64());
        with_ratios.push(t[2].as_secs_f64() / t[0].as_secs_f64());
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    base_all.sort();
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "monitor overhead ({rounds} rotated rounds, publish only): no_monitor {:?}/publish (median), \
         noop_sync_subscriber median ratio {:.3}, sync_monitor median ratio {:.3} (sorted: {})",
        base_all[base_all.len() / 2],
        median(noop_ratios),
        median(with_ratios.clone()),
        sorted(with_ratios)
    );
}

struct Noop;

impl EventSubscriber for Noop {
    fn on_event(&self, event: &AstridEvent, _bus: &EventBus) {
        black_box(event);
    }
}

/// The counters alone: 1,000 topics round-robin through k = 32 (every
/// offer takes a counter over: the worst case).
fn offer(c: &mut Criterion) {
    let topics: Vec<String> = (0..1000).map(|i| format!("capsule.c{i}.v1.evt")).collect();
    let mut ss = SpaceSaving::new(32);
    let mut i = 0;
    c.bench_function("space_saving/offer_1000_topics_k32", |b| {
        b.iter(|| {
            i = (i + 1) % topics.len();
            ss.offer(black_box(&topics[i]));
        })
    });
}

criterion_group!(benches, bench, offer);
criterion_main!(benches);
