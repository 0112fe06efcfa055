//! Abuse tests: what a hostile or broken participant can do to the bus.
//!
//! Each test drives the bus the way an attacker or a buggy capsule would
//! (floods, oversize payloads, subscription churn, panicking and recursing
//! synchronous subscribers, malformed input), then checks two things:
//!
//! - **nothing is lost without a record**: received + reported lag equals
//!   what was published, wherever a receiver could have missed something;
//! - **the bus stays healthy**: a normal publish and receive still work at
//!   the end.
//!
//! No test sleeps to let something happen: concurrent parts hand off through
//! channels and joins, and waits are bounded only as a guard against hangs.
#![cfg(feature = "runtime")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::Duration;

use astrid_events::rate_limiter::{MAX_IPC_PAYLOAD_BYTES, QuotaError};
use astrid_events::validate::{MAX_PRINCIPAL_BYTES, MAX_TOPIC_BYTES, MAX_TOPIC_SEGMENTS};
use astrid_events::{
    AstridEvent, DRR_QUANTUM_MIN_BYTES, EventBus, EventReceiver, EventSubscriber,
    MAX_SUBSCRIPTION_BUDGET_BYTES, MAX_SYNC_DISPATCH_DEPTH, PublishError, RoutedEventReceiver,
    Scope, SubscribeError, ipc_size_of,
};
use common::events::{ipc, route_charges, seq_principal};

/// Guard against a hang: far longer than any wait should take.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// Tests that measure memory or hold hundreds of MB run one at a time, so
/// they neither disturb each other's RSS readings nor stack their peaks.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

/// A normal publish on a fresh topic subscription and routed subscription
/// is received: the bus is still healthy.
fn assert_healthy(bus: &EventBus) {
    let mut topic = bus.subscribe_topic("health.check");
    let mut routed =
        bus.subscribe_topic_routed(uuid::Uuid::new_v4(), "health.*", "health", "health");
    let reached = bus.publish(ipc("health.check", Some("doctor"), 8));
    assert!(reached >= 2, "health publish reached {reached}");
    let got = topic
        .try_recv()
        .expect("topic receiver got the health event");
    assert_eq!(seq_principal(&got).1.as_deref(), Some("doctor"));
    let got = runtime()
        .block_on(routed.recv(Some(HANG_GUARD)))
        .expect("routed receiver got the health event");
    assert_eq!(seq_principal(&got).1.as_deref(), Some("doctor"));
    assert_eq!(routed.drain_lagged(), 0);
}

/// Drains a plain receiver without waiting; returns (received, lagged).
fn drain_plain(rx: &mut EventReceiver) -> (u64, u64) {
    let mut received = 0;
    while rx.try_recv().is_some() {
        received += 1;
    }
    (received, rx.drain_lagged())
}

// ---------------------------------------------------------------------------
// Flood vs trickle
// ---------------------------------------------------------------------------

/// One principal floods a route while another sends a trickle. The flood
/// stays within the route's byte budget (so nothing may be evicted), but a
/// backlog of thousands is queued before the consumer starts, so a FIFO
/// route would make every trickle event wait behind it.
///
/// The consumer asks the trickle thread for each trickle event and waits for
/// the publish to complete before receiving again, so it knows exactly how
/// many flood events it had taken when the trickle event was queued. Every
/// trickle event must arrive, in order, with at most the flood's DRR share
/// (what is left of its current turn plus nothing more: one quantum and one
/// event) received in between.
#[test]
fn flood_cannot_starve_a_trickle() {
    let flood_event = ipc("chat.room", Some("flooder"), 64);
    let (flood_first, flood_charge) = route_charges(&flood_event);
    // As many flood events as fit the budget beside 64 KiB for the trickle.
    let flood = ((MAX_SUBSCRIPTION_BUDGET_BYTES - 64 * 1024 - flood_first) / flood_charge) as u64;
    let prefill = flood * 2 / 5;
    let trickle_every = (flood / 50).max(1);
    assert!(
        flood >= 500,
        "a flood of {flood} events is too short a test"
    );
    // The flood may finish the turn it is in (deficit < quantum + one event)
    // before the trickle's first turn.
    let bound = (DRR_QUANTUM_MIN_BYTES + flood_charge) / flood_charge + 1;

    let bus = EventBus::new();
    let mut rx = bus.subscribe_topic_routed(uuid::Uuid::new_v4(), "chat.*", "room", "room");
    for _ in 0..prefill {
        bus.publish(flood_event.clone());
    }
    let flooder = {
        let bus = bus.clone();
        let event = flood_event.clone();
        thread::spawn(move || {
            for _ in prefill..flood {
                bus.publish(event.clone());
            }
        })
    };
    let (ask_tx, ask_rx) = mpsc::channel::<u64>();
    let (done_tx, done_rx) = mpsc::channel::<u64>();
    let trickler = {
        let bus = bus.clone();
        thread::spawn(move || {
            for k in ask_rx {
                let mut event = ipc("chat.room", Some("trickle"), 16);
                if let AstridEvent::Ipc { message, .. } = &mut event {
                    message.payload = astrid_events::IpcPayload::Custom {
                        data: serde_json::json!(k),
                    };
                }
                bus.publish(event);
                done_tx.send(k).expect("consumer alive");
            }
        })
    };

    let trickles = flood / trickle_every;
    let rt = runtime();
    let mut flood_seen = 0u64;
    let mut next_trickle = 0u64;
    let mut pending: Option<u64> = None; // flood count when it was queued
    let mut worst = 0;
    while flood_seen < flood || next_trickle < trickles {
        if pending.is_none()
            && next_trickle < trickles
            && flood_seen >= next_trickle * trickle_every
        {
            ask_tx.send(next_trickle).expect("trickler alive");
            assert_eq!(done_rx.recv_timeout(HANG_GUARD), Ok(next_trickle));
            pending = Some(flood_seen);
        }
        let event = rt
            .block_on(rx.recv(Some(HANG_GUARD)))
            .expect("an event is due");
        let AstridEvent::Ipc { message, .. } = event.as_ref() else {
            unreachable!("routed receivers get IPC only")
        };
        match message.principal.as_deref() {
            Some("flooder") => flood_seen += 1,
            Some("trickle") => {
                let astrid_events::IpcPayload::Custom { data } = &message.payload else {
                    unreachable!()
                };
                assert_eq!(
                    data,
                    &serde_json::json!(next_trickle),
                    "trickle out of order"
                );
                let queued_at = pending.take().expect("a trickle event was asked for");
                let between = (flood_seen - queued_at) as usize;
                assert!(
                    between <= bound,
                    "trickle #{next_trickle}: {between} flood events went first (DRR bound {bound})"
                );
                worst = worst.max(between);
                next_trickle += 1;
            }
            other => panic!("unexpected principal {other:?}"),
        }
    }
    drop(ask_tx);
    flooder.join().expect("flooder");
    trickler.join().expect("trickler");
    assert_eq!(next_trickle, trickles, "every trickle event arrived");
    assert_eq!(
        rx.drain_lagged(),
        0,
        "nothing was evicted within the budget"
    );
    assert!(rx.try_recv_one().is_none());
    eprintln!("flood vs trickle: worst {worst} flood events before a trickle (bound {bound})");
    assert_healthy(&bus);
}

/// The same, with a flood far beyond the budget and the trickle free-running:
/// evictions happen, and then received + lagged == published exactly, the
/// budget holds at every observation, and each principal's events that do
/// arrive are in publish order.
#[test]
fn flood_over_budget_is_fully_accounted() {
    const PREFILL: u64 = 1_000;
    const FLOOD: u64 = 6_000;
    const TRICKLE: u64 = 300;
    let _heavy = heavy();
    let bus = EventBus::new();
    let mut rx = bus.subscribe_topic_routed(uuid::Uuid::new_v4(), "chat.*", "room", "room");
    // Twice the budget before anyone consumes: evictions are certain.
    for _ in 0..PREFILL {
        bus.publish(ipc("chat.room", Some("flooder"), 2_000));
    }
    let publishing = Arc::new(AtomicUsize::new(2));
    let spawn = |principal: &'static str, n: u64, bytes: usize| {
        let bus = bus.clone();
        let publishing = Arc::clone(&publishing);
        thread::spawn(move || {
            for _ in 0..n {
                bus.publish(ipc("chat.room", Some(principal), bytes));
            }
            publishing.fetch_sub(1, Ordering::SeqCst);
        })
    };
    let flooder = spawn("flooder", FLOOD - PREFILL, 2_000);
    let trickler = spawn("trickle", TRICKLE, 16);

    let rt = runtime();
    let (mut received, mut lagged) = (0u64, 0u64);
    let mut last_seq = std::collections::HashMap::<String, u64>::new();
    loop {
        // Read before receiving: once it is 0, everything is queued.
        let finished = publishing.load(Ordering::SeqCst) == 0;
        let batch = rx.try_drain(64 * 1024);
        assert!(rx.total_bytes() <= MAX_SUBSCRIPTION_BUDGET_BYTES);
        lagged += rx.drain_lagged();
        if batch.is_empty() {
            if finished {
                break;
            }
            // Wait for the next event instead of spinning; the bound only
            // guards against a hang.
            if let Some(event) = rt.block_on(rx.recv(Some(Duration::from_millis(50)))) {
                record(&mut received, &mut last_seq, &event);
            }
            continue;
        }
        for event in &batch {
            record(&mut received, &mut last_seq, event);
        }
    }
    flooder.join().expect("flooder");
    trickler.join().expect("trickler");
    lagged += rx.drain_lagged();
    assert_eq!(
        received + lagged,
        FLOOD + TRICKLE,
        "received {received} + lagged {lagged}"
    );
    assert!(lagged > 0, "the flood should have overflowed the budget");
    assert_healthy(&bus);

    fn record(
        received: &mut u64,
        last: &mut std::collections::HashMap<String, u64>,
        event: &AstridEvent,
    ) {
        let (seq, principal) = seq_principal(event);
        let principal = principal.expect("named");
        let prev = last.insert(principal.clone(), seq).unwrap_or(0);
        assert!(seq > prev, "{principal}: seq {seq} after {prev}");
        *received += 1;
    }
}

// ---------------------------------------------------------------------------
// Oversize payloads
// ---------------------------------------------------------------------------

/// An IPC event whose accounted size (guest bytes + topic) is exactly
/// `size`: a JSON string of `n` bytes has `n + 2` guest bytes.
fn event_of_accounted_size(topic: &str, size: usize) -> AstridEvent {
    let event = ipc(topic, Some("mallory"), size - topic.len() - 2);
    assert_eq!(ipc_size_of(&Arc::new(event.clone())), size);
    event
}

#[test]
fn five_mib_plus_one_is_refused_by_try_publish_and_rejected_by_routes() {
    let _heavy = heavy();
    let bus = EventBus::new();
    let mut plain = bus.subscribe();
    let mut topic = bus.subscribe_topic("big.*");
    let mut routed = bus.subscribe_topic_routed(uuid::Uuid::new_v4(), "big.*", "big", "big");

    // At the limit: accepted by the checks. Over the route's 1 MiB budget,
    // so the route rejects it and counts it.
    let at_limit = event_of_accounted_size("big.one", MAX_IPC_PAYLOAD_BYTES);
    assert_eq!(bus.try_publish(at_limit).expect("at the limit"), 2);

    // One byte over: refused with a typed error, the event handed back.
    let over = event_of_accounted_size("big.one", MAX_IPC_PAYLOAD_BYTES + 1);
    let err = bus.try_publish(over.clone()).expect_err("over the limit");
    match &err {
        PublishError::Quota {
            error: QuotaError::PayloadTooLarge { size, max },
            ..
        } => {
            assert_eq!(*size, MAX_IPC_PAYLOAD_BYTES + 1);
            assert_eq!(*max, MAX_IPC_PAYLOAD_BYTES);
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("rate limiter"), "{err}");
    let handed_back = err.into_event();
    assert_eq!(handed_back, over, "the refused event comes back unchanged");

    // `publish` checks nothing (0.8.0 behaviour): plain and topic receivers
    // get it; the route rejects it (over its budget) and reports the loss.
    assert_eq!(bus.publish(handed_back), 2);

    assert_eq!(drain_plain(&mut plain), (2, 0));
    assert_eq!(drain_plain(&mut topic), (2, 0));
    assert!(routed.try_recv_one().is_none());
    assert_eq!(routed.total_bytes(), 0);
    assert_eq!(
        routed.drain_lagged(),
        2,
        "both oversize events counted as lag"
    );

    // Charged exactly the route budget: still goes through the route; one
    // byte more is rejected. Each payload byte adds one held byte.
    let (base, _) = route_charges(&ipc("big.one", Some("mallory"), 0));
    let fill = MAX_SUBSCRIPTION_BUDGET_BYTES - base;
    assert_eq!(bus.publish(ipc("big.one", Some("mallory"), fill)), 3);
    assert_eq!(routed.total_bytes(), MAX_SUBSCRIPTION_BUDGET_BYTES);
    assert!(routed.try_recv_one().is_some());
    assert_eq!(routed.drain_lagged(), 0);
    assert_eq!(bus.publish(ipc("big.one", Some("mallory"), fill + 1)), 2);
    assert_eq!(routed.drain_lagged(), 1);
    assert_healthy(&bus);
}

// ---------------------------------------------------------------------------
// Subscription churn
// ---------------------------------------------------------------------------

/// Resident set size in bytes, from /proc/self/statm (Linux only).
fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// 100,000 routes subscribed and dropped: the count returns to 0, and
/// memory is returned for reuse.
///
/// Memory check: allocators keep freed pages, so RSS need not fall after the
/// drop. What a leak would do is make a second identical round grow RSS by
/// about as much as the first; the test allows the second round a quarter of
/// the first round's growth.
#[test]
fn hundred_thousand_routes_come_and_go() {
    const ROUTES: usize = 100_000;
    let _heavy = heavy();
    let bus = EventBus::new();
    let patterns = ["tool.v1.*", "llm.v1.stream.*", "a.*.c", "capsule.x.ready"];
    let round = |bus: &EventBus| {
        let receivers: Vec<RoutedEventReceiver> = (0..ROUTES)
            .map(|i| {
                bus.subscribe_topic_routed(
                    uuid::Uuid::nil(),
                    format!("{}.{}", patterns[i % patterns.len()], i % 1000),
                    "churn",
                    "churn",
                )
            })
            .collect();
        assert_eq!(bus.routed_subscription_count(), ROUTES);
        // A publish while they exist reaches exactly the matching ones.
        let reached = bus.publish(ipc("capsule.x.ready.7", None, 4));
        // Patterns `capsule.x.ready.N` with N = i % 1000 = 7 (every such i
        // is 3 mod 4, since 4 divides 1000).
        assert_eq!(reached, ROUTES / 1000);
        drop(receivers);
        assert_eq!(bus.routed_subscription_count(), 0);
        assert_eq!(bus.publish(ipc("capsule.x.ready.7", None, 4)), 0);
    };
    let before = rss_bytes();
    round(&bus);
    let after_first = rss_bytes();
    round(&bus);
    let after_second = rss_bytes();
    if let (Some(before), Some(first), Some(second)) = (before, after_first, after_second) {
        let first_growth = first.saturating_sub(before);
        let second_growth = second.saturating_sub(first);
        eprintln!(
            "100k routes: RSS +{} KiB first round, +{} KiB second round",
            first_growth / 1024,
            second_growth / 1024
        );
        assert!(
            second_growth <= first_growth / 4 + 8 * 1024 * 1024,
            "second round grew RSS by {second_growth} bytes after {first_growth}: leak?"
        );
    }
    assert_healthy(&bus);
}

// ---------------------------------------------------------------------------
// Panicking synchronous subscriber
// ---------------------------------------------------------------------------

const INTENTIONAL: &str = "abuse test: intentional subscriber panic";

/// Silences the panics this file causes on purpose; every other panic still
/// goes to the default hook.
fn quiet_intentional_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&INTENTIONAL) {
                default(info);
            }
        }));
    });
}

struct Panicker;
impl EventSubscriber for Panicker {
    fn on_event(&self, _event: &AstridEvent, _bus: &EventBus) {
        std::panic::panic_any(INTENTIONAL);
    }
    fn name(&self) -> &str {
        "panicker"
    }
}

#[derive(Default)]
struct Counter(AtomicU64);
impl EventSubscriber for Counter {
    fn on_event(&self, _event: &AstridEvent, _bus: &EventBus) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn panicking_subscriber_under_load_isolates() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 1_500;
    quiet_intentional_panics();
    let bus = EventBus::new();
    let before = Arc::new(Counter::default());
    let after = Arc::new(Counter::default());
    bus.register_subscriber(before.clone());
    let panicker = bus.register_subscriber(Arc::new(Panicker));
    bus.register_subscriber(after.clone());
    let mut plain = bus.subscribe();
    let mut routed = bus.subscribe_topic_routed(uuid::Uuid::new_v4(), "load.*", "load", "load");

    let publishers: Vec<_> = (0..THREADS)
        .map(|t| {
            let bus = bus.clone();
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let principal = format!("p{t}");
                    bus.publish(ipc(&format!("load.{}", i % 3), Some(&principal), 8));
                }
            })
        })
        .collect();
    // Drain the plain receiver concurrently so it mostly keeps up; whatever
    // it misses is counted.
    let (mut received, mut lagged) = (0u64, 0u64);
    let rt = runtime();
    while received + lagged < THREADS * PER_THREAD {
        let event = rt.block_on(async { tokio::time::timeout(HANG_GUARD, plain.recv()).await });
        assert!(matches!(event, Ok(Some(_))), "plain receiver stalled");
        received += 1;
        lagged += plain.drain_lagged();
    }
    for p in publishers {
        p.join().expect("a publisher panicked: isolation failed");
    }
    let total = THREADS * PER_THREAD;
    assert_eq!(received + lagged, total);
    assert_eq!(
        before.0.load(Ordering::Relaxed),
        total,
        "subscriber before the panicker"
    );
    assert_eq!(
        after.0.load(Ordering::Relaxed),
        total,
        "subscriber after the panicker"
    );
    let mut routed_received = 0u64;
    while routed.try_recv_one().is_some() {
        routed_received += 1;
    }
    assert_eq!(routed_received + routed.drain_lagged(), total);
    assert!(bus.unregister_subscriber(panicker));
    assert_healthy(&bus);
}

// ---------------------------------------------------------------------------
// Recursive publish from a synchronous subscriber
// ---------------------------------------------------------------------------

/// Publishes again from inside every `on_event`: unbounded recursion, were
/// it not for the dispatch depth limit.
struct Recurser {
    calls: AtomicUsize,
}
impl EventSubscriber for Recurser {
    fn on_event(&self, _event: &AstridEvent, bus: &EventBus) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        // Registry and bus calls from inside must not deadlock either.
        let _ = bus.sync_subscriber_count();
        bus.publish(ipc("loop.again", Some("recurser"), 256));
    }
}

#[test]
fn recursive_publish_is_bounded_by_the_dispatch_depth() {
    let bus = EventBus::new();
    let recurser = Arc::new(Recurser {
        calls: AtomicUsize::new(0),
    });
    bus.register_subscriber(recurser.clone());
    let mut topic = bus.subscribe_topic("loop.*");
    let finished = Arc::new(AtomicBool::new(false));
    let worker = {
        let bus = bus.clone();
        let finished = Arc::clone(&finished);
        thread::Builder::new()
            .name("recursion".into())
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                for _ in 0..3 {
                    bus.publish(ipc("loop.start", Some("user"), 8));
                }
                finished.store(true, Ordering::SeqCst);
            })
            .expect("spawn")
    };
    worker.join().expect("no stack overflow, no panic");
    assert!(finished.load(Ordering::SeqCst));
    // Each top-level publish: the subscriber runs at depths 0..MAX-1, each
    // run publishes once more; the deepest publish reaches async receivers
    // only.
    assert_eq!(
        recurser.calls.load(Ordering::Relaxed),
        3 * MAX_SYNC_DISPATCH_DEPTH
    );
    let per_round = MAX_SYNC_DISPATCH_DEPTH as u64 + 1;
    assert_eq!(drain_plain(&mut topic), (3 * per_round, 0));
    // The depth was restored: a later publish on this thread reaches the
    // synchronous subscriber again.
    bus.publish(ipc("loop.start", Some("user"), 8));
    assert_eq!(
        recurser.calls.load(Ordering::Relaxed),
        4 * MAX_SYNC_DISPATCH_DEPTH
    );
    assert_eq!(drain_plain(&mut topic), (per_round, 0));
    assert_healthy(&bus);
}

// ---------------------------------------------------------------------------
// Invalid topics, patterns and principals
// ---------------------------------------------------------------------------

fn invalid_topics() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        ".",
        "..",
        "a..b",
        ".a",
        "a.",
        "a.*",
        "*",
        "a.*.b",
        "a*",
        "**",
        "a\nb",
        "a\u{0}b",
        "a\u{7f}",
        "a.\u{85}",
        "\u{1b}[31m",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.push("x".repeat(MAX_TOPIC_BYTES + 1));
    v.push("é".repeat(MAX_TOPIC_BYTES / 2 + 1));
    v.push(vec!["s"; MAX_TOPIC_SEGMENTS + 1].join("."));
    v.push("a.".repeat(5_000));
    v.push(".".repeat(100_000));
    v
}

fn invalid_patterns() -> Vec<String> {
    let mut v: Vec<String> = [
        "", ".", "a..b", ".a", "a.", "a*", "**", "*a.b", "a.**", "a\tb", "a\u{9f}", "\u{0}",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.push("*".repeat(MAX_TOPIC_BYTES + 1));
    v.push(vec!["*"; MAX_TOPIC_SEGMENTS + 1].join("."));
    v
}

fn invalid_principals() -> Vec<String> {
    vec![
        String::new(),
        "x".repeat(MAX_PRINCIPAL_BYTES + 1),
        "alice\n".into(),
        "\u{0}".into(),
        "bob\u{7f}".into(),
    ]
}

#[test]
fn invalid_input_is_refused_with_typed_errors_and_never_panics() {
    let bus = EventBus::new();
    let mut plain = bus.subscribe();
    let mut published = 0u64;
    for _ in 0..20 {
        for topic in invalid_topics() {
            let event = ipc(&topic, Some("mallory"), 4);
            match bus.try_publish(event.clone()) {
                Err(PublishError::InvalidTopic { event: back, .. }) => {
                    assert_eq!(*back, event, "event handed back unchanged")
                }
                other => panic!("topic {topic:?}: expected InvalidTopic, got {other:?}"),
            }
            // The unchecked path takes it (0.8.0 behaviour) without panicking.
            bus.publish(event);
            published += 1;
            // Unchecked subscriptions on garbage must not panic either.
            drop(bus.subscribe_topic(topic.as_str()));
            drop(bus.subscribe_topic_routed(uuid::Uuid::nil(), topic.as_str(), "x", "x"));
        }
        for pattern in invalid_patterns() {
            assert!(matches!(
                bus.subscription(pattern.as_str()).try_subscribe(),
                Err(SubscribeError::InvalidPattern(_))
            ));
            assert!(matches!(
                bus.subscription(pattern.as_str())
                    .routed(uuid::Uuid::nil(), "x")
                    .try_subscribe(),
                Err(SubscribeError::InvalidPattern(_))
            ));
        }
        for principal in invalid_principals() {
            let event = ipc("ok.topic", Some(&principal), 4);
            assert!(matches!(
                bus.try_publish(event.clone()),
                Err(PublishError::InvalidPrincipal { .. })
            ));
            bus.publish(event);
            published += 1;
            assert!(matches!(
                bus.subscription("ok.*")
                    .routed(uuid::Uuid::nil(), "x")
                    .scope(Scope::Principal(principal.clone()))
                    .try_subscribe(),
                Err(SubscribeError::InvalidScope(_))
            ));
        }
        // Errors render without echoing megabytes of input.
        let long = "é".repeat(50_000);
        let err = bus.try_publish(ipc(&long, None, 0)).expect_err("too long");
        assert!(err.to_string().len() < 400, "error message echoes too much");
    }
    assert_eq!(
        bus.subscriber_count(),
        1,
        "every garbage subscription dropped"
    );
    assert_eq!(bus.routed_subscription_count(), 0);
    let (received, lagged) = drain_plain(&mut plain);
    assert_eq!(received + lagged, published);
    assert_healthy(&bus);
}
