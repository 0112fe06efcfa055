//! Two-phase publish: reserve room, let the caller re-check its authority,
//! then commit or drop.
//!
//! ```text
//! reserve(event, timeout) ── waits for room in every matching lossless route
//!        │                   (reserved route by route; released on drop)
//!        ▼
//!   PublishPermit ── the caller re-checks authority (a revoked grant, a closed
//!        │           session, a retired generation...)
//!        ├─ commit()  stamps `seq` under the publish lock, at commit time, and
//!        │            delivers; the reservations are consumed
//!        └─ drop / cancel()  nothing is published; the room goes back at once
//! ```
//!
//! Room is reserved only in lossless routes (they never evict, so they are
//! the ones a publisher must wait for); other routes take the event at
//! commit as any publish would. The reservation of a route is the most the
//! event can add to it (its charge plus a new principal slot), so a
//! committed event always fits a route it reserved in.
//! [`EventBus::publish_with_backpressure`] is `reserve` followed at once by
//! `commit`.

use std::sync::Arc;
use std::time::Duration;

use crate::runtime::bus::EventBus;
use crate::runtime::error::PublishError;
use crate::runtime::held::held_bytes;
use crate::runtime::routed::{EventCharge, Reservation, Route};
use crate::runtime::scope::request_owner_of;
use crate::schema::event::AstridEvent;

/// Room held in lossless routes for one event; given back on drop unless
/// the event was committed (`routes` is then emptied).
pub(crate) struct Reservations {
    pub(crate) routes: Vec<Arc<Route>>,
    /// Bytes reserved on each route.
    amount: u64,
}

impl Drop for Reservations {
    fn drop(&mut self) {
        for route in &self.routes {
            route.release(self.amount);
        }
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
            return Ok(self.permit(event, Vec::new(), 0, None));
        };
        let principal = message.principal.as_deref();
        let owner = request_owner_of(message);
        let mut lossless: Vec<Arc<Route>> = self
            .matching_routes(&message.topic)
            .into_iter()
            .filter(|r| r.lossless && r.wants(principal, owner))
            .collect();
        if lossless.is_empty() {
            return Ok(self.permit(event, Vec::new(), 0, None));
        }
        lossless.sort_by_key(|r| r.key.subscription_rep);
        let charge = EventCharge::new(held_bytes(metadata, message), message);
        let amount = Route::reservation(principal, charge.charge);
        let start = tokio::time::Instant::now();
        let deadline = start.checked_add(timeout);
        let mut held = Reservations {
            routes: Vec::new(),
            amount,
        };
        for route in lossless {
            loop {
                // Registered before the check, so a pop between the check and
                // the wait still wakes this publisher.
                let space = route.space_notified();
                tokio::pin!(space);
                space.as_mut().enable();
                match route.try_reserve(principal, charge.charge) {
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
                    // `held` is dropped here: its room goes back.
                    return Err(PublishError::Timeout {
                        event: Box::new(event),
                        waited: start.elapsed(),
                    });
                }
            }
        }
        Ok(PublishPermit {
            bus: self.clone(),
            event,
            held,
            charge: Some(charge),
        })
    }

    fn permit(
        &self,
        event: AstridEvent,
        routes: Vec<Arc<Route>>,
        amount: u64,
        charge: Option<EventCharge>,
    ) -> PublishPermit {
        PublishPermit {
            bus: self.clone(),
            event,
            held: Reservations { routes, amount },
            charge,
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
}
