//! The event bus: one publish path that feeds every kind of subscriber.
//!
//! ```text
//! publish(event)
//!   ├─ sequencer (one lock per bus) ┐
//!   │  ├─ IPC: stamp message.seq    │ one critical section: receivers get
//!   │  ├─ broadcast channel ────────┼──> plain receivers (subscribe)
//!   │  ├─ IPC: topic index lookup (the index lives under the sequencer)
//!   │  │  ├─ topic queues ──────────┼──> topic receivers (subscribe_topic*)
//!   │  │  └─ routes (scope, budget) ┼──> routed receivers
//!   │  │  retained store (opt-in) updated
//!   │  └─ take a synchronous-dispatch turn
//!   ├─ wake topic and routed receivers, report losses (no lock held)
//!   └─ wait for the turn, run synchronous subscribers (no lock held)
//! ```
//!
//! The sequencer makes publishes one total order that every receiver sees
//! (`sequencer.rs` states the guarantee and how it is kept).
//!
//! `publish_batch` takes the sequencer once for the whole batch: it stamps
//! every event, then delivers them in order, walking the index once per
//! distinct topic (`WalkedTopics`), and wakes each receiver once after
//! releasing it.
//!
//! Every handle made by `Clone` shares one [`Shared`]: the channel, the
//! index, the sequence counter, the registry and the retained store.
//! Receivers hold only a `Weak` to it, so dropping the last bus handle ends
//! every receiver (they drain what is queued, then return `None`) and drops
//! the synchronous subscribers.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::metrics::METRIC_BUS_EVENTS_PUBLISHED_TOTAL;
use crate::rate_limiter::IpcRateLimiter;
use crate::runtime::gate::{Gate, GateInner};
use crate::runtime::held::held_bytes;
use crate::runtime::index::{EntryId, TopicIndex};
use crate::runtime::permit::HeldRoom;
use crate::runtime::receiver::{
    EventReceiver, Pushed, Registration, TopicQueue, TopicSubscription,
};
use crate::runtime::retain::{Retained, RetentionPolicy};
use crate::runtime::routed::{
    EventCharge, Offer, Offered, PrincipalKey, Route, RouteKey, RoutedEventReceiver,
};
use crate::runtime::scope::Scope;
use crate::runtime::sequencer::Sequencer;
use crate::runtime::sync_sub::{self, EventSubscriber, SubscriberId, SubscriberRegistry};
use crate::schema::event::AstridEvent;

/// Default capacity of the broadcast channel and of each topic queue.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 1024;

/// Builds an [`EventBus`] with non-default settings.
#[derive(Debug, Clone)]
pub struct EventBusBuilder {
    capacity: usize,
    retention: Option<RetentionPolicy>,
    limit: Option<RateLimit>,
}

/// The limiter `try_publish` consults, with the rate it grants each
/// (capsule, principal).
#[derive(Debug, Clone)]
struct RateLimit {
    limiter: Arc<IpcRateLimiter>,
    bytes_per_sec: usize,
}

impl EventBusBuilder {
    /// Capacity of the broadcast channel and of each topic queue (at least
    /// 1; default [`DEFAULT_CHANNEL_CAPACITY`]).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Retain the last event of the topics `policy` names.
    #[must_use]
    pub fn retention(mut self, policy: RetentionPolicy) -> Self {
        self.retention = Some(policy);
        self
    }

    /// Makes [`EventBus::try_publish`] check every IPC event against
    /// `limiter`, granting each (source capsule, principal) pair
    /// `bytes_per_sec` (plus a burst of one second's worth). System events
    /// (no principal) are not limited.
    #[must_use]
    pub fn rate_limit(mut self, limiter: Arc<IpcRateLimiter>, bytes_per_sec: usize) -> Self {
        self.limit = Some(RateLimit {
            limiter,
            bytes_per_sec,
        });
        self
    }

    /// Builds the bus.
    #[must_use]
    pub fn build(self) -> EventBus {
        let capacity = self.capacity.max(1);
        let (broadcast, _) = broadcast::channel(capacity);
        let mut index = TopicIndex::default();
        let mut next_id = 1;
        if let Some(policy) = &self.retention {
            for pattern in &policy.patterns {
                index.insert(pattern, next_id, Target::Retain);
                next_id += 1;
            }
        }
        EventBus {
            shared: Arc::new(Shared {
                broadcast,
                capacity,
                sequencer: Sequencer::new(index),
                next_id: AtomicU64::new(next_id),
                indexed: AtomicUsize::new((next_id - 1) as usize),
                topic_receivers: AtomicUsize::new(0),
                routes: AtomicUsize::new(0),
                registry: SubscriberRegistry::new(),
                retained: self
                    .retention
                    .as_ref()
                    .map(|p| Mutex::new(Retained::new(p))),
                limit: self.limit,
                published: PublishedCounters::new(),
            }),
        }
    }
}

thread_local! {
    /// Scratch list of the targets of one publish (see `deliver_indexed`).
    static TARGETS: Cell<Vec<(Target, After)>> = const { Cell::new(Vec::new()) };
}

/// What a target still needs after the sequencer is released.
#[derive(Default)]
enum After {
    #[default]
    Nothing,
    Topic(Pushed),
    Route(Offered),
}

impl After {
    /// One follow-up for two deliveries to the same target.
    fn merge(self, later: Self) -> Self {
        match (self, later) {
            (Self::Topic(a), Self::Topic(b)) => Self::Topic(a.merge(b)),
            (Self::Route(a), Self::Route(b)) => Self::Route(a.merge(b)),
            (Self::Nothing, other) | (other, _) => other,
        }
    }
}

/// Largest scratch list kept between publishes (a huge fan-out allocates).
const MAX_KEPT_TARGETS: usize = 1024;

/// Puts this thread's scratch list back for the next publish, emptied (it
/// must not hold receivers alive) and only if it is not huge.
fn keep_targets(mut targets: Vec<(Target, After)>) {
    targets.clear();
    if targets.capacity() <= MAX_KEPT_TARGETS {
        let _ = TARGETS.try_with(|t| t.set(targets));
    }
}

/// Most distinct topics a batch remembers the index walk of.
const WALKED_TOPICS: usize = 32;

/// The topics a batch has walked the index for, and where their targets
/// are in the batch's target list, so a repeated topic is delivered to
/// without a second walk (the index cannot change while the batch holds the
/// sequencer).
///
/// Found by a hash of the topic, then compared in full. At most
/// [`WALKED_TOPICS`] are remembered (later new topics are walked each
/// time), so finding one costs at most that many comparisons whatever the
/// topics are.
#[derive(Default)]
struct WalkedTopics<'a> {
    seen: Vec<(u64, &'a str, std::ops::Range<usize>, bool)>,
}

impl<'a> WalkedTopics<'a> {
    fn with_capacity(distinct: usize) -> Self {
        Self {
            seen: Vec::with_capacity(distinct.min(WALKED_TOPICS)),
        }
    }

    /// `hash` is [`topic_hash`] of `topic`.
    fn find(&self, hash: u64, topic: &str) -> Option<(std::ops::Range<usize>, bool)> {
        self.seen
            .iter()
            .find(|(h, t, _, _)| *h == hash && *t == topic)
            .map(|(_, _, range, retain)| (range.clone(), *retain))
    }

    fn add(&mut self, hash: u64, topic: &'a str, targets: std::ops::Range<usize>, retain: bool) {
        if self.seen.len() < WALKED_TOPICS {
            self.seen.push((hash, topic, targets, retain));
        }
    }
}

/// A fast, unkeyed hash of a topic, only to skip most full comparisons in
/// [`WalkedTopics`] (whose size is bounded, so collisions cost little).
fn topic_hash(topic: &str) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = topic.len() as u64;
    let mut words = topic.as_bytes().chunks_exact(8);
    for word in &mut words {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let mut tail = [0; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K)
}

/// One entry of the topic index.
#[derive(Clone)]
pub(crate) enum Target {
    Topic(Arc<TopicQueue>),
    Route(Arc<Route>),
    /// A retention pattern: matching topics are kept in the retained store.
    Retain,
}

impl Target {
    /// Identity of the receiver behind the entry (0 for `Retain`).
    fn addr(&self) -> usize {
        match self {
            Self::Topic(queue) => Arc::as_ptr(queue) as usize,
            Self::Route(route) => Arc::as_ptr(route) as usize,
            Self::Retain => 0,
        }
    }

    /// Wakes the receiver and reports losses, as `after` says; no lock held.
    fn finish(&self, after: After) {
        match (self, after) {
            (Self::Topic(queue), After::Topic(pushed)) => queue.after_push(pushed),
            (Self::Route(route), After::Route(offered)) => route.after_offer(offered),
            _ => {}
        }
    }
}

/// State shared by every clone of a bus.
pub(crate) struct Shared {
    broadcast: broadcast::Sender<Arc<AstridEvent>>,
    capacity: usize,
    /// The publish lock: `seq`, the order every receiver sees, and the
    /// topic index (topic receivers and routes by pattern).
    sequencer: Sequencer<TopicIndex<Target>>,
    /// Source of index entry ids and route `subscription_rep`s.
    next_id: AtomicU64,
    /// Entries in the index, readable without the sequencer: a publish on a bus
    /// with no topic receivers, routes or retention skips the lock.
    indexed: AtomicUsize,
    topic_receivers: AtomicUsize,
    routes: AtomicUsize,
    registry: SubscriberRegistry,
    /// Last event per topic, for `with_last` subscriptions (opt-in).
    retained: Option<Mutex<Retained>>,
    /// Consulted by `try_publish` only.
    limit: Option<RateLimit>,
    published: PublishedCounters,
}

/// `astrid_bus_events_published_total` handles for the hot event kinds,
/// made once so `publish` does no label work for them. Metric handles bind to
/// the recorder installed when the bus is built: install it first.
struct PublishedCounters {
    ipc: metrics::Counter,
    custom: metrics::Counter,
}

impl PublishedCounters {
    fn new() -> Self {
        let counter = |kind: &'static str| metrics::counter!(METRIC_BUS_EVENTS_PUBLISHED_TOTAL, "event_kind" => kind);
        Self {
            ipc: counter("ipc"),
            custom: counter("custom"),
        }
    }

    #[inline]
    fn count(&self, event: &AstridEvent) {
        match event {
            AstridEvent::Ipc { .. } => self.ipc.increment(1),
            AstridEvent::Custom { .. } => self.custom.increment(1),
            // Lifecycle events are rare: the label lookup is fine there.
            other => metrics::counter!(METRIC_BUS_EVENTS_PUBLISHED_TOTAL,
                "event_kind" => other.event_type())
            .increment(1),
        }
    }
}

impl Shared {
    /// Runs `f` under the publish lock: every publish is wholly before or
    /// wholly after it (gate changes, `gate.rs`).
    pub(crate) fn with_publish_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        let _ordered = self.sequencer.lock();
        f()
    }

    /// Removes an index entry (called by a dropped receiver).
    pub(crate) fn unregister(&self, pattern: &str, id: EntryId) {
        let removed = {
            let mut ordered = self.sequencer.lock();
            let removed = ordered.index.remove(pattern, id);
            self.indexed.store(ordered.index.len(), Ordering::Relaxed);
            removed
        };
        match removed {
            Some(Target::Topic(_)) => {
                self.topic_receivers.fetch_sub(1, Ordering::Relaxed);
            }
            Some(Target::Route(_)) => {
                self.routes.fetch_sub(1, Ordering::Relaxed);
            }
            Some(Target::Retain) | None => {}
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The bus is gone: release every receiver still waiting; each
        // drains what is queued, then ends.
        self.sequencer.lock().index.for_each(|target| match target {
            Target::Topic(queue) => queue.close(),
            Target::Route(route) => route.shutdown(),
            Target::Retain => {}
        });
    }
}

/// The event bus.
///
/// Cheap to clone; every clone publishes into and subscribes from the same
/// bus.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use astrid_events::{AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload};
///
/// let bus = EventBus::new();
/// let mut tools = bus.subscribe_topic("tool.v1.*");
/// let message = IpcMessage::new("tool.v1.run", IpcPayload::Custom { data: serde_json::json!({}) }, uuid::Uuid::nil());
/// assert_eq!(bus.publish(AstridEvent::Ipc { metadata: EventMetadata::new("doc"), message }), 1);
/// let event = tools.recv().await.expect("delivered");
/// let AstridEvent::Ipc { message, .. } = event.as_ref() else { unreachable!() };
/// assert_eq!(message.seq, 1);
/// # });
/// ```
#[derive(Clone)]
pub struct EventBus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("capacity", &self.shared.capacity)
            .field("subscribers", &self.subscriber_count())
            .field("routes", &self.routed_subscription_count())
            .finish_non_exhaustive()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus with capacity [`DEFAULT_CHANNEL_CAPACITY`] (1024).
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CHANNEL_CAPACITY)
    }

    /// A bus whose topic queues hold `capacity` events each and whose
    /// broadcast channel (plain receivers) holds at least `capacity` (tokio
    /// rounds it up to a power of two). 0 is raised to 1.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self::builder().capacity(capacity).build()
    }

    /// A bus that retains the last event of the topics `policy` names.
    #[must_use]
    pub fn with_retention(policy: RetentionPolicy) -> Self {
        Self::builder().retention(policy).build()
    }

    /// A builder for a bus with non-default settings.
    #[must_use]
    pub fn builder() -> EventBusBuilder {
        EventBusBuilder {
            capacity: DEFAULT_CHANNEL_CAPACITY,
            retention: None,
            limit: None,
        }
    }

    /// The retained event of exactly `topic`, if the bus retains it.
    #[must_use]
    pub fn last(&self, topic: &str) -> Option<Arc<AstridEvent>> {
        self.shared.retained.as_ref()?.lock().get(topic)
    }

    /// The capacity given at construction.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Publishes `event` to every subscriber.
    ///
    /// An IPC event gets the next sequence number in `message.seq` (shared by
    /// every clone, starting at 1, unique and gap-free). Async receivers get
    /// the event before synchronous subscribers run.
    ///
    /// # Order
    ///
    /// Publishes are totally ordered, `seq` numbering IPC events in that
    /// order, and every receiver sees the events it gets in that order, from
    /// any number of threads: plain, topic and synchronous subscribers in
    /// increasing `seq`, a routed receiver each principal's events in
    /// increasing `seq`. The synchronous subscribers of this event run only
    /// after they have finished with every earlier event, so this call may
    /// wait for another thread's subscribers. Called from inside
    /// [`EventSubscriber::on_event`], it returns before synchronous
    /// subscribers see the new event: they see it once they are done with
    /// the current one (see [`EventSubscriber`]).
    ///
    /// Returns how many async receivers the event was handed to: plain
    /// receivers, matching topic receivers and matching routes that queued
    /// it.
    #[inline]
    pub fn publish(&self, event: AstridEvent) -> usize {
        self.publish_arc(Arc::new(event), &[], None)
    }

    /// Gives a fresh IPC event the next sequence number; under the
    /// sequencer, so numbering and enqueuing happen in one order.
    ///
    /// The number is written into the fresh allocation through
    /// `Arc::get_mut`, not into the event before it is moved into the `Arc`:
    /// a write just before the move costs an extra copy of the whole event
    /// (and a stalled store-to-load forward), about a third of a plain
    /// publish.
    #[inline]
    fn stamp(event: &mut Arc<AstridEvent>, seq: &mut u64) {
        // Always `Some`: nobody else holds the `Arc` yet.
        if let Some(AstridEvent::Ipc { message, .. }) = Arc::get_mut(event) {
            *seq += 1;
            message.seq = *seq;
        }
    }

    /// The limiter `try_publish` consults and the rate it grants.
    pub(crate) fn rate_limit(&self) -> Option<(&IpcRateLimiter, usize)> {
        self.shared
            .limit
            .as_ref()
            .map(|l| (l.limiter.as_ref(), l.bytes_per_sec))
    }

    /// The synchronous subscribers.
    pub(crate) fn sync_registry(&self) -> &SubscriberRegistry {
        &self.shared.registry
    }

    /// `publish` of a fresh (unshared, unstamped) event, where `reserved`
    /// routes already hold room for it and `charge` is its routed charge if
    /// already computed.
    ///
    /// Under the sequencer: stamp, broadcast, index walk, topic pushes, route
    /// offers, retained store and the synchronous-dispatch turn. After it:
    /// receiver wakeups and loss reports, then synchronous dispatch.
    /// `permit.rs` commits through it with the routes it reserved.
    #[inline]
    pub(crate) fn publish_arc(
        &self,
        mut event: Arc<AstridEvent>,
        reserved: &[HeldRoom],
        charge: Option<EventCharge>,
    ) -> usize {
        self.shared.published.count(&event);
        let indexed = matches!(event.as_ref(), AstridEvent::Ipc { .. })
            && self.shared.indexed.load(Ordering::Relaxed) > 0;
        let registry = &self.shared.registry;
        let depth = if registry.len() == 0 {
            None
        } else {
            registry.depth_of_next(&event)
        };
        if !indexed && depth.is_none() {
            // Only plain receivers can want it: hand the channel our handle.
            let sent = {
                let mut ordered = self.shared.sequencer.lock();
                Self::stamp(&mut event, &mut ordered.seq);
                self.shared.broadcast.send(event)
            };
            // An unsent event is dropped here, outside the lock.
            return sent.unwrap_or(0);
        }
        // This thread's reused list (so a publish allocates none); taken, not
        // borrowed, so a nested publish on this thread just starts a new one.
        // `try_with`: a publish from a thread-local destructor must not panic.
        let mut targets = TARGETS.try_with(Cell::take).unwrap_or_default();
        let (reached, turn) = {
            let mut ordered = self.shared.sequencer.lock();
            let ordered = &mut *ordered;
            Self::stamp(&mut event, &mut ordered.seq);
            let mut reached = self.shared.broadcast.send(Arc::clone(&event)).unwrap_or(0);
            if indexed {
                reached +=
                    self.deliver_indexed(&ordered.index, &event, reserved, &mut targets, charge);
            }
            let turn = depth.and_then(|d| registry.take_turn(d, &mut ordered.next_turn));
            (reached, turn)
        };
        for (target, after) in targets.drain(..) {
            target.finish(after);
        }
        keep_targets(targets);
        if let Some(turn) = turn {
            sync_sub::dispatch(turn, &event, self);
        }
        reached
    }

    /// Publishes `events` in order as one step: one acquisition of the
    /// publish lock stamps and enqueues them all, and every topic and routed
    /// receiver they reach is woken at most once for the whole batch (after
    /// the lock is released), however many of its events the batch holds.
    ///
    /// Everything else is as if each event were given to
    /// [`publish`](Self::publish) in turn, with no other publish in between:
    /// IPC events get consecutive sequence numbers in iteration order; each
    /// receiver gets the events it would have got, in that order; queues
    /// overflow, budgets evict and losses are counted and reported exactly as
    /// for single publishes; synchronous subscribers see every event, one at
    /// a time, in `seq` order (they run after every event of the batch has
    /// reached the async receivers). Plain receivers (`subscribe`) are fed
    /// through a tokio broadcast channel, which wakes a waiting receiver on
    /// the first event; one that consumes while the batch is being sent may
    /// be woken again.
    ///
    /// Returns the sum, over the events, of what `publish` would return: the
    /// number of hand-offs to async receivers (an event reaching three
    /// receivers counts three). An empty batch publishes nothing and returns
    /// 0.
    ///
    /// The lock is held for the whole batch, so other publishers wait for
    /// it: keep batches to what arrived together (a read from a socket, a
    /// burst of tokens), not unbounded.
    ///
    /// Like `publish`, it never waits: a full lossless route drops and
    /// counts what does not fit.
    /// [`publish_batch_with_backpressure`](Self::publish_batch_with_backpressure)
    /// first waits for room for the whole batch.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use astrid_events::{AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload};
    ///
    /// let bus = EventBus::new();
    /// let mut tokens = bus.subscribe_topic("llm.v1.stream.*");
    /// let events = (0..3).map(|i| AstridEvent::Ipc {
    ///     metadata: EventMetadata::new("doc"),
    ///     message: IpcMessage::new("llm.v1.stream.token", IpcPayload::Custom { data: serde_json::json!(i) }, uuid::Uuid::nil()),
    /// });
    /// assert_eq!(bus.publish_batch(events), 3);
    /// let mut batch = Vec::new();
    /// assert_eq!(tokens.recv_many(&mut batch, 64).await, 3);
    /// # });
    /// ```
    pub fn publish_batch<I>(&self, events: I) -> usize
    where
        I: IntoIterator<Item = AstridEvent>,
    {
        self.publish_batch_with(events.into_iter().map(|event| (event, None)), &[])
    }

    /// `publish_batch` of events given with their routed charge if already
    /// computed, where `reserved` routes already hold room for every event
    /// of the batch they admit. `permit.rs` commits a batch through it.
    pub(crate) fn publish_batch_with<I>(&self, events: I, reserved: &[HeldRoom]) -> usize
    where
        I: Iterator<Item = (AstridEvent, Option<EventCharge>)>,
    {
        let registry = &self.shared.registry;
        let sync = registry.len() > 0;
        // Each event with its routed charge (if known) and its topic's hash
        // (filled in below).
        let mut arcs: Vec<(Arc<AstridEvent>, Option<EventCharge>, u64)> =
            Vec::with_capacity(events.size_hint().0);
        // Depth checked per event, as `publish` would (it counts skips); only
        // with synchronous subscribers.
        let mut depths: Vec<Option<usize>> = Vec::new();
        for (event, charge) in events {
            self.shared.published.count(&event);
            if sync {
                depths.push(registry.depth_of_next(&event));
            }
            arcs.push((Arc::new(event), charge, 0));
        }
        let mut events = arcs;
        if events.is_empty() {
            return 0;
        }
        // The topics' hashes, for `WalkedTopics`, in a pass of their own
        // before the lock: reading a topic is usually a cache miss (its bytes
        // are a separate allocation, written when the event was built), and
        // with nothing else in the loop the misses of successive events
        // overlap instead of each stalling a delivery.
        let hashed = self.shared.indexed.load(Ordering::Relaxed) > 0;
        if hashed {
            for (event, _, hash) in &mut events {
                if let AstridEvent::Ipc { message, .. } = event.as_ref() {
                    *hash = topic_hash(&message.topic);
                }
            }
        }
        let mut targets = TARGETS.try_with(Cell::take).unwrap_or_default();
        let mut turns = Vec::new();
        let reached = {
            let mut ordered = self.shared.sequencer.lock();
            let ordered = &mut *ordered;
            // Stamped first (nothing else holds the events yet), then
            // delivered in the same order, all under the lock.
            for (event, _, _) in &mut events {
                Self::stamp(event, &mut ordered.seq);
            }
            // Checked once: a plain receiver that subscribes while the lock
            // is held gets the events published after this batch, as if it
            // had subscribed after it.
            let plain = self.shared.broadcast.receiver_count() > 0;
            let index = &ordered.index;
            let mut walked = WalkedTopics::with_capacity(events.len());
            let mut reached = 0;
            for (i, (event, charge, hash)) in events.iter().enumerate() {
                if plain {
                    reached += self.shared.broadcast.send(Arc::clone(event)).unwrap_or(0);
                }
                if let AstridEvent::Ipc { message, .. } = event.as_ref()
                    && index.len() > 0
                {
                    let topic = message.topic.as_str();
                    // The index was empty before the lock, not now: hash here.
                    let hash = if hashed { *hash } else { topic_hash(topic) };
                    let (range, retain) = walked.find(hash, topic).unwrap_or_else(|| {
                        let first = targets.len();
                        let retain = Self::match_targets(index, topic, &mut targets);
                        walked.add(hash, topic, first..targets.len(), retain);
                        (first..targets.len(), retain)
                    });
                    reached +=
                        self.deliver_to(&mut targets[range], retain, event, reserved, *charge);
                }
                if let Some(turn) = depths
                    .get(i)
                    .copied()
                    .flatten()
                    .and_then(|d| registry.take_turn(d, &mut ordered.next_turn))
                {
                    turns.push((turn, i));
                }
            }
            reached
        };
        // One follow-up per receiver: runs of the same target merged.
        targets.sort_unstable_by_key(|(target, _)| target.addr());
        let mut run: Option<(Target, After)> = None;
        for (target, after) in targets.drain(..) {
            match &mut run {
                Some((same, merged)) if same.addr() == target.addr() => {
                    *merged = std::mem::take(merged).merge(after);
                }
                _ => {
                    if let Some((done, merged)) = run.replace((target, after)) {
                        done.finish(merged);
                    }
                }
            }
        }
        if let Some((done, merged)) = run {
            done.finish(merged);
        }
        keep_targets(targets);
        for (turn, i) in turns {
            sync_sub::dispatch(turn, &events[i].0, self);
        }
        reached
    }

    /// Hands an IPC event to the matching topic receivers and routes, under
    /// the sequencer; appends to `targets` what each still needs once the
    /// sequencer is released (wakeup, loss report).
    fn deliver_indexed(
        &self,
        index: &TopicIndex<Target>,
        event: &Arc<AstridEvent>,
        reserved: &[HeldRoom],
        targets: &mut Vec<(Target, After)>,
        charge: Option<EventCharge>,
    ) -> usize {
        let AstridEvent::Ipc { message, .. } = event.as_ref() else {
            return 0;
        };
        if index.len() == 0 {
            return 0;
        }
        let first = targets.len();
        let retain = Self::match_targets(index, &message.topic, targets);
        self.deliver_to(&mut targets[first..], retain, event, reserved, charge)
    }

    /// Appends every topic receiver and route matching `topic` to `targets`
    /// (nothing to do for them yet); returns whether a retention pattern
    /// matches.
    fn match_targets(
        index: &TopicIndex<Target>,
        topic: &str,
        targets: &mut Vec<(Target, After)>,
    ) -> bool {
        let mut retain = false;
        index.for_each_match(topic, |t| match t {
            Target::Retain => retain = true,
            other => targets.push((other.clone(), After::Nothing)),
        });
        retain
    }

    /// Hands an IPC event to `targets` (the receivers its topic matches)
    /// and, with `retain`, to the retained store, under the sequencer;
    /// merges into each target what it needs once the sequencer is released.
    ///
    /// The bytes the event holds are measured at most once, and only if a
    /// route or the retained store takes it; every route gets the same
    /// charge.
    fn deliver_to(
        &self,
        targets: &mut [(Target, After)],
        retain: bool,
        event: &Arc<AstridEvent>,
        reserved: &[HeldRoom],
        mut charge: Option<EventCharge>,
    ) -> usize {
        let AstridEvent::Ipc { metadata, message } = event.as_ref() else {
            return 0;
        };
        let mut held = None;
        // Stored under the sequencer, like the index change of a
        // `with_last` subscription: see `retain.rs`.
        if retain && let Some(store) = &self.shared.retained {
            let held = *held.get_or_insert_with(|| held_bytes(metadata, message));
            store.lock().store(event, held);
        }
        let mut reached = 0;
        for (target, after) in targets {
            match target {
                Target::Topic(queue) => {
                    let pushed = queue.push(Arc::clone(event));
                    *after = std::mem::take(after).merge(After::Topic(pushed));
                    reached += 1;
                }
                Target::Route(route) => {
                    // Computed once per publish, and only if a route admits
                    // the event.
                    let charge = || {
                        *charge.get_or_insert_with(|| {
                            let held = *held.get_or_insert_with(|| held_bytes(metadata, message));
                            EventCharge::new(held, message)
                        })
                    };
                    let has_reservation = reserved.iter().any(|r| Arc::ptr_eq(&r.route, route));
                    let (offer, offered) = route.offer_deferred(event, charge, has_reservation);
                    *after = std::mem::take(after).merge(After::Route(offered));
                    if offer == Offer::Queued {
                        reached += 1;
                    }
                }
                Target::Retain => {}
            }
        }
        reached
    }

    /// Copies out the routes matching `topic` (sequencer held only for the
    /// copy).
    pub(crate) fn matching_routes(&self, topic: &str) -> Vec<Arc<Route>> {
        let ordered = self.shared.sequencer.lock();
        let mut routes = Vec::new();
        ordered.index.for_each_match(topic, |t| {
            if let Target::Route(r) = t {
                routes.push(Arc::clone(r));
            }
        });
        routes
    }

    /// Subscribes to every event. Lag is reported under `untagged`.
    ///
    /// This and the other `subscribe*` methods are 0.8.0's surface, kept as
    /// thin wrappers over the subscription builder
    /// ([`subscription`](Self::subscription),
    /// [`subscription_all`](Self::subscription_all)), which also offers
    /// retained events, lossless routes, every [`Scope`] and checked input.
    ///
    /// Dropping a receiver unsubscribes it, so every `subscribe*` method is
    /// `#[must_use]` (as in 0.8.0): an unbound call is flagged.
    ///
    /// ```compile_fail
    /// #![deny(unused_must_use)]
    /// let bus = astrid_events::EventBus::new();
    /// bus.subscribe();
    /// ```
    #[must_use]
    pub fn subscribe(&self) -> EventReceiver {
        self.subscription_all().subscribe()
    }

    /// Subscribes to every event; `subscriber` labels its lag metric.
    #[must_use]
    pub fn subscribe_as(&self, subscriber: &'static str) -> EventReceiver {
        self.subscription_all().name(subscriber).subscribe()
    }

    /// Subscribes to IPC events whose topic matches `pattern`.
    #[must_use]
    pub fn subscribe_topic(&self, pattern: impl Into<String>) -> EventReceiver {
        self.subscription(pattern).subscribe()
    }

    /// Subscribes to IPC events whose topic matches `pattern`; `subscriber`
    /// labels its lag metric.
    ///
    /// Non-IPC events never reach a topic receiver. Only publishes whose
    /// topic matches touch this receiver at all.
    #[must_use]
    pub fn subscribe_topic_as(
        &self,
        pattern: impl Into<String>,
        subscriber: &'static str,
    ) -> EventReceiver {
        self.subscription(pattern).name(subscriber).subscribe()
    }

    /// Registers a plain receiver (see [`EventBus::subscription_all`]).
    pub(crate) fn add_plain(&self, subscriber: &'static str) -> EventReceiver {
        EventReceiver::all(self.shared.broadcast.subscribe(), subscriber)
    }

    /// Whether the bus keeps retained events (`with_last` has something to
    /// replay).
    pub(crate) fn retains(&self) -> bool {
        self.shared.retained.is_some()
    }

    /// Registers a topic receiver (see [`EventBus::subscription`]).
    pub(crate) fn add_topic(
        &self,
        pattern: String,
        subscriber: &'static str,
        with_last: bool,
    ) -> EventReceiver {
        let pattern: Box<str> = pattern.into_boxed_str();
        let queue = Arc::new(TopicQueue::new(self.shared.capacity, subscriber));
        let id = self.next_id();
        self.join_index(&pattern, id, Target::Topic(Arc::clone(&queue)), with_last);
        self.shared.topic_receivers.fetch_add(1, Ordering::Relaxed);
        EventReceiver::topic(
            TopicSubscription::new(queue, self.registration(pattern, id)),
            subscriber,
        )
    }

    /// Subscribes capsule `capsule_uuid` to IPC events matching
    /// `topic_pattern`, queued per principal and drained fairly. See
    /// [`RoutedEventReceiver`].
    #[must_use]
    pub fn subscribe_topic_routed(
        &self,
        capsule_uuid: Uuid,
        topic_pattern: impl Into<String>,
        capsule_id_label: impl Into<String>,
        subscriber: &'static str,
    ) -> RoutedEventReceiver {
        self.subscription(topic_pattern)
            .name(subscriber)
            .routed(capsule_uuid, capsule_id_label)
            .subscribe()
    }

    /// Like [`subscribe_topic_routed`](Self::subscribe_topic_routed), but
    /// only events inside `scope` are admitted: `None` admits every event,
    /// `Some(None)` only principal-less (system) events, `Some(Some(p))`
    /// only principal `p`'s (see [`Scope`], which
    /// [`subscription`](Self::subscription)`(..).routed(..).scope(..)` takes
    /// directly). Foreign events are dropped before they touch the budget,
    /// are not counted as lag and do not wake the receiver.
    #[must_use]
    pub fn subscribe_topic_routed_scoped(
        &self,
        capsule_uuid: Uuid,
        topic_pattern: impl Into<String>,
        capsule_id_label: impl Into<String>,
        subscriber: &'static str,
        scope: Option<PrincipalKey>,
    ) -> RoutedEventReceiver {
        self.subscription(topic_pattern)
            .name(subscriber)
            .routed(capsule_uuid, capsule_id_label)
            .scope(Scope::from(scope))
            .subscribe()
    }

    /// Adds `target` to the index under `pattern`. With `with_last`, first
    /// hands it the retained events matching `pattern`, under the same
    /// sequencer lock, so nothing published meanwhile is missed or seen twice
    /// (see `retain.rs`).
    fn join_index(&self, pattern: &str, id: EntryId, target: Target, with_last: bool) {
        let mut ordered = self.shared.sequencer.lock();
        let index = &mut ordered.index;
        if with_last && let Some(retained) = &self.shared.retained {
            for (event, held) in retained.lock().matching(pattern) {
                match &target {
                    Target::Topic(queue) => queue.after_push(queue.push(event)),
                    Target::Route(route) => {
                        if let AstridEvent::Ipc { message, .. } = event.as_ref() {
                            let charge = || EventCharge::new(held, message);
                            let (_, offered) = route.offer_deferred(&event, charge, false);
                            route.after_offer(offered);
                        }
                    }
                    Target::Retain => {}
                }
            }
        }
        index.insert(pattern, id, target);
        self.shared.indexed.store(index.len(), Ordering::Relaxed);
    }

    /// Registers a routed receiver (see [`Subscription::routed`](crate::Subscription::routed)).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_route(
        &self,
        capsule_uuid: Uuid,
        topic_pattern: String,
        capsule_label: String,
        subscriber: &'static str,
        scope: Scope,
        lossless: bool,
        with_last: bool,
        gate: Option<&Gate>,
    ) -> RoutedEventReceiver {
        // Another bus's gate is changed under another lock: such a route
        // never delivers (`try_subscribe` refuses it).
        let gate = gate.map(|g| {
            if g.inner.belongs_to(&self.shared) {
                Arc::clone(&g.inner)
            } else {
                GateInner::closed()
            }
        });
        let id = self.next_id();
        let pattern: Box<str> = topic_pattern.clone().into_boxed_str();
        let key = RouteKey {
            capsule_uuid,
            topic_pattern,
            subscription_rep: id,
        };
        let route = Arc::new(Route::new(
            key,
            scope,
            gate,
            lossless,
            capsule_label,
            subscriber,
        ));
        self.join_index(&pattern, id, Target::Route(Arc::clone(&route)), with_last);
        self.shared.routes.fetch_add(1, Ordering::Relaxed);
        RoutedEventReceiver::new(route, self.registration(pattern, id))
    }

    /// The state every clone shares.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether `gate` is one of this bus's.
    pub(crate) fn owns_gate(&self, gate: &Gate) -> bool {
        gate.inner.belongs_to(&self.shared)
    }

    fn next_id(&self) -> EntryId {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn registration(&self, pattern: Box<str>, id: EntryId) -> Registration {
        Registration {
            shared: Arc::downgrade(&self.shared),
            pattern,
            id,
        }
    }

    /// Number of live async receivers: plain and topic receivers (routed
    /// subscriptions are counted by
    /// [`routed_subscription_count`](Self::routed_subscription_count)).
    #[must_use]
    pub fn subscriber_count(&self) -> usize {
        self.shared.broadcast.receiver_count() + self.shared.topic_receivers.load(Ordering::Relaxed)
    }

    /// Number of live routed subscriptions.
    #[must_use]
    pub fn routed_subscription_count(&self) -> usize {
        self.shared.routes.load(Ordering::Relaxed)
    }

    /// Registers a synchronous subscriber; it runs inside every `publish`.
    pub fn register_subscriber(&self, subscriber: Arc<dyn EventSubscriber>) -> SubscriberId {
        self.shared.registry.register(subscriber)
    }

    /// Unregisters a synchronous subscriber. Returns whether it was
    /// registered.
    pub fn unregister_subscriber(&self, id: SubscriberId) -> bool {
        self.shared.registry.unregister(id)
    }

    /// Number of registered synchronous subscribers.
    #[must_use]
    pub fn sync_subscriber_count(&self) -> usize {
        self.shared.registry.len()
    }
}
