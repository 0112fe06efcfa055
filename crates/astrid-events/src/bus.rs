//! The event bus: one publish path that feeds every kind of subscriber.
//!
//! ```text
//! publish(event)
//!   ├─ IPC: stamp message.seq (one counter shared by every clone)
//!   ├─ broadcast channel ─────────────────> plain receivers (subscribe)
//!   ├─ IPC: topic index lookup (read lock, values copied out)
//!   │     ├─ topic queues ────────────────> topic receivers (subscribe_topic*)
//!   │     └─ routes (scope, budget, DRR) ─> routed receivers
//!   │   retained store (opt-in) updated under the same read lock
//!   └─ synchronous subscribers (no lock held)
//! ```
//!
//! Every handle made by `Clone` shares one [`Shared`]: the channel, the
//! index, the sequence counter, the registry and the retained store.
//! Receivers hold only a `Weak` to it, so dropping the last bus handle ends
//! every receiver (they drain what is queued, then return `None`) and drops
//! the synchronous subscribers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::RwLock;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::error::PublishError;
use crate::event::AstridEvent;
use crate::index::{EntryId, TopicIndex};
use crate::metrics::{METRIC_BUS_EVENTS_PUBLISHED_TOTAL, UNTAGGED_SUBSCRIBER};
use crate::receiver::{EventReceiver, Registration, TopicQueue, TopicSubscription};
use crate::routed::{
    Offer, PrincipalKey, Reservation, Route, RouteKey, RoutedEventReceiver, accounted_size,
    ipc_size_of,
};
use crate::sync_sub::{EventSubscriber, SubscriberId, SubscriberRegistry};

/// Default capacity of the broadcast channel and of each topic queue.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 1024;

/// Reservations held by a waiting publisher; released if it gives up.
struct Reservations {
    routes: Vec<Arc<Route>>,
    charge: u64,
}

impl Drop for Reservations {
    fn drop(&mut self) {
        for route in &self.routes {
            route.release(self.charge);
        }
    }
}

/// One entry of the topic index.
#[derive(Clone)]
pub(crate) enum Target {
    Topic(Arc<TopicQueue>),
    Route(Arc<Route>),
}

/// State shared by every clone of a bus.
pub(crate) struct Shared {
    broadcast: broadcast::Sender<Arc<AstridEvent>>,
    capacity: usize,
    /// Last IPC sequence number handed out; the next is this + 1.
    seq: AtomicU64,
    /// Source of index entry ids and route `subscription_rep`s.
    next_id: AtomicU64,
    /// Topic receivers and routes by pattern. Publishers hold the read lock
    /// only while copying matches out, never while delivering.
    index: RwLock<TopicIndex<Target>>,
    topic_receivers: AtomicUsize,
    routes: AtomicUsize,
    registry: SubscriberRegistry,
}

impl Shared {
    /// Removes an index entry (called by a dropped receiver).
    pub(crate) fn unregister(&self, pattern: &str, id: EntryId) {
        let removed = self.index.write().remove(pattern, id);
        match removed {
            Some(Target::Topic(_)) => {
                self.topic_receivers.fetch_sub(1, Ordering::Relaxed);
            }
            Some(Target::Route(_)) => {
                self.routes.fetch_sub(1, Ordering::Relaxed);
            }
            None => {}
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The bus is gone: release every receiver still waiting.
        self.index.get_mut().for_each(|target| match target {
            Target::Topic(queue) => queue.close(),
            Target::Route(route) => route.close(),
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
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CHANNEL_CAPACITY)
    }

    /// A bus whose broadcast channel and topic queues hold `capacity` events
    /// each (at least 1; 0 is raised to 1).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (broadcast, _) = broadcast::channel(capacity);
        Self {
            shared: Arc::new(Shared {
                broadcast,
                capacity,
                seq: AtomicU64::new(0),
                next_id: AtomicU64::new(1),
                index: RwLock::new(TopicIndex::default()),
                topic_receivers: AtomicUsize::new(0),
                routes: AtomicUsize::new(0),
                registry: SubscriberRegistry::new(),
            }),
        }
    }

    /// The capacity given at construction.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Publishes `event` to every subscriber.
    ///
    /// An IPC event gets the next sequence number in `message.seq` (shared by
    /// every clone, starting at 1, unique and gap-free). Async receivers get
    /// the event before synchronous subscribers run.
    ///
    /// Returns how many async receivers the event was handed to: plain
    /// receivers, matching topic receivers and matching routes that queued
    /// it.
    pub fn publish(&self, event: AstridEvent) -> usize {
        self.publish_reserved(event, &[])
    }

    /// `publish`, where `reserved` routes already hold room for the event.
    fn publish_reserved(&self, mut event: AstridEvent, reserved: &[Arc<Route>]) -> usize {
        if let AstridEvent::Ipc { message, .. } = &mut event {
            message.seq = self.shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
        }
        let event = Arc::new(event);
        metrics::counter!(METRIC_BUS_EVENTS_PUBLISHED_TOTAL, "event_kind" => event.event_type())
            .increment(1);
        let mut reached = self.shared.broadcast.send(Arc::clone(&event)).unwrap_or(0);
        reached += self.deliver_indexed(&event, reserved);
        self.shared.registry.dispatch(&event, self);
        reached
    }

    /// Hands an IPC event to the matching topic receivers and routes.
    fn deliver_indexed(&self, event: &Arc<AstridEvent>, reserved: &[Arc<Route>]) -> usize {
        let AstridEvent::Ipc { message, .. } = event.as_ref() else {
            return 0;
        };
        let targets = self.matching_targets(&message.topic);
        let mut size = None;
        let mut reached = 0;
        for target in &targets {
            match target {
                Target::Topic(queue) => {
                    queue.push(Arc::clone(event));
                    reached += 1;
                }
                Target::Route(route) => {
                    // Computed once per publish, and only if a route matched.
                    let size = *size.get_or_insert_with(|| ipc_size_of(event));
                    let has_reservation = reserved.iter().any(|r| Arc::ptr_eq(r, route));
                    if route.offer(event, size, has_reservation) == Offer::Queued {
                        reached += 1;
                    }
                }
            }
        }
        reached
    }

    /// Copies out the index entries matching `topic` (read lock held only
    /// for the copy).
    fn matching_targets(&self, topic: &str) -> Vec<Target> {
        let index = self.shared.index.read();
        let mut targets = Vec::new();
        if index.len() > 0 {
            index.for_each_match(topic, |t| targets.push(t.clone()));
        }
        targets
    }

    /// Publishes `event`, first waiting (at most `timeout`) until every
    /// matching lossless route has room for it, so none of them drops it.
    ///
    /// The trade-off: a slow lossless consumer slows down its publishers.
    /// Routes that are not lossless are unaffected (they evict as usual).
    /// Room is reserved route by route (in subscription order, so two
    /// publishers cannot hold each other up); a route whose receiver is
    /// dropped while a publisher waits releases it at once. An event larger
    /// than a route's whole budget is not waited for: that route rejects and
    /// counts it.
    ///
    /// # Errors
    /// [`PublishError::Timeout`] with the event handed back if some matching
    /// lossless route stayed full for the whole `timeout`; nothing was
    /// published then.
    ///
    /// # Cancel safety
    /// Not publishing is the only effect of cancelling: reservations are
    /// released when the future is dropped.
    pub async fn publish_with_backpressure(
        &self,
        event: AstridEvent,
        timeout: std::time::Duration,
    ) -> Result<usize, PublishError> {
        let AstridEvent::Ipc { message, .. } = &event else {
            return Ok(self.publish(event));
        };
        let principal = message.principal.as_deref();
        let mut lossless: Vec<Arc<Route>> = self
            .matching_targets(&message.topic)
            .into_iter()
            .filter_map(|t| match t {
                Target::Route(r) if r.lossless && r.admits(principal) => Some(r),
                _ => None,
            })
            .collect();
        if lossless.is_empty() {
            return Ok(self.publish(event));
        }
        lossless.sort_by_key(|r| r.key.subscription_rep);
        let charge = Route::charge_of(accounted_size(&event));
        let start = tokio::time::Instant::now();
        let deadline = start.checked_add(timeout);
        let mut held = Reservations {
            routes: Vec::new(),
            charge,
        };
        for route in lossless {
            loop {
                let space = route.space_notified();
                tokio::pin!(space);
                space.as_mut().enable();
                match route.try_reserve(charge) {
                    Reservation::Reserved => {
                        held.routes.push(Arc::clone(&route));
                        break;
                    }
                    Reservation::NotNeeded => break,
                    Reservation::Full => {}
                }
                let woke = match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline, space).await.is_ok(),
                    None => {
                        space.await;
                        true
                    }
                };
                if !woke {
                    return Err(PublishError::Timeout {
                        event: Box::new(event),
                        waited: start.elapsed(),
                    });
                }
            }
        }
        let reached = self.publish_reserved(event, &held.routes);
        // Consumed by the publish; nothing to give back.
        held.routes.clear();
        Ok(reached)
    }

    /// Subscribes like
    /// [`subscribe_topic_routed_scoped`](Self::subscribe_topic_routed_scoped),
    /// but the route never evicts: when it is full, a plain `publish` drops
    /// the new event for this route (counted, reported by `drain_lagged`),
    /// and [`publish_with_backpressure`](Self::publish_with_backpressure)
    /// waits for room. For streams that must not be cut, like LLM tokens.
    pub fn subscribe_topic_routed_lossless(
        &self,
        capsule_uuid: Uuid,
        topic_pattern: impl Into<String>,
        capsule_id_label: impl Into<String>,
        subscriber: &'static str,
        scope: Option<PrincipalKey>,
    ) -> RoutedEventReceiver {
        self.add_route(
            capsule_uuid,
            topic_pattern.into(),
            capsule_id_label.into(),
            subscriber,
            scope,
            true,
        )
    }

    /// Subscribes to every event. Lag is reported under `untagged`.
    pub fn subscribe(&self) -> EventReceiver {
        self.subscribe_as(UNTAGGED_SUBSCRIBER)
    }

    /// Subscribes to every event; `subscriber` labels its lag metric.
    pub fn subscribe_as(&self, subscriber: &'static str) -> EventReceiver {
        EventReceiver::all(self.shared.broadcast.subscribe(), subscriber)
    }

    /// Subscribes to IPC events whose topic matches `pattern`.
    pub fn subscribe_topic(&self, pattern: impl Into<String>) -> EventReceiver {
        self.subscribe_topic_as(pattern, UNTAGGED_SUBSCRIBER)
    }

    /// Subscribes to IPC events whose topic matches `pattern`; `subscriber`
    /// labels its lag metric.
    ///
    /// Non-IPC events never reach a topic receiver. Only publishes whose
    /// topic matches touch this receiver at all.
    pub fn subscribe_topic_as(
        &self,
        pattern: impl Into<String>,
        subscriber: &'static str,
    ) -> EventReceiver {
        let pattern: Box<str> = pattern.into().into_boxed_str();
        let queue = Arc::new(TopicQueue::new(self.shared.capacity, subscriber));
        let id = self.next_id();
        self.shared
            .index
            .write()
            .insert(&pattern, id, Target::Topic(Arc::clone(&queue)));
        self.shared.topic_receivers.fetch_add(1, Ordering::Relaxed);
        EventReceiver::topic(
            TopicSubscription::new(queue, self.registration(pattern, id)),
            subscriber,
        )
    }

    /// Subscribes capsule `capsule_uuid` to IPC events matching
    /// `topic_pattern`, queued per principal and drained fairly. See
    /// [`RoutedEventReceiver`].
    pub fn subscribe_topic_routed(
        &self,
        capsule_uuid: Uuid,
        topic_pattern: impl Into<String>,
        capsule_id_label: impl Into<String>,
        subscriber: &'static str,
    ) -> RoutedEventReceiver {
        self.subscribe_topic_routed_scoped(
            capsule_uuid,
            topic_pattern,
            capsule_id_label,
            subscriber,
            None,
        )
    }

    /// Like [`subscribe_topic_routed`](Self::subscribe_topic_routed), but
    /// with `scope: Some(p)` only events whose principal equals `p` are
    /// admitted. Foreign events are dropped before they touch the budget, are
    /// not counted as lag and do not wake the receiver.
    pub fn subscribe_topic_routed_scoped(
        &self,
        capsule_uuid: Uuid,
        topic_pattern: impl Into<String>,
        capsule_id_label: impl Into<String>,
        subscriber: &'static str,
        scope: Option<PrincipalKey>,
    ) -> RoutedEventReceiver {
        self.add_route(
            capsule_uuid,
            topic_pattern.into(),
            capsule_id_label.into(),
            subscriber,
            scope,
            false,
        )
    }

    pub(crate) fn add_route(
        &self,
        capsule_uuid: Uuid,
        topic_pattern: String,
        capsule_label: String,
        subscriber: &'static str,
        scope: Option<PrincipalKey>,
        lossless: bool,
    ) -> RoutedEventReceiver {
        let id = self.next_id();
        let pattern: Box<str> = topic_pattern.clone().into_boxed_str();
        let key = RouteKey {
            capsule_uuid,
            topic_pattern,
            subscription_rep: id,
        };
        let route = Arc::new(Route::new(key, scope, lossless, capsule_label, subscriber));
        self.shared
            .index
            .write()
            .insert(&pattern, id, Target::Route(Arc::clone(&route)));
        self.shared.routes.fetch_add(1, Ordering::Relaxed);
        RoutedEventReceiver::new(route, self.registration(pattern, id))
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
    pub fn subscriber_count(&self) -> usize {
        self.shared.broadcast.receiver_count() + self.shared.topic_receivers.load(Ordering::Relaxed)
    }

    /// Number of live routed subscriptions.
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
    pub fn sync_subscriber_count(&self) -> usize {
        self.shared.registry.len()
    }
}
