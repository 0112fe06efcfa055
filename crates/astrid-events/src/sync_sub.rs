//! Synchronous subscribers: callbacks run inside `publish`.
//!
//! A synchronous subscriber sees every event (that it [`accepts`]) on the
//! publishing thread, after the event has been handed to every async
//! receiver. The registry is copy-on-write: `publish` takes a snapshot (one
//! `Arc` clone) and calls subscribers with no lock held, so a subscriber may
//! publish, register or unregister on the same bus without deadlock. A
//! panicking subscriber is caught, logged with its name and counted; the
//! other subscribers and the publisher go on.
//!
//! Publishing from inside `on_event` recurses; the recursion is bounded by
//! [`MAX_SYNC_DISPATCH_DEPTH`]: deeper events still reach every async
//! receiver, but synchronous subscribers do not see them, and each such skip
//! is counted and logged.
//!
//! [`accepts`]: EventSubscriber::accepts

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::bus::EventBus;
use crate::event::AstridEvent;
use crate::metrics::{METRIC_BUS_SUBSCRIBER_PANICS_TOTAL, METRIC_BUS_SYNC_DEPTH_DROPPED_TOTAL};

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
}

thread_local! {
    /// How many `dispatch` calls are active on this thread.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

impl SubscriberRegistry {
    pub(crate) fn new() -> Self {
        Self {
            entries: Mutex::new(Arc::from(Vec::new())),
            len: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
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

    /// Runs every accepting subscriber on `event`, isolating panics.
    pub(crate) fn dispatch(&self, event: &AstridEvent, bus: &EventBus) {
        if self.len() == 0 {
            return;
        }
        let snapshot: Entries = self.entries.lock().clone();
        if snapshot.is_empty() {
            return;
        }
        let depth = DEPTH.with(Cell::get);
        if depth >= MAX_SYNC_DISPATCH_DEPTH {
            metrics::counter!(METRIC_BUS_SYNC_DEPTH_DROPPED_TOTAL).increment(1);
            tracing::warn!(
                target: "astrid_events::security",
                depth,
                event_type = event.event_type(),
                "synchronous dispatch depth limit reached; event not shown to synchronous subscribers"
            );
            return;
        }
        DEPTH.with(|d| d.set(depth + 1));
        // Restores the depth even if something below unwinds.
        struct Guard(usize);
        impl Drop for Guard {
            fn drop(&mut self) {
                DEPTH.with(|d| d.set(self.0));
            }
        }
        let _guard = Guard(depth);
        for (_, subscriber) in snapshot.iter() {
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
}
