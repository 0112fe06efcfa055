//! Receivers as [`futures_core::Stream`]s (feature `stream`).
//!
//! [`EventStream`] wraps an [`EventReceiver`] (plain or topic) and
//! [`RoutedEventStream`] a [`RoutedEventReceiver`], so the combinators of the
//! futures ecosystem (`StreamExt::next`, `filter`, `take`, `select`, ...)
//! apply to bus events, as `tokio-stream`'s `BroadcastStream` does for a bare
//! tokio broadcast channel.
//!
//! Data flow: each stream owns its receiver and one reusable boxed future
//! (`tokio_util::sync::ReusableBoxFuture`) that awaits the receiver's `recv`
//! and hands the receiver back with the event; the box is allocated once per
//! stream, not per event. A stream ends (`None`) exactly when its receiver's
//! `recv` returns `None`: the bus is gone and nothing is left queued.
//!
//! Loss is reported as on the receiver: [`EventStream::drain_lagged`] and
//! [`RoutedEventStream::drain_lagged`] return what the receiver lost since the
//! last call; a lagging plain stream skips lost events and goes on.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio_util::sync::ReusableBoxFuture;

use crate::{AstridEvent, EventReceiver, RoutedEventReceiver};

/// What one `recv` yields: the event (if any) and the receiver, handed back
/// so the next `recv` can start.
type Step<R> = (Option<Arc<AstridEvent>>, R);

/// The state every stream shares: the receiver is either parked in `idle`
/// (between polls, or after the end) or moved into the pending future.
///
/// Invariant: exactly one of `idle` and `pending` holds the receiver, except
/// after the stream has ended, when `idle` holds it and `ended` is set.
struct Driver<R: 'static> {
    idle: Option<R>,
    pending: ReusableBoxFuture<'static, Step<R>>,
    in_flight: bool,
    ended: bool,
}

impl<R: Send + 'static> Driver<R> {
    fn new(rx: R) -> Self {
        Self {
            idle: Some(rx),
            // Never polled: it only allocates the box that every `recv`
            // future of this stream then reuses.
            pending: ReusableBoxFuture::new(std::future::pending()),
            in_flight: false,
            ended: false,
        }
    }

    fn poll_next<F, Fut>(&mut self, cx: &mut Context<'_>, recv: F) -> Poll<Option<Arc<AstridEvent>>>
    where
        F: FnOnce(R) -> Fut,
        Fut: std::future::Future<Output = Step<R>> + Send + 'static,
    {
        if self.ended {
            return Poll::Ready(None);
        }
        if !self.in_flight {
            let Some(rx) = self.idle.take() else {
                return Poll::Ready(None);
            };
            self.pending.set(recv(rx));
            self.in_flight = true;
        }
        let (event, rx) = std::task::ready!(self.pending.poll(cx));
        self.in_flight = false;
        self.idle = Some(rx);
        if event.is_none() {
            self.ended = true;
        }
        Poll::Ready(event)
    }

    /// The receiver, when no `recv` is in flight.
    fn receiver(&mut self) -> Option<&mut R> {
        self.idle.as_mut()
    }
}

/// An [`EventReceiver`] as a [`Stream`] of events (feature `stream`).
///
/// Made by [`EventReceiver::into_stream`]. Yields events in the receiver's
/// order (increasing `seq` for IPC events) and ends when the bus is gone and
/// nothing is left queued.
///
/// Dropping a `next()` future before it completes loses nothing: an event is
/// taken from the receiver only when a poll returns it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use astrid_events::prelude::*;
/// use futures_util::StreamExt;
///
/// let bus = EventBus::new();
/// let mut events = bus.subscribe_topic("tool.v1.*").into_stream();
/// let payload = IpcPayload::Custom { data: serde_json::json!({}) };
/// let message = IpcMessage::new("tool.v1.read", payload, uuid::Uuid::new_v4());
/// bus.publish(AstridEvent::Ipc { metadata: EventMetadata::new("kernel"), message });
/// let event = events.next().await.expect("delivered");
/// assert_eq!(event.event_type(), "ipc");
/// assert_eq!(events.drain_lagged(), 0);
/// # }
/// ```
pub struct EventStream {
    driver: Driver<EventReceiver>,
}

impl EventStream {
    /// Events the underlying receiver lost to overflow since the last call
    /// (and resets the count); 0 while a `recv` is in flight (the count is
    /// kept and reported by a later call).
    pub fn drain_lagged(&mut self) -> u64 {
        self.driver
            .receiver()
            .map_or(0, EventReceiver::drain_lagged)
    }

    /// The receiver back, if no `recv` is in flight (between polls that
    /// returned, or after the stream ended).
    pub fn into_inner(self) -> Option<EventReceiver> {
        self.driver.idle
    }
}

impl Stream for EventStream {
    type Item = Arc<AstridEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().driver.poll_next(cx, |mut rx| async move {
            let event = rx.recv().await;
            (event, rx)
        })
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("in_flight", &self.driver.in_flight)
            .field("ended", &self.driver.ended)
            .finish_non_exhaustive()
    }
}

impl EventReceiver {
    /// This receiver as a [`Stream`] (feature `stream`). See [`EventStream`].
    pub fn into_stream(self) -> EventStream {
        EventStream {
            driver: Driver::new(self),
        }
    }
}

/// A [`RoutedEventReceiver`] as a [`Stream`] of events (feature `stream`).
///
/// Made by [`RoutedEventReceiver::into_stream`]. Yields events in DRR order
/// (each principal's in increasing `seq`), waiting without a timeout, and
/// ends when the bus is gone and nothing is left queued. Dropping a `next()`
/// future before it completes loses nothing.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use astrid_events::prelude::*;
/// use futures_util::StreamExt;
///
/// let bus = EventBus::new();
/// let capsule = uuid::Uuid::new_v4();
/// let mut events = bus.subscribe_topic_routed(capsule, "tool.v1.*", "fs-capsule", "fs").into_stream();
/// let payload = IpcPayload::Custom { data: serde_json::json!({}) };
/// let message = IpcMessage::new("tool.v1.read", payload, capsule).with_principal("alice");
/// bus.publish(AstridEvent::Ipc { metadata: EventMetadata::new("kernel"), message });
/// assert!(events.next().await.is_some());
/// assert_eq!(events.drain_lagged(), 0);
/// # }
/// ```
pub struct RoutedEventStream {
    driver: Driver<RoutedEventReceiver>,
}

impl RoutedEventStream {
    /// Events the route dropped (budget eviction, oversize, full lossless
    /// route) since the last call; resets the count. 0 while a `recv` is in
    /// flight (the count is kept for a later call).
    pub fn drain_lagged(&mut self) -> u64 {
        self.driver
            .receiver()
            .map_or(0, RoutedEventReceiver::drain_lagged)
    }

    /// The receiver back, if no `recv` is in flight.
    pub fn into_inner(self) -> Option<RoutedEventReceiver> {
        self.driver.idle
    }
}

impl Stream for RoutedEventStream {
    type Item = Arc<AstridEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().driver.poll_next(cx, |mut rx| async move {
            let event = rx.recv(None).await;
            (event, rx)
        })
    }
}

impl fmt::Debug for RoutedEventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutedEventStream")
            .field("in_flight", &self.driver.in_flight)
            .field("ended", &self.driver.ended)
            .finish_non_exhaustive()
    }
}

impl RoutedEventReceiver {
    /// This receiver as a [`Stream`] (feature `stream`). See
    /// [`RoutedEventStream`].
    pub fn into_stream(self) -> RoutedEventStream {
        RoutedEventStream {
            driver: Driver::new(self),
        }
    }
}
