//! End-to-end delivery to live tasks: services awaiting their own topic on a
//! 2-worker tokio runtime, timed from the first publish until every service
//! has received its share.
//!
//! The workload: 64,000 IPC events round-robin over the services' topics,
//! published by one task in chunks of 64, yielding to the scheduler after
//! each chunk. Every service takes what is queued with `recv_many` (up to
//! 256 at a time) or, where the design has none, `recv` in a loop. Queues
//! hold all 64,000 events, so no side ever drops one (that would end the
//! run with a service short of its share; the runs assert none lagged).
//!
//! - `end_to_end_16_topics`: 16 services, each on a topic receiver
//!   (`subscribe_topic`) of its own topic.
//!   - `bus_single`: each chunk as 64 `publish` calls;
//!   - `bus_batch`: each chunk as one `publish_batch` of 64;
//!   - `mpsc_map`: hand-written baseline, a `HashMap` of topic → tokio mpsc
//!     sender, one channel per service;
//!   - `broadcast_and_filter`: the 0.8.0 design, one tokio broadcast channel
//!     whose 16 receivers each receive every event and keep those matching
//!     their pattern (`topic_pattern_matches`), as in `topic_fanout_16` of
//!     `benches/delivery.rs`.
//! - `end_to_end_100_routes/{bus_single,bus_batch}`: 100 services, each on a
//!   routed receiver (`subscribe_topic_routed`) of its own topic, 640 events
//!   each.
//! - `end_to_end_16_plain/{bus_single,bus_batch}`: 16 services on plain
//!   receivers (`subscribe`), each receiving every event and counting those
//!   of its topic.
//!
//! The 16-topic and 100-route cases run twice: with the publisher as a task
//! on the services' runtime (`end_to_end_*`), and on a thread of its own
//! (`*_thread`: a socket reader, a synchronous producer), where every wakeup
//! of a parked worker is a cross-thread unpark.
//!
//! Event construction is outside the timed region, and so is freeing the
//! events: services keep what they receive until the clock stops (see
//! `keep_received`; `ASTRID_E2E_TIME_DROPS=1` times the frees too).
//! Wrapping in `Arc`, delivery, wakeups and receiving are inside. Wall
//! time by default; with `ASTRID_BENCH_CLOCK=cpu`, the CPU time of the whole
//! process (every thread: publisher, workers) over the run, which on a
//! shared, overloaded machine leaves out the time the threads sat
//! preempted but keeps what wakeups cost (syscalls, context switches,
//! polls).
//!
//! `ratios` also times two floors that deliver nothing (`Case::Floor`),
//! against which the 16-topic task case can be read: `floor_wrap`, the
//! publisher task only moving each event into an `Arc` (kept, like the
//! received events) and yielding after each chunk; `floor_wrap_and_wake`,
//! the same plus one wakeup per chunk of each of 16 tasks waiting on a tokio
//! `Notify`: what any design pays that wraps the events and wakes every
//! service once per chunk.
//!
//! After the criterion groups, `ratios` times every case again, interleaved
//! round by round (`ASTRID_E2E_ROUNDS`, default 7), and prints the median
//! of each and the ratios between them, all from that one run.
//!
//! Run: `cargo bench -p astrid-events --bench end_to_end` (only the ratios:
//! `cargo bench -p astrid-events --bench end_to_end -- ratios`). To profile
//! one case, `ASTRID_E2E_ONLY=topics-batch-task` (see `profile_one`) runs
//! just that case `ASTRID_E2E_ROUNDS` times.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use astrid_events::{
    AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload, topic_pattern_matches,
};
use cpu_time::ProcessTime;
use criterion::{Criterion, Throughput};
use tokio::runtime::Runtime;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Events per run.
const EVENTS: usize = 64_000;
/// Events per publisher chunk (one `publish_batch`, or that many `publish`);
/// `ASTRID_E2E_CHUNK` sets another size, for what-if runs only (the figures
/// in the README are with 64).
const CHUNK: usize = 64;

fn chunk_size() -> usize {
    std::env::var("ASTRID_E2E_CHUNK")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CHUNK)
        .max(1)
}
/// Most events a service takes per `recv_many`.
const RECV_MANY: usize = 256;

/// One case of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// Topic receivers, `services` of them; `batch`: `publish_batch`.
    Topic { services: usize, batch: bool },
    /// Routed receivers.
    Routed { services: usize, batch: bool },
    /// Plain receivers.
    Plain { services: usize, batch: bool },
    /// Topic → tokio mpsc map.
    MpscMap { services: usize },
    /// 0.8.0's broadcast and filter.
    BroadcastFilter { services: usize },
    /// No delivery at all, a floor for every design: the publisher wraps
    /// each event in an `Arc` and keeps it; with `services` > 0, it also
    /// wakes each of that many tasks once per chunk (a counter and a tokio
    /// `Notify` each), as any design must when every chunk has events for
    /// every service.
    Floor { services: usize },
}

impl Case {
    fn services(self) -> usize {
        match self {
            Self::Topic { services, .. }
            | Self::Routed { services, .. }
            | Self::Plain { services, .. }
            | Self::MpscMap { services }
            | Self::BroadcastFilter { services }
            | Self::Floor { services } => services,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Topic { batch: false, .. }
            | Self::Routed { batch: false, .. }
            | Self::Plain { batch: false, .. } => "bus_single",
            Self::Topic { batch: true, .. }
            | Self::Routed { batch: true, .. }
            | Self::Plain { batch: true, .. } => "bus_batch",
            Self::MpscMap { .. } => "mpsc_map",
            Self::BroadcastFilter { .. } => "broadcast_and_filter",
            Self::Floor { services: 0 } => "floor_wrap",
            Self::Floor { .. } => "floor_wrap_and_wake",
        }
    }
}

fn topic(i: usize) -> String {
    format!("svc.v1.s{i:03}.request")
}

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

fn topic_of(event: &AstridEvent) -> &str {
    match event {
        AstridEvent::Ipc { message, .. } => &message.topic,
        _ => "",
    }
}

/// The run's events, round-robin over `topics`, in publisher chunks.
fn chunks(topics: &[String]) -> Vec<Vec<AstridEvent>> {
    (0..EVENTS)
        .map(|i| ipc_event(&topics[i % topics.len()]))
        .collect::<Vec<_>>()
        .chunks(chunk_size())
        .map(<[AstridEvent]>::to_vec)
        .collect()
}

/// One run of `case` on `rt`: services spawned and events built untimed,
/// then timed from the publisher's start until every service has its
/// share.
fn run(rt: &Runtime, case: Case, place: Place) -> Duration {
    let services = case.services();
    let topics: Vec<String> = (0..services.max(1)).map(topic).collect();
    let share = EVENTS / services.max(1);
    let chunks = chunks(&topics);
    let _entered = rt.enter();
    let keep = keep_received();
    let (handles, publisher): (Vec<JoinHandle<Vec<Arc<AstridEvent>>>>, _) = match case {
        Case::Topic { batch, .. } => {
            let bus = EventBus::with_capacity(EVENTS);
            let handles = topics
                .iter()
                .map(|t| {
                    let mut rx = bus.subscribe_topic(t.as_str());
                    let mut kept = Kept::new(keep, share);
                    tokio::spawn(async move {
                        let (mut buf, mut got) = (Vec::with_capacity(RECV_MANY), 0);
                        while got < share {
                            let n = rx.recv_many(&mut buf, RECV_MANY).await;
                            assert!(n > 0, "bus gone");
                            got += n;
                            kept.take(&mut buf, |_| true);
                        }
                        assert_eq!(rx.drain_lagged(), 0);
                        kept.0
                    })
                })
                .collect();
            (handles, Publisher::Bus(bus, batch))
        }
        Case::Routed { batch, .. } => {
            let bus = EventBus::with_capacity(EVENTS);
            let handles = topics
                .iter()
                .map(|t| {
                    let mut rx = bus.subscribe_topic_routed(Uuid::nil(), t.as_str(), "svc", "svc");
                    let mut kept = Kept::new(keep, share);
                    tokio::spawn(async move {
                        let (mut buf, mut got) = (Vec::with_capacity(RECV_MANY), 0);
                        while got < share {
                            let n = rx.recv_many(&mut buf, RECV_MANY).await;
                            assert!(n > 0, "bus gone");
                            got += n;
                            kept.take(&mut buf, |_| true);
                        }
                        assert_eq!(rx.drain_lagged(), 0);
                        kept.0
                    })
                })
                .collect();
            (handles, Publisher::Bus(bus, batch))
        }
        Case::Plain { batch, .. } => {
            let bus = EventBus::with_capacity(EVENTS);
            let handles = topics
                .iter()
                .map(|t| {
                    let mut rx = bus.subscribe();
                    let t = t.clone();
                    let mut kept = Kept::new(keep, share);
                    tokio::spawn(async move {
                        let (mut buf, mut got) = (Vec::with_capacity(RECV_MANY), 0);
                        while got < share {
                            let n = rx.recv_many(&mut buf, RECV_MANY).await;
                            assert!(n > 0, "bus gone");
                            got += buf.iter().filter(|e| topic_of(e) == t).count();
                            kept.take(&mut buf, |e| topic_of(e) == t);
                        }
                        assert_eq!(rx.drain_lagged(), 0);
                        kept.0
                    })
                })
                .collect();
            (handles, Publisher::Bus(bus, batch))
        }
        Case::MpscMap { .. } => {
            let mut map = HashMap::new();
            let handles = topics
                .iter()
                .map(|t| {
                    let (tx, mut rx) = mpsc::channel::<Arc<AstridEvent>>(EVENTS);
                    map.insert(t.clone(), tx);
                    let mut kept = Kept::new(keep, share);
                    tokio::spawn(async move {
                        let (mut buf, mut got) = (Vec::with_capacity(RECV_MANY), 0);
                        while got < share {
                            let n = rx.recv_many(&mut buf, RECV_MANY).await;
                            assert!(n > 0, "channel closed");
                            got += n;
                            kept.take(&mut buf, |_| true);
                        }
                        kept.0
                    })
                })
                .collect();
            (handles, Publisher::Map(map))
        }
        Case::BroadcastFilter { .. } => {
            let (tx, _) = broadcast::channel::<Arc<AstridEvent>>(EVENTS);
            let handles = topics
                .iter()
                .map(|t| {
                    let mut rx = tx.subscribe();
                    let pattern = t.clone();
                    let mut kept = Kept::new(keep, share);
                    tokio::spawn(async move {
                        let mut got = 0;
                        while got < share {
                            let event = rx.recv().await.expect("never lags, never closed");
                            if let AstridEvent::Ipc { message, .. } = event.as_ref()
                                && topic_pattern_matches(&pattern, &message.topic)
                            {
                                got += 1;
                                kept.push(event);
                            }
                        }
                        kept.0
                    })
                })
                .collect();
            (handles, Publisher::Broadcast(tx))
        }
        Case::Floor { .. } => {
            let wakes = chunks.len();
            let woken: Vec<_> = (0..services)
                .map(|_| (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new())))
                .collect();
            let handles = woken
                .iter()
                .map(|(pending, notify)| {
                    let (pending, notify) = (Arc::clone(pending), Arc::clone(notify));
                    tokio::spawn(async move {
                        let mut got = 0;
                        while got < wakes {
                            // A wakeup between the swap and `notified` is
                            // kept by `Notify` as a permit.
                            match pending.swap(0, Ordering::Acquire) {
                                0 => notify.notified().await,
                                n => got += n,
                            }
                        }
                        Vec::new()
                    })
                })
                .collect();
            let kept = Arc::new(Mutex::new(Vec::with_capacity(if keep {
                EVENTS
            } else {
                0
            })));
            (handles, Publisher::Floor(woken, kept))
        }
    };
    // The channels keep the events they hold until they are dropped: keep
    // the publishing side alive past the clock (see `keep_received`).
    let alive = keep.then(|| publisher.handle());
    let start = Stopwatch::start();
    let (elapsed, received) = match place {
        Place::Task => rt.block_on(async move {
            let publisher = tokio::spawn(publisher.run(chunks));
            let mut received = Vec::with_capacity(services);
            for h in handles {
                received.push(h.await.expect("service"));
            }
            publisher.await.expect("publisher");
            (start.elapsed(), received)
        }),
        Place::Thread => {
            let publisher = std::thread::spawn(move || publisher.run_on_thread(chunks));
            let received = rt.block_on(async move {
                let mut received = Vec::with_capacity(services);
                for h in handles {
                    received.push(h.await.expect("service"));
                }
                received
            });
            publisher.join().expect("publisher");
            (start.elapsed(), received)
        }
    };
    drop((received, alive));
    elapsed
}

/// Whether services keep what they receive until the clock has stopped
/// (the default), so freeing the events is outside the timed region like
/// building them; `ASTRID_E2E_TIME_DROPS=1` times the frees as well (each
/// service drops its events as it goes).
///
/// Freeing is the same work in every case (each event is freed once), but
/// its cost is the allocator's, not delivery's, and with all 64,000 events
/// built up front by another thread it is large and erratic: 31 % of the
/// workers' CPU in the 16-topic runs (`perf record -e cpu-clock`:
/// `malloc_consolidate`, `unlink_chunk`, `_int_free`, heap trimming).
fn keep_received() -> bool {
    std::env::var("ASTRID_E2E_TIME_DROPS").as_deref() != Ok("1")
}

/// What one service received, kept for dropping after the clock stops
/// (allocated before it starts), or nothing when frees are timed.
struct Kept(Vec<Arc<AstridEvent>>);

impl Kept {
    fn new(keep: bool, share: usize) -> Self {
        Self(Vec::with_capacity(if keep { share } else { 0 }))
    }

    /// Moves the events of `buf` that `mine` accepts into the kept ones (or
    /// drops them, when frees are timed); empties `buf`.
    fn take(&mut self, buf: &mut Vec<Arc<AstridEvent>>, mine: impl Fn(&AstridEvent) -> bool) {
        if self.0.capacity() == 0 {
            buf.clear();
        } else {
            self.0.extend(buf.drain(..).filter(|e| mine(e)));
        }
    }

    fn push(&mut self, event: Arc<AstridEvent>) {
        if self.0.capacity() > 0 {
            self.0.push(event);
        }
    }
}

/// Wall or process CPU time (`ASTRID_BENCH_CLOCK=cpu`).
enum Stopwatch {
    Wall(Instant),
    ProcessCpu(ProcessTime),
}

impl Stopwatch {
    fn start() -> Self {
        match std::env::var("ASTRID_BENCH_CLOCK").as_deref() {
            Ok("cpu") => Self::ProcessCpu(ProcessTime::now()),
            _ => Self::Wall(Instant::now()),
        }
    }

    fn elapsed(&self) -> Duration {
        match self {
            Self::Wall(start) => start.elapsed(),
            Self::ProcessCpu(start) => start.elapsed(),
        }
    }
}

/// Where the publisher runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A task on the services' runtime, yielding after each chunk.
    Task,
    /// A thread of its own (like a socket reader or a synchronous
    /// producer), publishing chunk after chunk.
    Thread,
}

/// The publishing side of one case.
enum Publisher {
    Bus(EventBus, bool),
    Map(HashMap<String, mpsc::Sender<Arc<AstridEvent>>>),
    Broadcast(broadcast::Sender<Arc<AstridEvent>>),
    /// The services to wake once per chunk, and where the wrapped events
    /// are kept (see `keep_received`).
    Floor(
        Vec<(Arc<AtomicUsize>, Arc<Notify>)>,
        Arc<Mutex<Vec<Arc<AstridEvent>>>>,
    ),
}

impl Publisher {
    /// A handle that keeps this publisher's channels (and the events they
    /// hold) alive.
    fn handle(&self) -> Box<dyn std::any::Any> {
        match self {
            Self::Bus(bus, _) => Box::new(bus.clone()),
            Self::Map(map) => Box::new(map.values().cloned().collect::<Vec<_>>()),
            Self::Broadcast(tx) => Box::new(tx.clone()),
            Self::Floor(_, kept) => Box::new(Arc::clone(kept)),
        }
    }

    /// Publishes one chunk.
    fn chunk(&self, chunk: Vec<AstridEvent>) {
        match self {
            Self::Bus(bus, true) => {
                bus.publish_batch(chunk);
            }
            Self::Bus(bus, false) => {
                for event in chunk {
                    bus.publish(event);
                }
            }
            Self::Map(map) => {
                for event in chunk {
                    let tx = &map[topic_of(&event)];
                    tx.try_send(Arc::new(event)).expect("never full");
                }
            }
            Self::Broadcast(tx) => {
                for event in chunk {
                    let _ = tx.send(Arc::new(event));
                }
            }
            Self::Floor(woken, kept) => {
                let mut kept = kept.lock().expect("not poisoned");
                if kept.capacity() > 0 {
                    kept.extend(chunk.into_iter().map(Arc::new));
                } else {
                    chunk.into_iter().map(Arc::new).for_each(drop);
                }
                drop(kept);
                for (pending, notify) in woken {
                    pending.fetch_add(1, Ordering::Release);
                    notify.notify_one();
                }
            }
        }
    }

    fn run_on_thread(self, chunks: Vec<Vec<AstridEvent>>) {
        for chunk in chunks {
            self.chunk(chunk);
        }
    }

    async fn run(self, chunks: Vec<Vec<AstridEvent>>) {
        for chunk in chunks {
            self.chunk(chunk);
            tokio::task::yield_now().await;
        }
    }
}

/// The services' runtime: 2 workers; `ASTRID_E2E_WORKERS` sets another
/// count, for what-if runs only (with 1, no worker is ever woken to steal,
/// which isolates what the cross-worker wakeups cost).
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::env::var("ASTRID_E2E_WORKERS")
                .ok()
                .and_then(|w| w.parse().ok())
                .unwrap_or(2),
        )
        .build()
        .expect("runtime")
}

const TOPIC_CASES: [Case; 4] = [
    Case::Topic {
        services: 16,
        batch: false,
    },
    Case::Topic {
        services: 16,
        batch: true,
    },
    Case::MpscMap { services: 16 },
    Case::BroadcastFilter { services: 16 },
];
const FLOOR_CASES: [Case; 2] = [Case::Floor { services: 0 }, Case::Floor { services: 16 }];
const ROUTED_CASES: [Case; 2] = [
    Case::Routed {
        services: 100,
        batch: false,
    },
    Case::Routed {
        services: 100,
        batch: true,
    },
];
const PLAIN_CASES: [Case; 2] = [
    Case::Plain {
        services: 16,
        batch: false,
    },
    Case::Plain {
        services: 16,
        batch: true,
    },
];

fn groups(c: &mut Criterion) {
    let rt = runtime();
    for (group, cases, place) in [
        ("end_to_end_16_topics", &TOPIC_CASES[..], Place::Task),
        (
            "end_to_end_16_topics_thread",
            &TOPIC_CASES[..],
            Place::Thread,
        ),
        ("end_to_end_100_routes", &ROUTED_CASES[..], Place::Task),
        ("end_to_end_16_plain", &PLAIN_CASES[..], Place::Task),
    ] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(EVENTS as u64));
        g.sample_size(10);
        for &case in cases {
            g.bench_function(case.name(), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| run(&rt, case, place)).sum());
            });
        }
        g.finish();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Every case again, interleaved round by round; medians and ratios.
fn ratios() {
    let rounds: usize = std::env::var("ASTRID_E2E_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7)
        .max(1);
    let rt = runtime();
    if let Ok(only) = std::env::var("ASTRID_E2E_ONLY") {
        profile_one(&rt, &only, rounds);
        return;
    }
    let groups: [(&str, &[Case], Place); 6] = [
        ("16 topics, publisher task", &TOPIC_CASES, Place::Task),
        ("floors, publisher task", &FLOOR_CASES, Place::Task),
        ("16 topics, publisher thread", &TOPIC_CASES, Place::Thread),
        ("100 routes, publisher task", &ROUTED_CASES, Place::Task),
        ("100 routes, publisher thread", &ROUTED_CASES, Place::Thread),
        ("16 plain, publisher task", &PLAIN_CASES, Place::Task),
    ];
    let mut times: Vec<Vec<Vec<Duration>>> = groups
        .iter()
        .map(|(_, cases, _)| vec![Vec::new(); cases.len()])
        .collect();
    for _ in 0..rounds {
        for ((_, cases, place), times) in groups.iter().zip(&mut times) {
            for (&case, t) in cases.iter().zip(times.iter_mut()) {
                t.push(run(&rt, case, *place));
            }
        }
    }
    println!("\nend_to_end: median of {rounds} interleaved rounds, {EVENTS} events each");
    for ((name, cases, _), times) in groups.iter().zip(times) {
        let medians: Vec<Duration> = times.into_iter().map(median).collect();
        println!("  {name}:");
        for (case, d) in cases.iter().zip(&medians) {
            println!(
                "    {:<21} {:>8.1} ms  {:>6.0} ns/event",
                case.name(),
                d.as_secs_f64() * 1e3,
                d.as_nanos() as f64 / EVENTS as f64
            );
        }
        if cases[..] == FLOOR_CASES[..] {
            continue;
        }
        let ratio =
            |slow: usize, fast: usize| medians[slow].as_secs_f64() / medians[fast].as_secs_f64();
        print!("    batch vs single {:.2}x (target >= 3)", ratio(0, 1));
        if cases.len() == 4 {
            print!(
                ", batch vs 0.8.0 {:.2}x (target >= 5), batch vs mpsc map {:.2}x, \
                 single vs 0.8.0 {:.2}x",
                ratio(3, 1),
                ratio(2, 1),
                ratio(3, 0)
            );
        }
        println!();
    }
}

/// Runs one case `rounds` times and prints each time: for profilers
/// (`perf record`, `valgrind --tool=callgrind`). `only` names it as
/// `<topics|routes|plain>-<single|batch|mpsc|broadcast>-<task|thread>`, or
/// `floor-<wrap|wake>-<task|thread>`.
fn profile_one(rt: &Runtime, only: &str, rounds: usize) {
    let parts: Vec<&str> = only.split('-').collect();
    let [kind, variant, place] = parts[..] else {
        panic!("ASTRID_E2E_ONLY: expected <kind>-<variant>-<place>, got {only:?}");
    };
    let batch = variant == "batch";
    let case = match (kind, variant) {
        ("topics", "single" | "batch") => Case::Topic {
            services: 16,
            batch,
        },
        ("topics", "mpsc") => Case::MpscMap { services: 16 },
        ("topics", "broadcast") => Case::BroadcastFilter { services: 16 },
        ("floor", "wrap") => Case::Floor { services: 0 },
        ("floor", "wake") => Case::Floor { services: 16 },
        ("routes", "single" | "batch") => Case::Routed {
            services: 100,
            batch,
        },
        ("plain", "single" | "batch") => Case::Plain {
            services: 16,
            batch,
        },
        _ => panic!("ASTRID_E2E_ONLY: unknown case {only:?}"),
    };
    let place = match place {
        "task" => Place::Task,
        "thread" => Place::Thread,
        _ => panic!("ASTRID_E2E_ONLY: unknown place {place:?}"),
    };
    for _ in 0..rounds {
        let d = run(rt, case, place);
        println!(
            "{only}: {:.1} ms, {:.0} ns/event",
            d.as_secs_f64() * 1e3,
            d.as_nanos() as f64 / EVENTS as f64
        );
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .without_plots()
        .configure_from_args();
    let only_ratios = std::env::args().skip(1).any(|a| a == "ratios");
    if !only_ratios {
        groups(&mut criterion);
    }
    // `cargo test --benches` runs each bench once in test mode: keep it short.
    if std::env::args().any(|a| a == "--bench") {
        ratios();
    }
    criterion.final_summary();
}
