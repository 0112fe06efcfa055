//! Publish order under concurrent publishers: every receiver kind sees the
//! IPC events it gets in increasing `seq` (see the `sequencer` module docs).
//!
//! Four threads publish on clones of one bus, each cycling through the same
//! principals (so one principal's events come from every thread), while a
//! synchronous subscriber republishes some events from inside `on_event`
//! and late `with_last` subscriptions join mid-stream. Afterwards each
//! receiver's events are checked: inversions are counted and must be 0,
//! and nothing may be missing. The NATS exporter reads a plain
//! `subscribe_as` receiver, so the plain receiver here covers its order.
#![cfg(feature = "runtime")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::time::Duration;

use astrid_events::{
    AstridEvent, EventBus, EventMetadata, EventReceiver, EventSubscriber, IpcMessage, IpcPayload,
    RetentionPolicy, RoutedEventReceiver,
};
use serde_json::json;
use uuid::Uuid;

const PUBLISHERS: u64 = 4;
const PER_PUBLISHER: u64 = 20_000;
const PRINCIPALS: [&str; 3] = ["alice", "bob", "carol"];
/// The echoing subscriber republishes every event whose `seq` is a multiple
/// of this.
const ECHO_EVERY: u64 = 97;
/// Only a deadlock takes this long.
const DEADLINE: Duration = Duration::from_secs(300);

fn ipc(topic: &str, principal: &str) -> AstridEvent {
    AstridEvent::Ipc {
        metadata: EventMetadata::new("order"),
        message: IpcMessage::new(topic, IpcPayload::Custom { data: json!({}) }, Uuid::nil())
            .with_principal(principal),
    }
}

fn seq_and_principal(event: &AstridEvent) -> (u64, String) {
    match event {
        AstridEvent::Ipc { message, .. } => {
            (message.seq, message.principal.clone().unwrap_or_default())
        }
        other => panic!(
            "only IPC events are published here, got {}",
            other.event_type()
        ),
    }
}

/// Pairs `(earlier, later)` in receive order whose `seq` goes down.
fn inversions(seqs: &[u64]) -> usize {
    seqs.windows(2).filter(|w| w[1] <= w[0]).count()
}

/// Inversions within each principal's events.
fn inversions_per_principal(events: &[(u64, String)]) -> usize {
    let mut by_principal: HashMap<&str, Vec<u64>> = HashMap::new();
    for (seq, principal) in events {
        by_principal.entry(principal).or_default().push(*seq);
    }
    by_principal.values().map(|s| inversions(s)).sum()
}

/// Records the `seq` of every event it is called with, in call order.
#[derive(Default)]
struct Recorder(Mutex<Vec<u64>>);

impl EventSubscriber for Recorder {
    fn on_event(&self, event: &AstridEvent, _: &EventBus) {
        self.0.lock().unwrap().push(seq_and_principal(event).0);
    }
    fn name(&self) -> &str {
        "recorder"
    }
}

/// Republishes some events from inside `on_event` (on another topic, so the
/// echoes are not echoed again).
#[derive(Default)]
struct Echo(AtomicU64);

impl EventSubscriber for Echo {
    fn on_event(&self, event: &AstridEvent, bus: &EventBus) {
        let (seq, principal) = seq_and_principal(event);
        if seq % ECHO_EVERY == 0 {
            bus.publish(ipc("order.echo", &principal));
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn accepts(&self, event: &AstridEvent) -> bool {
        matches!(event, AstridEvent::Ipc { message, .. } if message.topic != "order.echo")
    }
    fn name(&self) -> &str {
        "echo"
    }
}

fn drain_plain(rx: &mut EventReceiver) -> Vec<(u64, String)> {
    let events = std::iter::from_fn(|| rx.try_recv())
        .map(|e| seq_and_principal(&e))
        .collect();
    assert_eq!(rx.drain_lagged(), 0, "sized to hold every event");
    events
}

/// Everything the route queued, plus how many it dropped (budget).
fn drain_routed(rx: &mut RoutedEventReceiver) -> (Vec<(u64, String)>, u64) {
    let events = std::iter::from_fn(|| rx.try_recv_one())
        .map(|e| seq_and_principal(&e))
        .collect();
    (events, rx.drain_lagged())
}

struct Outcome {
    published: u64,
    plain: Vec<(u64, String)>,
    topic: Vec<(u64, String)>,
    topic_late: Vec<(u64, String)>,
    routed: (Vec<(u64, String)>, u64),
    routed_scoped: (Vec<(u64, String)>, u64),
    routed_late: (Vec<(u64, String)>, u64),
    sync_seen: Vec<u64>,
}

fn run() -> Outcome {
    let total = PUBLISHERS * PER_PUBLISHER;
    let bus = EventBus::builder()
        // Plain and topic queues hold everything: no loss to account for.
        .capacity(2 * total as usize)
        .retention(RetentionPolicy::new(["order.*"]))
        .build();
    let mut plain = bus.subscribe();
    let mut topic = bus.subscribe_topic("order.*");
    let capsule = Uuid::new_v4();
    let mut routed = bus.subscribe_topic_routed(capsule, "order.*", "order", "shared");
    let mut routed_scoped = bus.subscribe_topic_routed_scoped(
        capsule,
        "order.*",
        "order",
        "scoped",
        Some(Some("bob".to_owned())),
    );
    let recorder = Arc::new(Recorder::default());
    let echo = Arc::new(Echo::default());
    bus.register_subscriber(echo.clone());
    bus.register_subscriber(recorder.clone());

    let start = Barrier::new(PUBLISHERS as usize + 1);
    let (topic_late, routed_late) = std::thread::scope(|s| {
        for t in 0..PUBLISHERS {
            let bus = bus.clone();
            let start = &start;
            s.spawn(move || {
                start.wait();
                for i in 0..PER_PUBLISHER {
                    let principal = PRINCIPALS[((t + i) % PRINCIPALS.len() as u64) as usize];
                    bus.publish(ipc(&format!("order.t{}", i % 8), principal));
                }
            });
        }
        start.wait();
        // Join mid-stream: wait (no timing assumption, just a trigger) until
        // a quarter of the events went through.
        while (recorder.0.lock().unwrap().len() as u64) < total / 4 {
            std::thread::yield_now();
        }
        let topic_late = bus
            .subscription("order.*")
            .name("late")
            .with_last()
            .subscribe();
        let routed_late = bus
            .subscription("order.*")
            .name("late")
            .with_last()
            .routed(capsule, "order")
            .subscribe();
        (topic_late, routed_late)
    });
    let (mut topic_late, mut routed_late) = (topic_late, routed_late);
    let published = total + echo.0.load(Ordering::Relaxed);
    let sync_seen = recorder.0.lock().unwrap().clone();
    Outcome {
        published,
        plain: drain_plain(&mut plain),
        topic: drain_plain(&mut topic),
        topic_late: drain_plain(&mut topic_late),
        routed: drain_routed(&mut routed),
        routed_scoped: drain_routed(&mut routed_scoped),
        routed_late: drain_routed(&mut routed_late),
        sync_seen,
    }
}

#[test]
fn every_receiver_kind_sees_increasing_seq_under_four_publishers() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run());
    });
    let o = match rx.recv_timeout(DEADLINE) {
        Ok(outcome) => outcome,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("deadlock: publishers did not finish"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the run panicked"),
    };
    let seqs = |events: &[(u64, String)]| events.iter().map(|e| e.0).collect::<Vec<_>>();

    // Every kind first, so a failure shows them all.
    let counts = [
        ("plain", inversions(&seqs(&o.plain))),
        ("topic", inversions(&seqs(&o.topic))),
        ("sync", inversions(&o.sync_seen)),
        (
            "routed, per principal",
            inversions_per_principal(&o.routed.0),
        ),
        ("routed, scoped", inversions(&seqs(&o.routed_scoped.0))),
        ("topic, with last", inversions(&seqs(&o.topic_late))),
        (
            "routed, with last",
            inversions_per_principal(&o.routed_late.0),
        ),
    ];
    assert!(
        counts.iter().all(|(_, n)| *n == 0),
        "inversions by receiver kind: {counts:?}"
    );

    // Plain receiver: every event, seq 1..=published in order.
    assert_eq!(seqs(&o.plain), (1..=o.published).collect::<Vec<_>>());

    // Topic receiver: every event (all match), in order.
    assert_eq!(o.topic.len() as u64, o.published);

    // Synchronous subscriber: every event, one at a time, in order,
    // including the echoes published from inside `on_event`.
    assert_eq!(o.sync_seen.len() as u64, o.published);
    assert!(
        o.published > PUBLISHERS * PER_PUBLISHER,
        "echoes were published"
    );

    // Routed, shared by every principal: each principal's events in order.
    let (routed, lost) = &o.routed;
    assert_eq!(routed.len() as u64 + lost, o.published, "routed accounting");
    assert_eq!(
        routed
            .iter()
            .map(|e| e.1.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        PRINCIPALS.len(),
        "every principal reached the shared route"
    );

    // Routed, scoped to one principal (published from every thread).
    let (scoped, lost) = &o.routed_scoped;
    assert!(scoped.iter().all(|e| e.1 == "bob"));
    let bob = o.plain.iter().filter(|e| e.1 == "bob").count() as u64;
    assert_eq!(scoped.len() as u64 + lost, bob, "scoped routed accounting");

    // Late joiners: retained events (at most one per topic, oldest first),
    // then every live event, all in order.
    let late = seqs(&o.topic_late);
    assert_eq!(late.last(), Some(&o.published));
    let gaps = late.windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert!(
        gaps <= 9,
        "only the retained prefix (9 topics) may skip seqs: {gaps} gaps"
    );
}
