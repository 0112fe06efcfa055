//! Two-phase publish: reserve room, let the caller re-check its authority,
//! then commit or drop.
//!
//! ```text
//! reserve(event, timeout) ── waits for room in every matching lossless route
//! reserve_batch(events, ..)  (reserved route by route; released on drop)
//!        │
//!        ▼
//!   PublishPermit ── the caller re-checks authority (a revoked grant, a closed
//!   BatchPermit      session, a retired generation...)
//!        ├─ commit()  stamps `seq` under the publish lock, at commit time, and
//!        │            delivers; the reservations are consumed
//!        └─ drop / cancel()  nothing is published; the room goes back at once
//! ```
//!
//! Room is reserved only in lossless routes (they never evict, so they are
//! the ones a publisher must wait for); other routes take the event at
//! commit as any publish would. The reservation of a route is the most the
//! event can add to it (its charge plus a new principal slot), so a
//! committed event always fits a route it reserved in. A batch reserves in
//! each route the sum of its events' reservations there, in one step (see
//! [`EventBus::reserve_batch`] for why). [`EventBus::publish_with_backpressure`]
//! and [`EventBus::publish_batch_with_backpressure`] are a reserve followed
//! at once by `commit`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::bus::EventBus;
use crate::runtime::error::{BatchPublishError, PublishError};
use crate::runtime::held::held_bytes;
use crate::runtime::routed::{EventCharge, Reservation, Route};
use crate::runtime::scope::request_owner_of;
use crate::schema::event::AstridEvent;

/// Bytes reserved in one lossless route.
pub(crate) struct HeldRoom {
    pub(crate) route: Arc<Route>,
    bytes: u64,
}

/// Room held in lossless routes for one event or one batch; given back on
/// drop unless it was committed (`routes` is then emptied).
pub(crate) struct Reservations {
    pub(crate) routes: Vec<HeldRoom>,
}

impl Drop for Reservations {
    fn drop(&mut self) {
        for held in &self.routes {
            held.route.release(held.bytes);
        }
    }
}

impl Reservations {
    /// Reserves `bytes` in each of `wanted` (sorted by subscription), one
    /// route after the other, waiting at most `timeout` in all for routes
    /// that are full. Each route's amount is reserved in one step, never in
    /// part. A closed route, or an amount above its whole budget, is not
    /// waited for. `Err`: how long it waited; nothing stays reserved.
    async fn wait_for(
        wanted: impl IntoIterator<Item = (Arc<Route>, u64)>,
        timeout: Duration,
    ) -> Result<Self, Duration> {
        let start = tokio::time::Instant::now();
        let deadline = start.checked_add(timeout);
        // Dropped on every early return (timeout, or the future dropped):
        // what it holds goes back.
        let mut held = Self { routes: Vec::new() };
        for (route, bytes) in wanted {
            let reserved = loop {
                // Registered before the check, so a pop between the check and
                // the wait still wakes this publisher.
                let space = route.space_notified();
                tokio::pin!(space);
                space.as_mut().enable();
                match route.try_reserve(bytes) {
                    Reservation::Reserved => break true,
                    Reservation::NotNeeded => break false,
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
                    return Err(start.elapsed());
                }
            };
            if reserved {
                held.routes.push(HeldRoom { route, bytes });
            }
        }
        Ok(held)
    }
}

/// Room reserved for one event in every matching lossless route, waiting to
/// be committed.
///
/// Made by [`EventBus::reserve`]. [`commit`](Self::commit) publishes the
/// event; dropping the permit (or [`cancel`](Self::cancel)) publishes
/// nothing and gives the room back at once, waking publishers that wait for
/// it. Between the two the caller can check, with the event in hand, that it
/// may still publish it.
#[must_use = "dropping a permit publishes nothing; call `commit`"]
pub struct PublishPermit {
    bus: EventBus,
    event: AstridEvent,
    held: Reservations,
    /// The routed charge, measured once at reserve time.
    charge: Option<EventCharge>,
}

impl std::fmt::Debug for PublishPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishPermit")
            .field("event", &self.event.event_type())
            .field("reserved_routes", &self.held.routes.len())
            .finish_non_exhaustive()
    }
}

impl PublishPermit {
    /// The event this permit would publish.
    #[must_use]
    pub fn event(&self) -> &AstridEvent {
        &self.event
    }

    /// Publishes the event: it gets its `seq` now, under the publish lock,
    /// so permits committed in some order are numbered and delivered in that
    /// order, whatever order they were reserved in. Returns what
    /// [`EventBus::publish`] returns.
    ///
    /// Routes that reserved room take the event into it. A lossless route
    /// subscribed after the reservation had none: it takes the event only
    /// if it has room (like a plain `publish`).
    pub fn commit(self) -> usize {
        let Self {
            bus,
            event,
            mut held,
            charge,
        } = self;
        let reached = bus.publish_arc(Arc::new(event), &held.routes, charge);
        // Consumed by the publish (or given back by it, for a route whose
        // gate closed meanwhile); nothing left to release.
        held.routes.clear();
        reached
    }

    /// Gives up: publishes nothing, releases the room, and hands the event
    /// back.
    pub fn cancel(self) -> AstridEvent {
        // `self.held` is dropped here: its room goes back.
        self.event
    }
}

/// Room reserved for a batch of events in every matching lossless route,
/// waiting to be committed: the batch form of [`PublishPermit`].
///
/// Made by [`EventBus::reserve_batch`]. [`commit`](Self::commit) publishes
/// the whole batch as [`EventBus::publish_batch`] does; dropping the permit
/// (or [`cancel`](Self::cancel)) publishes none of it and gives all its room
/// back at once, waking publishers that wait for it.
#[must_use = "dropping a permit publishes nothing; call `commit`"]
pub struct BatchPermit {
    bus: EventBus,
    events: Vec<AstridEvent>,
    /// Each event's routed charge, measured at reserve time if a lossless
    /// route wanted it.
    charges: Vec<Option<EventCharge>>,
    held: Reservations,
}

impl std::fmt::Debug for BatchPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchPermit")
            .field("events", &self.events.len())
            .field("reserved_routes", &self.held.routes.len())
            .finish_non_exhaustive()
    }
}

impl BatchPermit {
    /// The events this permit would publish, in order.
    #[must_use]
    pub fn events(&self) -> &[AstridEvent] {
        &self.events
    }

    /// Publishes the batch as [`EventBus::publish_batch`] does: under one
    /// acquisition of the publish lock, the IPC events get consecutive
    /// `seq`s now (at commit, not at reserve), every receiver gets its
    /// events in batch order, and each topic or routed receiver is woken at
    /// most once. Returns what `publish_batch` returns.
    ///
    /// Every event a reserved route admits fits in the room reserved for
    /// it. A lossless route subscribed (or whose gate opened) after the
    /// reservation had none: it takes an event only if it has room (like a
    /// plain `publish_batch`); a route whose gate closed meanwhile takes
    /// nothing and its room goes back.
    pub fn commit(self) -> usize {
        let Self {
            bus,
            events,
            charges,
            mut held,
        } = self;
        let reached = bus.publish_batch_with(events.into_iter().zip(charges), &held.routes);
        // Consumed event by event by the publish (or given back by it, for a
        // route whose gate closed meanwhile); nothing left to release.
        held.routes.clear();
        reached
    }

    /// Gives up: publishes nothing, releases all the room, and hands the
    /// events back in order.
    pub fn cancel(self) -> Vec<AstridEvent> {
        // `self.held` is dropped here: its room goes back.
        self.events
    }
}

impl EventBus {
    /// Reserves room for `event` in every matching lossless route, waiting
    /// (at most `timeout`) for routes that are full, and returns a permit to
    /// [`commit`](PublishPermit::commit) it.
    ///
    /// The first half of a two-phase publish: a publisher whose right to
    /// publish can be revoked while it waits (a grant withdrawn, a session
    /// closed) reserves first, re-checks with the permit in hand, and then
    /// commits or drops the permit. Nothing is delivered and no `seq` is
    /// taken before `commit`; dropping the permit gives the room back at
    /// once.
    ///
    /// Routes are reserved one by one in subscription order (so two
    /// publishers cannot hold each other up); a route whose receiver is
    /// dropped meanwhile stops being waited for, an event larger than a
    /// route's whole budget is not waited for (that route rejects and counts
    /// it), and a route whose [`Gate`](crate::Gate) is not published is not
    /// waited for either (a publisher already waiting when the gate is
    /// retired waits on until that route makes room, its receiver is
    /// dropped, or the timeout passes). Non-IPC events and events no lossless route wants
    /// get a permit at once.
    ///
    /// # Errors
    /// [`PublishError::Timeout`], with the event handed back, if some
    /// matching lossless route stayed full for the whole `timeout`; nothing
    /// is reserved then.
    ///
    /// # Cancel safety
    /// Dropping the future reserves nothing: what it had reserved is
    /// released.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use astrid_events::prelude::*;
    ///
    /// let bus = EventBus::new();
    /// let mut tokens = bus.subscription("llm.v1.*").routed(uuid::Uuid::nil(), "cli").lossless().subscribe();
    /// let event = |text: &str| AstridEvent::Ipc {
    ///     metadata: EventMetadata::new("llm"),
    ///     message: IpcMessage::new("llm.v1.token", IpcPayload::Custom { data: text.into() }, uuid::Uuid::nil())
    ///         .with_principal("alice"),
    /// };
    /// let still_allowed = |_: &AstridEvent| true; // the caller's own authority check
    ///
    /// let permit = bus.reserve(event("hello"), Duration::from_secs(1)).await?;
    /// if still_allowed(permit.event()) {
    ///     assert_eq!(permit.commit(), 1);
    /// } // else: dropping the permit publishes nothing and frees the room
    /// assert!(tokens.try_recv_one().is_some());
    /// # Ok::<(), astrid_events::PublishError>(())
    /// # }).unwrap();
    /// ```
    pub async fn reserve(
        &self,
        event: AstridEvent,
        timeout: Duration,
    ) -> Result<PublishPermit, PublishError> {
        let AstridEvent::Ipc { metadata, message } = &event else {
            return Ok(self.permit_now(event));
        };
        let principal = message.principal.as_deref();
        let owner = request_owner_of(message);
        let mut lossless: Vec<Arc<Route>> = self
            .matching_routes(&message.topic)
            .into_iter()
            .filter(|r| r.lossless && r.wants(principal, owner))
            .collect();
        if lossless.is_empty() {
            return Ok(self.permit_now(event));
        }
        lossless.sort_by_key(|r| r.key.subscription_rep);
        let charge = EventCharge::new(held_bytes(metadata, message), message);
        let bytes = Route::reservation(principal, charge.charge);
        let wanted = lossless.into_iter().map(|route| (route, bytes));
        match Reservations::wait_for(wanted, timeout).await {
            Ok(held) => Ok(PublishPermit {
                bus: self.clone(),
                event,
                held,
                charge: Some(charge),
            }),
            Err(waited) => Err(PublishError::Timeout {
                event: Box::new(event),
                waited,
            }),
        }
    }

    /// A permit that holds no room (no lossless route to wait for).
    fn permit_now(&self, event: AstridEvent) -> PublishPermit {
        PublishPermit {
            bus: self.clone(),
            event,
            held: Reservations { routes: Vec::new() },
            charge: None,
        }
    }

    /// Publishes `event`, first waiting (at most `timeout`) until every
    /// matching lossless route has room for it, so none of them drops it:
    /// [`reserve`](Self::reserve) followed at once by
    /// [`commit`](PublishPermit::commit).
    ///
    /// The trade-off: a slow lossless consumer slows down its publishers.
    /// Routes that are not lossless are unaffected (they evict as usual).
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
        timeout: Duration,
    ) -> Result<usize, PublishError> {
        Ok(self.reserve(event, timeout).await?.commit())
    }

    /// Reserves room for a batch of events in every matching lossless route,
    /// waiting (at most `timeout`) for routes that are full, and returns a
    /// permit to [`commit`](BatchPermit::commit) them all at once: the batch
    /// form of [`reserve`](Self::reserve), for events that come in bursts
    /// (a read from a socket, a run of LLM tokens).
    ///
    /// A route is waited for under the same rules as in `reserve`, applied
    /// to every event: it is lossless, its topic pattern matches the event,
    /// its [`Scope`](crate::Scope) admits the event's principal and request
    /// owner, and its gate is published (read once per route for the whole
    /// batch, so the batch is reserved there for all the events it admits or
    /// for none). Nothing is delivered and no `seq` is taken before
    /// `commit`. Non-IPC events, and events no lossless route wants, need
    /// no room.
    ///
    /// # What is reserved
    ///
    /// In each such route, the sum over the events it admits of what
    /// `reserve` would hold for each alone (its charge plus a principal
    /// slot), so every event fits at commit whatever the consumer did
    /// meanwhile.
    ///
    /// - **All or nothing per route.** A route's whole amount is reserved in
    ///   one step once it fits beside what is queued and reserved there;
    ///   the batch never holds part of a route's room while waiting for the
    ///   rest. (Were it reserved event by event, two batches that each got
    ///   part of a route could both wait forever for room the other holds.)
    /// - **Route by route, in subscription order**, like `reserve`: a batch
    ///   keeps the routes it has while it waits for the next, and since
    ///   every publisher takes routes in the same order, no two wait for
    ///   each other. A big batch may wait longer than small publishes that
    ///   keep fitting first: keep batches to what arrived together.
    /// - **A batch that can never fit is refused at once.** If the amount
    ///   for some open route exceeds its whole budget
    ///   ([`MAX_SUBSCRIPTION_BUDGET_BYTES`](crate::MAX_SUBSCRIPTION_BUDGET_BYTES)),
    ///   waiting could not help: [`BatchPublishError::TooLarge`] comes back
    ///   without waiting and without reserving anything. This includes a
    ///   batch holding one event larger than the budget, which `reserve`
    ///   would not wait for (the route rejects and counts it at commit).
    ///
    /// # Errors
    /// [`BatchPublishError::TooLarge`] as above;
    /// [`BatchPublishError::Timeout`] if some matching lossless route had no
    /// room for the batch for the whole `timeout`. Either way nothing is
    /// published, nothing stays reserved, and the events are handed back.
    ///
    /// # Cancel safety
    /// Dropping the future reserves nothing: what it had reserved is
    /// released.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use astrid_events::prelude::*;
    ///
    /// let bus = EventBus::new();
    /// let mut tokens = bus.subscription("llm.v1.*").routed(uuid::Uuid::nil(), "cli").lossless().subscribe();
    /// let burst = ["hel", "lo", " world"].map(|text| AstridEvent::Ipc {
    ///     metadata: EventMetadata::new("llm"),
    ///     message: IpcMessage::new("llm.v1.token", IpcPayload::Custom { data: text.into() }, uuid::Uuid::nil())
    ///         .with_principal("alice"),
    /// });
    ///
    /// let permit = bus.reserve_batch(burst, Duration::from_secs(1)).await?;
    /// assert_eq!(permit.commit(), 3);
    /// assert_eq!(tokens.try_drain(usize::MAX).len(), 3);
    /// # Ok::<(), astrid_events::BatchPublishError>(())
    /// # }).unwrap();
    /// ```
    pub async fn reserve_batch<I>(
        &self,
        events: I,
        timeout: Duration,
    ) -> Result<BatchPermit, BatchPublishError>
    where
        I: IntoIterator<Item = AstridEvent>,
    {
        let events: Vec<AstridEvent> = events.into_iter().collect();
        let mut charges = vec![None; events.len()];
        // Per route (keyed by subscription, so in subscription order): the
        // bytes the batch reserves there.
        let mut wanted: BTreeMap<u64, (Arc<Route>, u64)> = BTreeMap::new();
        {
            // The lossless routes of each distinct topic, looked up once.
            let mut by_topic: HashMap<&str, Vec<Arc<Route>>> = HashMap::new();
            for (event, charge) in events.iter().zip(&mut charges) {
                let AstridEvent::Ipc { metadata, message } = event else {
                    continue;
                };
                let routes = by_topic.entry(message.topic.as_str()).or_insert_with(|| {
                    let mut routes = self.matching_routes(&message.topic);
                    routes.retain(|r| r.lossless);
                    routes
                });
                let principal = message.principal.as_deref();
                let owner = request_owner_of(message);
                for route in routes.iter().filter(|r| r.admits(principal, owner)) {
                    let charge = *charge.get_or_insert_with(|| {
                        EventCharge::new(held_bytes(metadata, message), message)
                    });
                    let bytes = Route::reservation(principal, charge.charge);
                    let entry = wanted
                        .entry(route.key.subscription_rep)
                        .or_insert_with(|| (Arc::clone(route), 0));
                    entry.1 = entry.1.saturating_add(bytes);
                }
            }
        }
        // The gate is read once per route: a route reserved in holds room
        // for every event of the batch it admits, and commit consumes exactly
        // that (see `BatchPermit::commit`).
        wanted.retain(|_, (route, _)| route.gate_open());
        for (route, bytes) in wanted.values() {
            if let Some(budget) = route.exceeds_budget(*bytes) {
                return Err(BatchPublishError::TooLarge {
                    events,
                    needed: *bytes,
                    budget,
                });
            }
        }
        match Reservations::wait_for(wanted.into_values(), timeout).await {
            Ok(held) => Ok(BatchPermit {
                bus: self.clone(),
                events,
                charges,
                held,
            }),
            Err(waited) => Err(BatchPublishError::Timeout { events, waited }),
        }
    }

    /// Publishes `events` as one batch, first waiting (at most `timeout`)
    /// until every matching lossless route has room for all of them, so none
    /// of them drops any: [`reserve_batch`](Self::reserve_batch) followed at
    /// once by [`commit`](BatchPermit::commit). The backpressured form of
    /// [`publish_batch`](Self::publish_batch).
    ///
    /// # Errors
    /// As [`reserve_batch`](Self::reserve_batch): nothing was published, and
    /// the events are handed back.
    ///
    /// # Cancel safety
    /// Not publishing is the only effect of cancelling: reservations are
    /// released when the future is dropped.
    pub async fn publish_batch_with_backpressure<I>(
        &self,
        events: I,
        timeout: Duration,
    ) -> Result<usize, BatchPublishError>
    where
        I: IntoIterator<Item = AstridEvent>,
    {
        Ok(self.reserve_batch(events, timeout).await?.commit())
    }
}
