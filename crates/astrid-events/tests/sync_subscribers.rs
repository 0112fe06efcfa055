//! Integration tests of synchronous subscribers (`EventSubscriber`):
//! registration, `accepts`, ordering against async receivers, panic
//! isolation, re-entrancy (and the order it yields), the recursion bound and
//! ownership. Order under concurrent publishers is tested in `order.rs`.
//!
//! Assertions are never made inside `on_event`: the bus catches panics from
//! subscribers, so a failed assertion there would be swallowed. Subscribers
//! record what they saw and the test asserts afterwards.
#![cfg(feature = "runtime")]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use astrid_events::{
    AstridEvent, EventBus, EventMetadata, EventReceiver, EventSubscriber, IpcMessage, IpcPayload,
    MAX_SYNC_DISPATCH_DEPTH, SubscriberId,
};
use serde_json::json;
use uuid::Uuid;

/// Bound for joins: only there so a deadlock fails instead of hanging.
const WAIT: Duration = Duration::from_secs(5);

fn ipc(topic: &str) -> AstridEvent {
    AstridEvent::Ipc {
        metadata: EventMetadata::new("test"),
        message: IpcMessage::new(topic, IpcPayload::Custom { data: json!({}) }, Uuid::nil()),
    }
}

fn custom(name: &str) -> AstridEvent {
    AstridEvent::Custom {
        metadata: EventMetadata::new("test"),
        name: name.to_owned(),
        data: json!(null),
    }
}

/// Runs `f` on its own thread and fails the test if it does not finish in
/// time (a deadlock) or panics.
fn run_bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let out = f();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(WAIT) {
        Ok(()) => handle.join().expect("worker thread"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The closure panicked before sending: surface the panic.
            match handle.join() {
                Ok(out) => out,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("deadlock: publish did not return"),
    }
}

/// Counts calls.
#[derive(Default)]
struct Counter {
    calls: AtomicUsize,
}

impl EventSubscriber for Counter {
    fn on_event(&self, _: &AstridEvent, _: &EventBus) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
    fn name(&self) -> &str {
        "counter"
    }
}

impl Counter {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[test]
fn register_call_and_unregister() {
    let bus = EventBus::new();
    let a = Arc::new(Counter::default());
    let b = Arc::new(Counter::default());
    let id_a = bus.register_subscriber(a.clone());
    let id_b = bus.register_subscriber(b.clone());
    assert_ne!(id_a, id_b);
    assert_eq!(bus.sync_subscriber_count(), 2);

    bus.publish(custom("one"));
    bus.publish(ipc("two"));
    // Calls happen inside publish: visible as soon as it returns.
    assert_eq!((a.calls(), b.calls()), (2, 2));

    assert!(bus.unregister_subscriber(id_a));
    assert!(!bus.unregister_subscriber(id_a), "already unregistered");
    assert_eq!(bus.sync_subscriber_count(), 1);
    bus.publish(custom("three"));
    assert_eq!((a.calls(), b.calls()), (2, 3));

    // The registry no longer holds the unregistered subscriber.
    assert_eq!(Arc::strong_count(&a), 1);

    // The same subscriber registered twice is called twice.
    let id_b2 = bus.register_subscriber(b.clone());
    assert_ne!(id_b2, id_b);
    bus.publish(custom("four"));
    assert_eq!(b.calls(), 5);
    assert!(bus.unregister_subscriber(id_b));
    assert!(bus.unregister_subscriber(id_b2));
    assert_eq!(bus.sync_subscriber_count(), 0);
    bus.publish(custom("five"));
    assert_eq!(b.calls(), 5);
}

#[test]
fn subscriber_sees_the_stamped_event() {
    struct Seqs(Mutex<Vec<u64>>);
    impl EventSubscriber for Seqs {
        fn on_event(&self, event: &AstridEvent, _: &EventBus) {
            if let AstridEvent::Ipc { message, .. } = event {
                self.0.lock().unwrap().push(message.seq);
            }
        }
    }
    let bus = EventBus::new();
    let seqs = Arc::new(Seqs(Mutex::new(Vec::new())));
    bus.register_subscriber(seqs.clone());
    bus.publish(ipc("a"));
    bus.publish(custom("b"));
    bus.clone().publish(ipc("c"));
    assert_eq!(*seqs.0.lock().unwrap(), vec![1, 2]);
}

#[test]
fn accepts_false_means_on_event_is_not_called() {
    #[derive(Default)]
    struct OnlyIpc {
        asked: AtomicUsize,
        called: Mutex<Vec<String>>,
    }
    impl EventSubscriber for OnlyIpc {
        fn on_event(&self, event: &AstridEvent, _: &EventBus) {
            self.called
                .lock()
                .unwrap()
                .push(event.event_type().to_owned());
        }
        fn accepts(&self, event: &AstridEvent) -> bool {
            self.asked.fetch_add(1, Ordering::SeqCst);
            matches!(event, AstridEvent::Ipc { .. })
        }
    }
    struct Never(AtomicUsize);
    impl EventSubscriber for Never {
        fn on_event(&self, _: &AstridEvent, _: &EventBus) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn accepts(&self, _: &AstridEvent) -> bool {
            false
        }
    }

    let bus = EventBus::new();
    let only_ipc = Arc::new(OnlyIpc::default());
    let never = Arc::new(Never(AtomicUsize::new(0)));
    let counter = Arc::new(Counter::default());
    bus.register_subscriber(only_ipc.clone());
    bus.register_subscriber(never.clone());
    bus.register_subscriber(counter.clone());

    bus.publish(custom("x"));
    bus.publish(ipc("y"));
    bus.publish(custom("z"));

    assert_eq!(only_ipc.asked.load(Ordering::SeqCst), 3);
    let called = only_ipc.called.lock().unwrap().clone();
    assert_eq!(called.len(), 1);
    assert_eq!(called[0], ipc("q").event_type());
    assert_eq!(never.0.load(Ordering::SeqCst), 0);
    assert_eq!(counter.calls(), 3, "the default accepts takes everything");
}

#[test]
fn async_receivers_get_the_event_before_sync_subscribers_run() {
    /// Owns receivers on the bus; on each event, checks that the very same
    /// event is already queued on them.
    struct Checker {
        plain: Mutex<EventReceiver>,
        topic: Mutex<EventReceiver>,
        seen: Mutex<Vec<Result<(), String>>>,
    }
    impl EventSubscriber for Checker {
        fn on_event(&self, event: &AstridEvent, _: &EventBus) {
            let id = event.metadata().event_id;
            let mut outcome = Ok(());
            match self.plain.lock().unwrap().try_recv() {
                Some(e) if e.metadata().event_id == id => {}
                other => outcome = Err(format!("plain receiver had {other:?}")),
            }
            if matches!(event, AstridEvent::Ipc { .. }) {
                match self.topic.lock().unwrap().try_recv() {
                    Some(e) if e.metadata().event_id == id => {}
                    other => outcome = Err(format!("topic receiver had {other:?}")),
                }
            }
            self.seen.lock().unwrap().push(outcome);
        }
    }

    let bus = EventBus::new();
    let checker = Arc::new(Checker {
        plain: Mutex::new(bus.subscribe()),
        topic: Mutex::new(bus.subscribe_topic("order.*")),
        seen: Mutex::new(Vec::new()),
    });
    bus.register_subscriber(checker.clone());
    for i in 0..20 {
        if i % 2 == 0 {
            assert_eq!(bus.publish(ipc("order.x")), 2);
        } else {
            assert_eq!(bus.publish(custom("order")), 1);
        }
    }
    let seen = checker.seen.lock().unwrap();
    assert_eq!(seen.len(), 20);
    for (i, outcome) in seen.iter().enumerate() {
        assert_eq!(outcome, &Ok(()), "event {i}");
    }
}

#[test]
fn panicking_subscriber_is_isolated() {
    struct Panics {
        in_accepts: bool,
        calls: AtomicUsize,
    }
    impl EventSubscriber for Panics {
        fn on_event(&self, _: &AstridEvent, _: &EventBus) {
            self.calls.fetch_add(1, Ordering::SeqCst);
            panic!("subscriber failure (expected by the test)");
        }
        fn accepts(&self, _: &AstridEvent) -> bool {
            if self.in_accepts {
                self.calls.fetch_add(1, Ordering::SeqCst);
                panic!("accepts failure (expected by the test)");
            }
            true
        }
        fn name(&self) -> &str {
            "panics"
        }
    }

    let bus = EventBus::new();
    let mut rx = bus.subscribe();
    let before = Arc::new(Counter::default());
    let panics_on_event = Arc::new(Panics {
        in_accepts: false,
        calls: AtomicUsize::new(0),
    });
    let middle = Arc::new(Counter::default());
    let panics_in_accepts = Arc::new(Panics {
        in_accepts: true,
        calls: AtomicUsize::new(0),
    });
    let after = Arc::new(Counter::default());
    bus.register_subscriber(before.clone());
    bus.register_subscriber(panics_on_event.clone());
    bus.register_subscriber(middle.clone());
    bus.register_subscriber(panics_in_accepts.clone());
    bus.register_subscriber(after.clone());

    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        (bus.publish(ipc("p.1")), bus.publish(custom("p.2")))
    }));
    assert_eq!(outcome.ok(), Some((1, 1)), "publish returned normally");
    assert_eq!(panics_on_event.calls.load(Ordering::SeqCst), 2);
    assert_eq!(panics_in_accepts.calls.load(Ordering::SeqCst), 2);
    for c in [&before, &middle, &after] {
        assert_eq!(c.calls(), 2, "every other subscriber was called");
    }
    // The bus is fully usable afterwards.
    assert_eq!(bus.publish(ipc("p.3")), 1);
    assert_eq!(after.calls(), 3);
    let names: Vec<String> = std::iter::from_fn(|| rx.try_recv())
        .map(|e| e.event_type().to_owned())
        .collect();
    assert_eq!(names.len(), 3);
    let mut topic = bus.subscribe_topic("p.*");
    assert_eq!(bus.publish(ipc("p.4")), 2);
    assert!(topic.try_recv().is_some());
}

#[test]
fn on_event_may_publish_register_and_unregister_on_the_same_bus() {
    /// On a trigger event: publishes a follow-up, subscribes a topic
    /// receiver, registers a new subscriber and unregisters itself.
    struct Reentrant {
        id: Mutex<Option<SubscriberId>>,
        registered: Arc<Counter>,
        results: Mutex<Vec<String>>,
        kept: Mutex<Vec<EventReceiver>>,
    }
    impl EventSubscriber for Reentrant {
        fn on_event(&self, event: &AstridEvent, bus: &EventBus) {
            let AstridEvent::Custom { name, .. } = event else {
                return;
            };
            if name != "trigger" {
                return;
            }
            let reached = bus.publish(ipc("follow.up"));
            let rx = bus.subscribe_topic("follow.*");
            let new_id = bus.register_subscriber(self.registered.clone());
            let own = self.id.lock().unwrap().take();
            let unregistered = own.is_some_and(|id| bus.unregister_subscriber(id));
            let count = bus.sync_subscriber_count();
            self.kept.lock().unwrap().push(rx);
            let distinct = own != Some(new_id);
            self.results.lock().unwrap().push(format!(
                "reached={reached} unregistered={unregistered} count={count} distinct={distinct}"
            ));
        }
    }

    let bus = EventBus::new();
    let reentrant = Arc::new(Reentrant {
        id: Mutex::new(None),
        registered: Arc::new(Counter::default()),
        results: Mutex::new(Vec::new()),
        kept: Mutex::new(Vec::new()),
    });
    let id = bus.register_subscriber(reentrant.clone());
    *reentrant.id.lock().unwrap() = Some(id);
    let mut plain = bus.subscribe();

    let worker_bus = bus.clone();
    let reached = run_bounded(move || worker_bus.publish(custom("trigger")));
    assert_eq!(reached, 1);

    assert_eq!(
        *reentrant.results.lock().unwrap(),
        vec!["reached=1 unregistered=true count=1 distinct=true".to_owned()]
    );
    // The plain receiver saw the follow-up published inside on_event, after
    // the trigger (async receivers get the trigger before on_event runs).
    let first = plain.try_recv().expect("trigger");
    let second = plain.try_recv().expect("follow-up");
    assert_eq!(first.event_type(), "custom");
    assert!(
        matches!(second.as_ref(), AstridEvent::Ipc { message, .. } if message.topic == "follow.up")
    );
    // The new subscriber was registered after the follow-up was published,
    // so it sees only later events.
    assert_eq!(reentrant.registered.calls(), 0);
    assert_eq!(bus.sync_subscriber_count(), 1);
    let worker_bus = bus.clone();
    run_bounded(move || worker_bus.publish(ipc("follow.again")));
    assert_eq!(reentrant.registered.calls(), 1);
    // The topic receiver subscribed inside on_event is live.
    let mut kept = reentrant.kept.lock().unwrap();
    assert_eq!(kept.len(), 1);
    let e = kept[0].try_recv().expect("subscribed inside on_event");
    assert!(
        matches!(e.as_ref(), AstridEvent::Ipc { message, .. } if message.topic == "follow.again")
    );
}

/// Records `(subscriber, seq)` of the IPC events it sees into a shared log.
struct Logger {
    name: &'static str,
    log: Arc<Mutex<Vec<(&'static str, u64)>>>,
}

impl EventSubscriber for Logger {
    fn on_event(&self, event: &AstridEvent, _: &EventBus) {
        if let AstridEvent::Ipc { message, .. } = event {
            self.log.lock().unwrap().push((self.name, message.seq));
        }
    }
}

/// On `reentry.start`, publishes two follow-ups and records what `publish`
/// returned and which seqs they got.
struct Republisher {
    log: Arc<Mutex<Vec<(&'static str, u64)>>>,
}

impl EventSubscriber for Republisher {
    fn on_event(&self, event: &AstridEvent, bus: &EventBus) {
        let AstridEvent::Ipc { message, .. } = event else {
            return;
        };
        self.log.lock().unwrap().push(("republisher", message.seq));
        if message.topic == "reentry.start" {
            bus.publish(ipc("reentry.first"));
            bus.publish(ipc("reentry.second"));
            // Not yet shown to anyone: dispatch of the follow-ups waits
            // until every subscriber is done with this event.
            self.log.lock().unwrap().push(("returned", message.seq));
        }
    }
}

#[test]
fn events_published_inside_on_event_are_dispatched_after_the_current_one() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let bus = EventBus::new();
    bus.register_subscriber(Arc::new(Republisher { log: log.clone() }));
    bus.register_subscriber(Arc::new(Logger {
        name: "after",
        log: log.clone(),
    }));
    let mut plain = bus.subscribe();
    let worker_bus = bus.clone();
    run_bounded(move || worker_bus.publish(ipc("reentry.start")));
    // Breadth first, in seq order: the subscriber registered after the
    // republisher sees the trigger (seq 1) before the follow-ups (2, 3),
    // and the follow-ups only after the republisher's `on_event` returned.
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            ("republisher", 1),
            ("returned", 1),
            ("after", 1),
            ("republisher", 2),
            ("after", 2),
            ("republisher", 3),
            ("after", 3),
        ]
    );
    // Async receivers got the follow-ups as they were published.
    let seqs: Vec<u64> = std::iter::from_fn(|| plain.try_recv())
        .map(|e| match e.as_ref() {
            AstridEvent::Ipc { message, .. } => message.seq,
            _ => 0,
        })
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
}

#[test]
fn on_event_may_drop_a_topic_receiver_it_owns() {
    struct Dropper(Mutex<Option<EventReceiver>>);
    impl EventSubscriber for Dropper {
        fn on_event(&self, _: &AstridEvent, _: &EventBus) {
            self.0.lock().unwrap().take();
        }
    }
    let bus = EventBus::new();
    let dropper = Arc::new(Dropper(Mutex::new(Some(bus.subscribe_topic("d.*")))));
    bus.register_subscriber(dropper);
    assert_eq!(bus.subscriber_count(), 1);
    let worker_bus = bus.clone();
    assert_eq!(run_bounded(move || worker_bus.publish(ipc("d.x"))), 1);
    assert_eq!(bus.subscriber_count(), 0);
    assert_eq!(bus.publish(ipc("d.x")), 0);
}

/// Republishes every event it sees; optionally panics at one call number.
struct Echo {
    calls: AtomicUsize,
    panic_at: Option<usize>,
}

impl EventSubscriber for Echo {
    fn on_event(&self, _: &AstridEvent, bus: &EventBus) {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.panic_at == Some(n) {
            panic!("echo failure at call {n} (expected by the test)");
        }
        bus.publish(custom("echo"));
    }
}

#[test]
fn recursive_publishing_is_bounded_by_max_sync_dispatch_depth() {
    let bus = EventBus::new();
    let echo = Arc::new(Echo {
        calls: AtomicUsize::new(0),
        panic_at: None,
    });
    bus.register_subscriber(echo.clone());
    let mut plain = bus.subscribe();

    let worker_bus = bus.clone();
    run_bounded(move || worker_bus.publish(custom("start")));
    // Depths 0..MAX each run the subscriber once; the event published at
    // depth MAX reaches async receivers only.
    assert_eq!(echo.calls.load(Ordering::SeqCst), MAX_SYNC_DISPATCH_DEPTH);
    let received = std::iter::from_fn(|| plain.try_recv()).count();
    assert_eq!(received, MAX_SYNC_DISPATCH_DEPTH + 1);

    // The depth is per publish chain: a new top-level publish gets the full
    // depth again.
    let worker_bus = bus.clone();
    run_bounded(move || worker_bus.publish(custom("again")));
    assert_eq!(
        echo.calls.load(Ordering::SeqCst),
        2 * MAX_SYNC_DISPATCH_DEPTH
    );
    assert_eq!(
        std::iter::from_fn(|| plain.try_recv()).count(),
        MAX_SYNC_DISPATCH_DEPTH + 1
    );
}

#[test]
fn depth_is_restored_after_a_panic_deep_in_the_chain() {
    let bus = EventBus::new();
    let echo = Arc::new(Echo {
        calls: AtomicUsize::new(0),
        panic_at: Some(5),
    });
    bus.register_subscriber(echo.clone());
    let mut plain = bus.subscribe();

    // Both publishes on the same thread, so a leaked depth would show.
    let worker_bus = bus.clone();
    let counts = run_bounded(move || {
        worker_bus.publish(custom("start"));
        let first = echo.calls.load(Ordering::SeqCst);
        worker_bus.publish(custom("again"));
        (first, echo.calls.load(Ordering::SeqCst) - first)
    });
    // The chain stops at the panicking call (its event was not republished).
    assert_eq!(counts.0, 5);
    // The next chain on the same thread gets the full depth.
    assert_eq!(counts.1, MAX_SYNC_DISPATCH_DEPTH);
    assert_eq!(
        std::iter::from_fn(|| plain.try_recv()).count(),
        5 + MAX_SYNC_DISPATCH_DEPTH + 1
    );
}

#[test]
fn concurrent_publish_and_registry_churn_do_not_deadlock() {
    let bus = EventBus::new();
    let counter = Arc::new(Counter::default());
    bus.register_subscriber(counter.clone());
    let worker_bus = bus.clone();
    let published = run_bounded(move || {
        std::thread::scope(|s| {
            for _ in 0..4 {
                let bus = worker_bus.clone();
                s.spawn(move || {
                    for i in 0..500 {
                        bus.publish(ipc(&format!("churn.{}", i % 7)));
                    }
                });
            }
            let bus = worker_bus.clone();
            s.spawn(move || {
                for _ in 0..500 {
                    let id = bus.register_subscriber(Arc::new(Counter::default()));
                    let rx = bus.subscribe_topic("churn.*");
                    drop(rx);
                    assert!(bus.unregister_subscriber(id));
                }
            });
        });
        4 * 500
    });
    // The long-lived subscriber saw every event exactly once.
    assert_eq!(counter.calls(), published);
    assert_eq!(bus.sync_subscriber_count(), 1);
    assert_eq!(bus.subscriber_count(), 0);
}

// ---------------------------------------------------------------------------
// Ownership: the registry holds no strong reference cycle to the bus
// ---------------------------------------------------------------------------

struct DropFlag {
    dropped: Arc<AtomicBool>,
    /// Optional receivers on the bus it is registered with.
    receivers: Mutex<Vec<EventReceiver>>,
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl EventSubscriber for DropFlag {
    fn on_event(&self, event: &AstridEvent, bus: &EventBus) {
        // Subscribing from inside on_event and keeping the receiver must not
        // keep the bus alive either.
        if matches!(event, AstridEvent::Custom { .. }) {
            self.receivers.lock().unwrap().push(bus.subscribe());
        }
    }
}

#[test]
fn dropping_the_last_bus_handle_drops_the_subscribers() {
    let dropped = Arc::new(AtomicBool::new(false));
    let bus = EventBus::new();
    let clone = bus.clone();
    let sub = Arc::new(DropFlag {
        dropped: dropped.clone(),
        receivers: Mutex::new(vec![bus.subscribe(), bus.subscribe_topic("own.*")]),
    });
    let weak: Weak<DropFlag> = Arc::downgrade(&sub);
    bus.register_subscriber(sub);
    clone.publish(custom("subscribe inside"));
    clone.publish(ipc("own.x"));

    assert!(
        weak.upgrade().is_some(),
        "registered: kept alive by the bus"
    );
    drop(bus);
    assert!(!dropped.load(Ordering::SeqCst), "one handle is still alive");
    assert!(weak.upgrade().is_some());
    drop(clone);
    assert!(
        dropped.load(Ordering::SeqCst),
        "subscriber dropped with the last bus handle"
    );
    assert!(weak.upgrade().is_none());
}

#[tokio::test]
async fn receivers_owned_by_a_subscriber_end_with_the_bus() {
    // A subscriber owning receivers does not keep the bus alive, and other
    // receivers still see the end of the bus.
    let dropped = Arc::new(AtomicBool::new(false));
    let bus = EventBus::new();
    let mut outside = bus.subscribe_topic("x.*");
    bus.register_subscriber(Arc::new(DropFlag {
        dropped: dropped.clone(),
        receivers: Mutex::new(vec![bus.subscribe()]),
    }));
    drop(bus);
    assert!(dropped.load(Ordering::SeqCst));
    let end = tokio::time::timeout(WAIT, outside.recv())
        .await
        .expect("bounded");
    assert!(end.is_none());
}
