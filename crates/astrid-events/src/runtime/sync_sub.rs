//! Synchronous subscribers: callbacks run inside `publish`.
//!
//! A synchronous subscriber sees every event (that it [`accepts`]) on the
//! publishing thread, after the event has been handed to every async
//! receiver. The registry is copy-on-write: a publish takes a snapshot (one
//! `Arc` clone) and calls subscribers with no lock held, so a subscriber may
//! publish, register or unregister on the same bus without deadlock. A
//! panicking subscriber is caught, logged with its name and counted; the
//! other subscribers and the publisher go on.
//!
//! # Order
//!
//! Subscribers see events one at a time, in publish (`seq`) order, whatever
//! the number of publishing threads: a publish takes a turn under the bus's
//! publish lock and runs the subscribers only when every earlier turn is
//! done (see `sequencer.rs`). So `publish` may wait while another thread's
//! subscribers handle an earlier event; an `on_event` that blocks until
//! another thread's `publish` *returns* deadlocks (publishing itself, from
//! any thread, is fine).
//!
//! A publish from inside `on_event` (on this bus or another) is sequenced at
//! once: it gets its `seq` and reaches async receivers before that inner
//! `publish` returns. Synchronous subscribers see it later, after every
//! subscriber has finished with the current event and with the events
//! published before it: dispatch is breadth-first, in publish order, and the
//! outermost `publish` returns only when everything published inside it has
//! been dispatched. The snapshot of subscribers is taken when the event is
//! sequenced, so a subscriber registered inside `on_event` sees only events
//! published after its registration.
//!
//! Chains of publishes from inside `on_event` are bounded by
//! [`MAX_SYNC_DISPATCH_DEPTH`]: an event published while handling an event
//! of depth `MAX - 1` (the top-level publish is depth 0) still reaches every
//! async receiver, but synchronous subscribers do not see it, and each such
//! skip is counted and logged.
//!
//! [`accepts`]: EventSubscriber::accepts

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::metrics::{METRIC_BUS_SUBSCRIBER_PANICS_TOTAL, METRIC_BUS_SYNC_DEPTH_DROPPED_TOTAL};
use crate::runtime::bus::EventBus;
use crate::runtime::sequencer::Turnstile;
use crate::runtime::sync::thread_local;
use crate::schema::event::AstridEvent;

/// How deep `publish` may recurse through synchronous subscribers.
pub const MAX_SYNC_DISPATCH_DEPTH: usize = 16;

/// A callback that runs synchronously for each published event.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use astrid_events::{AstridEvent, EventBus, EventMetadata, EventSubscriber};
///
/// struct Counter(AtomicUsize);
/// impl EventSubscriber for Counter {
///     fn on_event(&self, _event: &AstridEvent, _bus: &EventBus) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///     }
///     fn name(&self) -> &str { "counter" }
/// }
///
/// let bus = EventBus::new();
/// let counter = Arc::new(Counter(AtomicUsize::new(0)));
/// let id = bus.register_subscriber(counter.clone());
/// bus.publish(AstridEvent::Custom {
///     metadata: EventMetadata::new("doc"),
///     name: "x".into(),
///     data: serde_json::json!({}),
/// });
/// assert_eq!(counter.0.load(Ordering::Relaxed), 1);
/// assert!(bus.unregister_subscriber(id));
/// ```
pub trait EventSubscriber: Send + Sync {
    /// Handles one event. `bus` is the bus it was published on.
    fn on_event(&self, event: &AstridEvent, bus: &EventBus);

    /// Whether this subscriber wants `event`; `on_event` runs only if true.
    fn accepts(&self, event: &AstridEvent) -> bool {
        let _ = event;
        true
    }

    /// A name for logs and metrics.
    fn name(&self) -> &str {
        "anonymous"
    }
}

/// Identifies a registered synchronous subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberId(u64);

type Entries = Arc<[(SubscriberId, Arc<dyn EventSubscriber>)]>;

/// The registry of synchronous subscribers (copy-on-write list).
pub(crate) struct SubscriberRegistry {
    /// Current list; replaced whole on register/unregister.
    entries: Mutex<Entries>,
    /// `entries.len()`, readable without the lock so an empty registry costs
    /// `publish` one atomic load.
    len: AtomicUsize,
    next_id: AtomicU64,
    /// Runs dispatches one at a time in turn (publish) order.
    turnstile: Turnstile,
}

/// One publish's place in the dispatch order, taken under the bus's publish
/// lock ([`SubscriberRegistry::take_turn`]). Must be handed to [`dispatch`],
/// which passes the turn on.
pub(crate) struct Turn {
    turn: u64,
    /// 0 for a top-level publish, +1 per `on_event` it was published from.
    depth: usize,
    /// The subscribers when the event was sequenced.
    subscribers: Entries,
}

/// A dispatch deferred because its event was published from inside
/// `on_event` on this thread.
struct Deferred {
    turn: Turn,
    event: Arc<AstridEvent>,
    bus: EventBus,
}

/// This thread's synchronous dispatch.
#[derive(Default)]
struct Local {
    /// Set while this thread runs subscribers: a publish then defers.
    active: bool,
    /// Depth of the event whose subscribers are running.
    depth: usize,
    /// Deferred dispatches in publish order (turns ascending per bus).
    deferred: VecDeque<Deferred>,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

impl SubscriberRegistry {
    pub(crate) fn new() -> Self {
        Self {
            entries: Mutex::new(Arc::from(Vec::new())),
            len: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            turnstile: Turnstile::new(),
        }
    }

    pub(crate) fn register(&self, subscriber: Arc<dyn EventSubscriber>) -> SubscriberId {
        let id = SubscriberId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut entries = self.entries.lock();
        let mut next: Vec<_> = entries.iter().cloned().collect();
        next.push((id, subscriber));
        self.len.store(next.len(), Ordering::Release);
        *entries = Arc::from(next);
        id
    }

    pub(crate) fn unregister(&self, id: SubscriberId) -> bool {
        let mut entries = self.entries.lock();
        if !entries.iter().any(|(e, _)| *e == id) {
            return false;
        }
        let next: Vec<_> = entries.iter().filter(|(e, _)| *e != id).cloned().collect();
        self.len.store(next.len(), Ordering::Release);
        *entries = Arc::from(next);
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// The depth `event`, about to be published on this thread, would be
    /// dispatched at, or `None` if it is too deep to be shown to synchronous
    /// subscribers (the skip is counted and logged).
    pub(crate) fn depth_of_next(&self, event: &AstridEvent) -> Option<usize> {
        // A thread-local destructor publishing: treat as top level.
        let depth = LOCAL
            .try_with(|l| {
                let l = l.borrow();
                if l.active { l.depth + 1 } else { 0 }
            })
            .unwrap_or(0);
        if depth < MAX_SYNC_DISPATCH_DEPTH {
            return Some(depth);
        }
        metrics::counter!(METRIC_BUS_SYNC_DEPTH_DROPPED_TOTAL).increment(1);
        tracing::warn!(
            target: "astrid_events::security",
            depth,
            event_type = event.event_type(),
            "synchronous dispatch depth limit reached; event not shown to synchronous subscribers"
        );
        None
    }

    /// Takes the next dispatch turn for an event of `depth`. Called under the
    /// bus's publish lock, which guards `next_turn`. `None` if no subscriber
    /// is registered.
    pub(crate) fn take_turn(&self, depth: usize, next_turn: &mut u64) -> Option<Turn> {
        let subscribers = self.entries.lock().clone();
        if subscribers.is_empty() {
            return None;
        }
        let turn = *next_turn;
        *next_turn += 1;
        Some(Turn {
            turn,
            depth,
            subscribers,
        })
    }
}

/// Runs the subscribers of `turn` on `event` (published on `bus`) once every
/// earlier turn is done; from inside `on_event`, defers that until the
/// current event is done (see the module docs).
pub(crate) fn dispatch(turn: Turn, event: &Arc<AstridEvent>, bus: &EventBus) {
    // `Ok(true)`: nested, deferred; `Ok(false)`: this thread now dispatches.
    let nested = LOCAL.try_with(|l| std::mem::replace(&mut l.borrow_mut().active, true));
    match nested {
        Ok(true) => {
            LOCAL.with(|l| {
                l.borrow_mut().deferred.push_back(Deferred {
                    turn,
                    event: Arc::clone(event),
                    bus: bus.clone(),
                });
            });
            return;
        }
        Ok(false) => {}
        // Thread-local state gone (a publish from a thread-local
        // destructor): no nesting to track, run in turn.
        Err(_) => {
            run_turn(&turn, event, bus);
            return;
        }
    }
    // Clears `active` and passes every deferred turn even if something
    // below unwinds, so no other publisher waits forever.
    struct Active;
    impl Drop for Active {
        fn drop(&mut self) {
            while let Some(d) = LOCAL.with(|l| l.borrow_mut().deferred.pop_front()) {
                let turnstile = &d.bus.sync_registry().turnstile;
                turnstile.wait_for(d.turn.turn);
                turnstile.pass(d.turn.turn);
            }
            LOCAL.with(|l| l.borrow_mut().active = false);
        }
    }
    let _active = Active;
    run_turn(&turn, event, bus);
    while let Some(d) = LOCAL.with(|l| l.borrow_mut().deferred.pop_front()) {
        run_turn(&d.turn, &d.event, &d.bus);
    }
}

/// Waits for `turn`, runs its subscribers (panics isolated), passes it on.
fn run_turn(turn: &Turn, event: &AstridEvent, bus: &EventBus) {
    let turnstile = &bus.sync_registry().turnstile;
    turnstile.wait_for(turn.turn);
    // Passes the turn even if something below unwinds.
    struct Pass<'a>(&'a Turnstile, u64);
    impl Drop for Pass<'_> {
        fn drop(&mut self) {
            self.0.pass(self.1);
        }
    }
    let _pass = Pass(turnstile, turn.turn);
    let _ = LOCAL.try_with(|l| l.borrow_mut().depth = turn.depth);
    for (_, subscriber) in turn.subscribers.iter() {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if subscriber.accepts(event) {
                subscriber.on_event(event, bus);
            }
        }));
        if outcome.is_err() {
            let name = subscriber.name().to_owned();
            metrics::counter!(METRIC_BUS_SUBSCRIBER_PANICS_TOTAL, "subscriber" => name.clone())
                .increment(1);
            tracing::error!(
                target: "astrid_events::security",
                subscriber = %name,
                event_type = event.event_type(),
                "synchronous subscriber panicked; isolated"
            );
        }
    }
}
