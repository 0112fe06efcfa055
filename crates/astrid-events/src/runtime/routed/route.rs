//! One routed subscription: its shared state and its receiver handle.
//!
//! The bus holds an `Arc<Route>` in its topic index; the receiver holds the
//! other. A publish offers each matching route the event under the bus's
//! publish lock (`Route::offer_deferred`: the route checks scope, charges
//! the budget and queues), then, with no lock held, `Route::after_offer`
//! wakes the receiver only when its queue went from empty to non-empty. Lock order: a route's
//! state lock is a leaf: nothing else is locked while it is held, and wakers
//! run after it is released.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge};

use super::queue::{Popped, PushOutcome, RouteQueue, slot_charge};
use super::{
    CLASSES, DRR_QUANTUM_MIN_BYTES, EventCharge, MAX_SUBSCRIPTION_BUDGET_BYTES, PrincipalKey,
    RouteKey, class_index,
};
use crate::metrics::{
    DROP_LOSSLESS_FULL, DROP_OVERSIZE, METRIC_ROUTE_ACTIVE_PRINCIPALS,
    METRIC_ROUTE_BUDGET_BYTES_IN_USE, METRIC_ROUTE_BYTE_EVICTIONS_TOTAL,
    METRIC_ROUTE_DROPPED_TOTAL, METRIC_ROUTE_QUANTUM_STARVED_TOTAL,
};
use crate::runtime::gate::GateInner;
use crate::runtime::receiver::Registration;
use crate::runtime::scope::{Scope, request_owner_of};
use crate::runtime::sync::{Mutex, Notified, Notify};
use crate::schema::event::AstridEvent;

/// Metric handles of one route, one per principal class, made once at
/// subscription so the hot path does no label lookups.
struct RouteMetrics {
    evictions: [Counter; 3],
    starved: [Counter; 3],
    oversize: [Counter; 3],
    lossless_full: [Counter; 3],
    active: [Gauge; 3],
    bytes: [Gauge; 3],
}

impl RouteMetrics {
    fn new(capsule: &str) -> Self {
        let counter = |name: &'static str, class: &'static str| metrics::counter!(name, "capsule" => capsule.to_owned(), "principal_class" => class);
        let dropped = |reason: &'static str, class: &'static str| {
            metrics::counter!(METRIC_ROUTE_DROPPED_TOTAL, "capsule" => capsule.to_owned(),
                "principal_class" => class, "reason" => reason)
        };
        let gauge = |name: &'static str, class: &'static str| metrics::gauge!(name, "capsule" => capsule.to_owned(), "principal_class" => class);
        Self {
            evictions: CLASSES.map(|c| counter(METRIC_ROUTE_BYTE_EVICTIONS_TOTAL, c)),
            starved: CLASSES.map(|c| counter(METRIC_ROUTE_QUANTUM_STARVED_TOTAL, c)),
            oversize: CLASSES.map(|c| dropped(DROP_OVERSIZE, c)),
            lossless_full: CLASSES.map(|c| dropped(DROP_LOSSLESS_FULL, c)),
            active: CLASSES.map(|c| gauge(METRIC_ROUTE_ACTIVE_PRINCIPALS, c)),
            bytes: CLASSES.map(|c| gauge(METRIC_ROUTE_BUDGET_BYTES_IN_USE, c)),
        }
    }
}

struct RouteState {
    queue: RouteQueue,
    /// Events dropped since the receiver last asked (`drain_lagged`).
    lagged: u64,
    /// Bytes promised to publishers waiting with backpressure; a lossless
    /// route admits a plain push only if it fits beside them.
    reserved: u64,
    /// Set when the receiver is dropped or the bus is gone.
    closed: bool,
}

/// Outcome of [`Route::try_reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reservation {
    /// Room was reserved.
    Reserved,
    /// No room now.
    Full,
    /// Nothing to wait for (closed route or oversize event).
    NotNeeded,
}

/// What a route did with an offered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Queued (possibly after evicting older events, which were counted).
    Queued,
    /// Not this route's: the route is scoped to another principal.
    Foreign,
    /// Not admitted: the route's gate is not published.
    Gated,
    /// Dropped and counted (oversize, or a full lossless route).
    Dropped,
    /// The route is closed.
    Closed,
}

/// What [`Route::offer_deferred`] leaves to do once the publisher's locks
/// are released.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Offered {
    /// The queue went from empty to non-empty: wake the receiver.
    wake: bool,
    /// This offer started a loss episode of this many events: log it.
    first_loss: Option<u64>,
    /// A reservation was given back unused: wake publishers waiting for
    /// room.
    released: bool,
}

impl Offered {
    /// What several offers to one route leave to do, done once: one wakeup
    /// and one log line for the losses that started an episode.
    pub(crate) fn merge(self, later: Self) -> Self {
        let first_loss = match (self.first_loss, later.first_loss) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        Self {
            wake: self.wake || later.wake,
            first_loss,
            released: self.released || later.released,
        }
    }
}

/// The shared state of one routed subscription.
pub(crate) struct Route {
    pub(crate) key: RouteKey,
    /// Which principals' events are admitted (see `scope.rs`).
    scope: Scope,
    /// Admits events only while published (see `gate.rs`); `None`: always.
    gate: Option<Arc<GateInner>>,
    /// A lossless route never evicts; see `EventBus::publish_with_backpressure`.
    pub(crate) lossless: bool,
    subscriber: &'static str,
    capsule_label: String,
    state: Mutex<RouteState>,
    /// Wakes the receiver when the queue goes from empty to non-empty.
    ready: Notify,
    /// Wakes publishers waiting for room (lossless routes) after a pop.
    space: Notify,
    metrics: RouteMetrics,
}

fn principal_of(event: &AstridEvent) -> Option<&str> {
    match event {
        AstridEvent::Ipc { message, .. } => message.principal.as_deref(),
        _ => None,
    }
}

fn request_owner_of_event(event: &AstridEvent) -> Option<&str> {
    match event {
        AstridEvent::Ipc { message, .. } => request_owner_of(message),
        _ => None,
    }
}

impl Route {
    pub(crate) fn new(
        key: RouteKey,
        scope: Scope,
        gate: Option<Arc<GateInner>>,
        lossless: bool,
        capsule_label: String,
        subscriber: &'static str,
    ) -> Self {
        let metrics = RouteMetrics::new(&capsule_label);
        Self {
            key,
            scope,
            gate,
            lossless,
            subscriber,
            capsule_label,
            state: Mutex::new(RouteState {
                queue: RouteQueue::new(
                    MAX_SUBSCRIPTION_BUDGET_BYTES as u64,
                    DRR_QUANTUM_MIN_BYTES as u64,
                ),
                lagged: 0,
                reserved: 0,
                closed: false,
            }),
            ready: Notify::new(),
            space: Notify::new(),
            metrics,
        }
    }

    /// Whether this route wants an event of `principal` for
    /// `request_owner` now: inside its scope and its gate published.
    pub(crate) fn wants(&self, principal: Option<&str>, request_owner: Option<&str>) -> bool {
        self.admits(principal, request_owner) && self.gate_open()
    }

    /// Whether an event of `principal` for `request_owner` is inside this
    /// route's scope (which never changes; the gate aside).
    pub(crate) fn admits(&self, principal: Option<&str>, request_owner: Option<&str>) -> bool {
        self.scope.admits_request(principal, request_owner)
    }

    /// Whether the route's gate (if any) is published. Read under the
    /// publish lock, which orders it with every gate change.
    #[inline]
    pub(crate) fn gate_open(&self) -> bool {
        self.gate.as_ref().is_none_or(|g| g.is_published())
    }

    /// What a publisher waiting for room reserves for an event of `charge`
    /// (held bytes plus overhead) for `principal`: the most it can add, the
    /// event and a new slot for its principal.
    pub(crate) fn reservation(principal: Option<&str>, charge: u64) -> u64 {
        charge.saturating_add(slot_charge(principal))
    }

    /// Offers `event` to this route, charged what `charge` computes (the
    /// publisher computes it at most once per publish, and not at all when
    /// every route it offers to refuses the event by scope). The wakeup and the loss log are left to
    /// [`after_offer`](Self::after_offer), so the publisher makes them after
    /// releasing the bus's publish lock.
    ///
    /// `reserved`: the publisher reserved room with [`try_reserve`](Self::try_reserve);
    /// the reservation is consumed.
    pub(crate) fn offer_deferred(
        &self,
        event: &Arc<AstridEvent>,
        charge: impl FnOnce() -> EventCharge,
        reserved: bool,
    ) -> (Offer, Offered) {
        let nothing = Offered::default();
        let principal = principal_of(event);
        // Scope first: an event outside it never touches the budget (and is
        // not even measured).
        if !self
            .scope
            .admits_request(principal, request_owner_of_event(event))
        {
            return (Offer::Foreign, nothing);
        }
        let charge = charge();
        if !self.gate_open() {
            // Closed since the publisher reserved: the room goes back.
            if reserved {
                let mut state = self.state.lock();
                let reservation = Self::reservation(principal, charge.charge);
                state.reserved = state.reserved.saturating_sub(reservation);
                let released = Offered {
                    released: true,
                    ..nothing
                };
                return (Offer::Gated, released);
            }
            return (Offer::Gated, nothing);
        }
        let class = class_index(principal);
        let key: PrincipalKey = principal.map(str::to_owned);
        let (offer, was_empty, first_loss, lost) = {
            let mut state = self.state.lock();
            if state.closed {
                return (Offer::Closed, nothing);
            }
            let was_empty = state.queue.is_empty();
            if reserved {
                let reservation = Self::reservation(principal, charge.charge);
                state.reserved = state.reserved.saturating_sub(reservation);
            } else if self.lossless
                && !state
                    .queue
                    .has_room_for(state.queue.need(&key, charge.charge) + state.reserved)
            {
                // Room promised to waiting publishers is not this push's.
                state.lagged += 1;
                drop(state);
                self.metrics.lossless_full[class].increment(1);
                return (Offer::Dropped, nothing);
            }
            let outcome = state.queue.push(
                Arc::clone(event),
                key,
                charge.charge,
                charge.size,
                self.lossless,
            );
            let first_loss = state.lagged == 0;
            let (offer, lost) = match outcome {
                PushOutcome::Queued {
                    evicted,
                    new_principal,
                    charged,
                } => {
                    self.metrics.bytes[class].increment(charged as f64);
                    if new_principal {
                        self.metrics.active[class].increment(1.0);
                    }
                    for e in &evicted {
                        let c = class_index(e.principal.as_deref());
                        self.metrics.evictions[c].increment(1);
                        self.metrics.bytes[c].decrement(e.freed as f64);
                        if e.emptied {
                            self.metrics.active[c].decrement(1.0);
                        }
                    }
                    (Offer::Queued, evicted.len() as u64)
                }
                PushOutcome::Oversize => {
                    self.metrics.oversize[class].increment(1);
                    (Offer::Dropped, 1)
                }
                PushOutcome::Full => {
                    self.metrics.lossless_full[class].increment(1);
                    (Offer::Dropped, 1)
                }
            };
            state.lagged += lost;
            (offer, was_empty, first_loss && lost > 0, lost)
        };
        let offered = Offered {
            wake: offer == Offer::Queued && was_empty,
            first_loss: first_loss.then_some(lost),
            released: false,
        };
        (offer, offered)
    }

    /// Logs the first loss of an episode and wakes the receiver, as
    /// `offered` says.
    pub(crate) fn after_offer(&self, offered: Offered) {
        if let Some(lost) = offered.first_loss {
            tracing::warn!(
                target: "astrid_events::security",
                capsule = %self.capsule_label,
                subscriber = self.subscriber,
                pattern = %self.key.topic_pattern,
                lost,
                "routed subscription dropped events (budget or size); counted for the receiver"
            );
        }
        if offered.wake {
            self.ready.notify_one();
        }
        if offered.released {
            self.space.notify_waiters();
        }
    }

    /// Reserves `amount` bytes (the [`reservation`](Self::reservation) of
    /// one event, or the sum of a batch's) if they fit beside what is queued
    /// and already reserved. A closed route needs no room, nor does an
    /// amount larger than the whole budget, which can never fit (a single
    /// such event is rejected and counted at commit; a batch is refused
    /// before it waits, see [`exceeds_budget`](Self::exceeds_budget)).
    pub(crate) fn try_reserve(&self, amount: u64) -> Reservation {
        let mut state = self.state.lock();
        if state.closed || amount > state.queue.budget() {
            return Reservation::NotNeeded;
        }
        if state
            .queue
            .has_room_for(amount.saturating_add(state.reserved))
        {
            state.reserved += amount;
            Reservation::Reserved
        } else {
            Reservation::Full
        }
    }

    /// Whether `amount` bytes can never be reserved in this open route:
    /// `Some(budget)` if they exceed its whole budget.
    pub(crate) fn exceeds_budget(&self, amount: u64) -> Option<u64> {
        let state = self.state.lock();
        let budget = state.queue.budget();
        (!state.closed && amount > budget).then_some(budget)
    }

    /// Gives back a reservation of `amount` bytes that will not be used.
    pub(crate) fn release(&self, amount: u64) {
        let mut state = self.state.lock();
        state.reserved = state.reserved.saturating_sub(amount);
        drop(state);
        self.space.notify_waiters();
    }

    /// A future that completes after the next pop or close.
    pub(crate) fn space_notified(&self) -> Notified<'_> {
        self.space.notified()
    }

    fn pop_within(&self, limit: u64) -> Option<Popped> {
        let popped = {
            let mut state = self.state.lock();
            let popped = state.queue.pop_within(limit);
            for p in state.queue.starved_turns.drain(..) {
                self.metrics.starved[class_index(p.as_deref())].increment(1);
            }
            popped
        }?;
        let class = class_index(principal_of(&popped.event));
        self.metrics.bytes[class].decrement(popped.freed as f64);
        if popped.principal_emptied.is_some() {
            self.metrics.active[class].decrement(1.0);
        }
        if self.lossless {
            self.space.notify_waiters();
        }
        Some(popped)
    }

    /// Moves up to `limit` events into `buf` in DRR order under one lock of
    /// the route; returns how many. The metrics and the wakeup of waiting
    /// publishers are updated once for all of them, after the lock.
    fn pop_many(&self, buf: &mut Vec<Arc<AstridEvent>>, limit: usize) -> usize {
        let mut freed = [0u64; 3];
        let mut emptied = [0u64; 3];
        let mut taken = 0;
        {
            let mut state = self.state.lock();
            while taken < limit {
                let Some(popped) = state.queue.pop() else {
                    break;
                };
                let class = class_index(principal_of(&popped.event));
                freed[class] += popped.freed;
                emptied[class] += u64::from(popped.principal_emptied.is_some());
                buf.push(popped.event);
                taken += 1;
            }
            for p in state.queue.starved_turns.drain(..) {
                self.metrics.starved[class_index(p.as_deref())].increment(1);
            }
        }
        for class in 0..CLASSES.len() {
            if freed[class] > 0 {
                self.metrics.bytes[class].decrement(freed[class] as f64);
            }
            if emptied[class] > 0 {
                self.metrics.active[class].decrement(emptied[class] as f64);
            }
        }
        if self.lossless && taken > 0 {
            self.space.notify_waiters();
        }
        taken
    }

    /// Closes the route: drops what is queued, releases waiting publishers
    /// and the receiver.
    pub(crate) fn close(&self) {
        let drained = {
            let mut state = self.state.lock();
            state.closed = true;
            let mut drained = Vec::new();
            while let Some(p) = state.queue.pop() {
                drained.push(p);
            }
            state.queue.starved_turns.clear();
            drained
        };
        for p in drained {
            let class = class_index(principal_of(&p.event));
            self.metrics.bytes[class].decrement(p.freed as f64);
            if p.principal_emptied.is_some() {
                self.metrics.active[class].decrement(1.0);
            }
        }
        self.ready.notify_one();
        self.space.notify_waiters();
    }

    /// The bus is gone: accept nothing more, but let the receiver take what
    /// is queued before `recv` returns `None`.
    pub(crate) fn shutdown(&self) {
        self.state.lock().closed = true;
        self.ready.notify_one();
        self.space.notify_waiters();
    }

    fn is_closed(&self) -> bool {
        self.state.lock().closed
    }
}

/// The receiver of a routed subscription.
///
/// Hands out matching IPC events in DRR order across principals (FIFO per
/// principal). Dropping it removes the route from the bus at once.
pub struct RoutedEventReceiver {
    route: Arc<Route>,
    /// Removes the route from the bus index on drop (after `route` closes).
    _registration: Registration,
}

impl std::fmt::Debug for RoutedEventReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedEventReceiver")
            .field("key", &self.route.key)
            .field("subscriber", &self.route.subscriber)
            .field("lossless", &self.route.lossless)
            .finish_non_exhaustive()
    }
}

impl Drop for RoutedEventReceiver {
    fn drop(&mut self) {
        self.route.close();
    }
}

impl RoutedEventReceiver {
    pub(crate) fn new(route: Arc<Route>, registration: Registration) -> Self {
        Self {
            route,
            _registration: registration,
        }
    }

    /// The identity of this subscription.
    #[must_use]
    pub fn key(&self) -> &RouteKey {
        &self.route.key
    }

    /// Waits for the next event, at most `timeout` (`None`: no limit).
    ///
    /// Returns `None` when the timeout passes with no event, or when the bus
    /// is gone. Wakes as soon as a matching event is published; never spins.
    /// Needs a tokio runtime with the time driver when `timeout` is `Some`.
    ///
    /// # Cancel safety
    /// Cancel safe: an event is taken only when the future completes.
    pub async fn recv(&mut self, timeout: Option<Duration>) -> Option<Arc<AstridEvent>> {
        let deadline = timeout.and_then(|t| tokio::time::Instant::now().checked_add(t));
        loop {
            if let Some(event) = self.try_recv_one() {
                return Some(event);
            }
            if self.route.is_closed() {
                // Closed routes accept nothing more, but an event may have
                // been queued between the pop above and the close (found by
                // the loom model `bus_shutdown_wakes_a_waiting_receiver`):
                // hand it out before ending.
                return self.try_recv_one();
            }
            let ready = self.route.ready.notified();
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, ready).await.is_err() {
                        return self.try_recv_one();
                    }
                }
                None => ready.await,
            }
        }
    }

    /// Takes exactly one event, if one is queued.
    pub fn try_recv_one(&mut self) -> Option<Arc<AstridEvent>> {
        self.route.pop_within(u64::MAX).map(|p| p.event)
    }

    /// Takes events in DRR order while their accounted sizes
    /// ([`ipc_size_of`](super::ipc_size_of)) add up to at most
    /// `budget_bytes`; always takes at least one event if any is queued, so a
    /// budget smaller than one event still makes progress. The rest stays
    /// queued, and the DRR position carries over to the next call.
    pub fn try_drain(&mut self, budget_bytes: usize) -> Vec<Arc<AstridEvent>> {
        let mut out = Vec::new();
        let Some(first) = self.route.pop_within(u64::MAX) else {
            return out;
        };
        let mut remaining = (budget_bytes as u64).saturating_sub(first.size);
        out.push(first.event);
        while let Some(p) = self.route.pop_within(remaining) {
            remaining -= p.size;
            out.push(p.event);
        }
        out
    }

    /// Waits for at least one event, then moves up to `limit` queued events
    /// into `buf` in DRR order. Returns how many were added (0 when the bus
    /// is gone or `limit` is 0). One wakeup serves the whole batch, taken
    /// under one lock of the route.
    ///
    /// # Cancel safety
    /// Cancel safe: events are moved into `buf` only when the future
    /// completes.
    pub async fn recv_many(&mut self, buf: &mut Vec<Arc<AstridEvent>>, limit: usize) -> usize {
        if limit == 0 {
            return 0;
        }
        loop {
            let taken = self.route.pop_many(buf, limit);
            if taken > 0 {
                return taken;
            }
            if self.route.is_closed() {
                // As in `recv`: an event queued between the pop and the
                // close is handed out before ending.
                return self.route.pop_many(buf, limit);
            }
            self.route.ready.notified().await;
        }
    }

    /// Events this route dropped (budget eviction, oversize, full lossless
    /// route) since the last call; resets the count.
    ///
    /// For any run, events received + the sum of `drain_lagged()` equals the
    /// matching events published while the receiver existed.
    pub fn drain_lagged(&mut self) -> u64 {
        std::mem::take(&mut self.route.state.lock().lagged)
    }

    /// Principals with queued events.
    #[must_use]
    pub fn active_principals(&self) -> usize {
        self.route.state.lock().queue.active_principals()
    }

    /// Charged bytes queued: what the queued events hold, plus
    /// [`ROUTED_EVENT_OVERHEAD_BYTES`](super::ROUTED_EVENT_OVERHEAD_BYTES)
    /// per event and a per-principal charge for each principal with queued
    /// events; at most [`MAX_SUBSCRIPTION_BUDGET_BYTES`], whose docs say
    /// what is counted.
    #[must_use]
    pub fn total_bytes(&self) -> usize {
        self.route.state.lock().queue.bytes() as usize
    }

    /// The subscriber label given at subscription.
    #[must_use]
    pub fn subscriber(&self) -> &'static str {
        self.route.subscriber
    }
}
