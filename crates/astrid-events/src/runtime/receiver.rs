//! Async receivers for plain and topic subscriptions.
//!
//! [`EventReceiver`] comes in two flavours, chosen at subscription:
//!
//! - **All events** (`subscribe`, `subscribe_as`): a receiver on the bus's
//!   broadcast channel. A receiver that falls more than the bus capacity
//!   behind loses the oldest events; it keeps working and reports the count
//!   through [`EventReceiver::drain_lagged`].
//! - **Topic** (`subscribe_topic*`): a private bounded queue fed through the
//!   topic index, so a publish touches only the receivers whose pattern
//!   matches. A receiver is woken only when its queue goes from empty to
//!   non-empty, so a storm on other topics costs it nothing. When the queue
//!   is full the oldest event is dropped and counted, with its topic
//!   ([`EventReceiver::drain_lagged_by_topic`]).
//!
//! Every loss increments `astrid_bus_receiver_lagged_total{subscriber}` and is
//! logged once per lag episode as a security event.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::metrics::METRIC_BUS_RECEIVER_LAGGED_TOTAL;
use crate::runtime::bus::Shared;
use crate::runtime::index::EntryId;
use crate::schema::event::AstridEvent;

/// A topic receiver yields to the scheduler after this many events returned
/// without waiting, so one busy subscriber cannot hold a worker thread.
const YIELD_EVERY: u32 = 32;

/// At most this many topics are tracked by name in lag-by-topic reports; the
/// rest are summed under [`LAG_OTHER_TOPICS`].
pub const LAG_TOPICS_TRACKED: usize = 16;

/// Bucket name for lost events whose topic was not tracked by name.
pub const LAG_OTHER_TOPICS: &str = crate::metrics::OTHER_LABEL;

/// Receives events published on an [`EventBus`](crate::EventBus).
///
/// ```
/// # tokio_test_rt(async {
/// use astrid_events::{AstridEvent, EventBus, EventMetadata};
///
/// let bus = EventBus::new();
/// let mut rx = bus.subscribe();
/// bus.publish(AstridEvent::Custom {
///     metadata: EventMetadata::new("doc"),
///     name: "hello".into(),
///     data: serde_json::json!({"n": 1}),
/// });
/// let event = rx.recv().await.expect("bus alive");
/// assert_eq!(event.event_type(), "custom");
/// # });
/// # fn tokio_test_rt(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub struct EventReceiver {
    inner: Inner,
    subscriber: &'static str,
}

enum Inner {
    All {
        rx: broadcast::Receiver<Arc<AstridEvent>>,
        /// Lost since the last `drain_lagged`.
        lagged: u64,
        /// Lost since the last `drain_lagged_by_topic` (an independent view).
        lagged_unreported: u64,
    },
    Topic(TopicSubscription),
}

impl std::fmt::Debug for EventReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.inner {
            Inner::All { .. } => "all",
            Inner::Topic(_) => "topic",
        };
        f.debug_struct("EventReceiver")
            .field("kind", &kind)
            .field("subscriber", &self.subscriber)
            .finish()
    }
}

impl EventReceiver {
    pub(crate) fn all(rx: broadcast::Receiver<Arc<AstridEvent>>, subscriber: &'static str) -> Self {
        Self {
            inner: Inner::All {
                rx,
                lagged: 0,
                lagged_unreported: 0,
            },
            subscriber,
        }
    }

    pub(crate) fn topic(sub: TopicSubscription, subscriber: &'static str) -> Self {
        Self {
            inner: Inner::Topic(sub),
            subscriber,
        }
    }

    /// Waits for the next event.
    ///
    /// Returns events in publish order. Returns `None` only when the bus is
    /// gone (every [`EventBus`](crate::EventBus) handle dropped) and nothing is left queued.
    /// A receiver that lagged skips the lost events and goes on; see
    /// [`drain_lagged`](Self::drain_lagged).
    ///
    /// # Cancel safety
    /// Cancel safe: an event is removed only when this future completes.
    pub async fn recv(&mut self) -> Option<Arc<AstridEvent>> {
        match &mut self.inner {
            Inner::All {
                rx,
                lagged,
                lagged_unreported,
            } => loop {
                match rx.recv().await {
                    Ok(event) => return Some(event),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        *lagged += n;
                        *lagged_unreported += n;
                        report_lag(self.subscriber, n, *lagged == n);
                        // A lagging receiver is behind a storm: let others run.
                        tokio::task::yield_now().await;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            },
            Inner::Topic(sub) => sub.recv().await,
        }
    }

    /// Takes the next event if one is queued, without waiting.
    #[inline]
    pub fn try_recv(&mut self) -> Option<Arc<AstridEvent>> {
        match &mut self.inner {
            Inner::All {
                rx,
                lagged,
                lagged_unreported,
            } => loop {
                match rx.try_recv() {
                    Ok(event) => return Some(event),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        *lagged += n;
                        *lagged_unreported += n;
                        report_lag(self.subscriber, n, *lagged == n);
                    }
                    Err(_) => return None,
                }
            },
            Inner::Topic(sub) => sub.queue.pop(),
        }
    }

    /// Waits for at least one event, then moves up to `limit` queued events
    /// into `buf` (in order). Returns how many were added; 0 means the bus is
    /// gone or `limit` was 0. One wakeup serves the whole batch; a topic
    /// receiver takes it under one lock of its queue.
    ///
    /// # Cancel safety
    /// Cancel safe: events are moved into `buf` only when the future
    /// completes.
    pub async fn recv_many(&mut self, buf: &mut Vec<Arc<AstridEvent>>, limit: usize) -> usize {
        if limit == 0 {
            return 0;
        }
        if let Inner::Topic(sub) = &mut self.inner {
            return sub.recv_many(buf, limit).await;
        }
        let Some(first) = self.recv().await else {
            return 0;
        };
        buf.push(first);
        let mut n = 1;
        while n < limit {
            match self.try_recv() {
                Some(event) => {
                    buf.push(event);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// Events this receiver lost to overflow since the last call (and resets
    /// the count).
    pub fn drain_lagged(&mut self) -> u64 {
        match &mut self.inner {
            Inner::All { lagged, .. } => std::mem::take(lagged),
            Inner::Topic(sub) => sub.queue.state.lock().lag.drain_total(),
        }
    }

    /// Events lost since the last call, by topic (and resets the report).
    ///
    /// At most [`LAG_TOPICS_TRACKED`] topics are named; losses on further
    /// topics are summed under [`LAG_OTHER_TOPICS`]. Plain (all-events)
    /// receivers cannot know the topics of events they never saw and report
    /// their losses under [`LAG_OTHER_TOPICS`]. The counts of this report and
    /// of [`drain_lagged`](Self::drain_lagged) are independent: each drains
    /// its own view of the same losses.
    pub fn drain_lagged_by_topic(&mut self) -> Vec<(String, u64)> {
        match &mut self.inner {
            Inner::All {
                lagged_unreported, ..
            } => {
                let n = std::mem::take(lagged_unreported);
                if n == 0 {
                    Vec::new()
                } else {
                    vec![(LAG_OTHER_TOPICS.to_owned(), n)]
                }
            }
            Inner::Topic(sub) => sub.queue.state.lock().lag.drain_by_topic(),
        }
    }

    /// The subscriber label given at subscription (`untagged` if none).
    #[must_use]
    pub fn subscriber(&self) -> &'static str {
        self.subscriber
    }
}

pub(crate) fn report_lag(subscriber: &'static str, n: u64, first_of_episode: bool) {
    metrics::counter!(METRIC_BUS_RECEIVER_LAGGED_TOTAL, "subscriber" => subscriber).increment(n);
    if first_of_episode {
        tracing::warn!(
            target: "astrid_events::security",
            subscriber,
            lost = n,
            "event receiver lagged; oldest events dropped"
        );
    }
}

/// Losses of one topic receiver, by topic, bounded in size.
#[derive(Debug, Default)]
pub(crate) struct LagByTopic {
    total: u64,
    by_topic: HashMap<String, u64>,
    other: u64,
}

impl LagByTopic {
    fn record(&mut self, topic: &str) {
        self.total += 1;
        if let Some(n) = self.by_topic.get_mut(topic) {
            *n += 1;
        } else if self.by_topic.len() < LAG_TOPICS_TRACKED {
            self.by_topic.insert(topic.to_owned(), 1);
        } else {
            self.other += 1;
        }
    }

    fn drain_total(&mut self) -> u64 {
        std::mem::take(&mut self.total)
    }

    fn drain_by_topic(&mut self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self.by_topic.drain().collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let other = std::mem::take(&mut self.other);
        if other > 0 {
            out.push((LAG_OTHER_TOPICS.to_owned(), other));
        }
        out
    }
}

/// The queue behind one topic receiver. Shared by the receiver and the index.
pub(crate) struct TopicQueue {
    pub(crate) state: Mutex<TopicState>,
    capacity: usize,
    subscriber: &'static str,
}

pub(crate) struct TopicState {
    buf: VecDeque<Arc<AstridEvent>>,
    pub(crate) lag: LagByTopic,
    /// Set when the bus is gone; the receiver drains what is left then ends.
    closed: bool,
    /// The waker of the receive future that found the queue empty (it
    /// registers under this lock in the same step as it looks, so no push
    /// can fall between the two). Taken by the next push or by `close`, and
    /// woken once the pusher has released its locks.
    waiter: Option<Waker>,
}

impl TopicState {
    /// Registers `waker` as the one to wake on the next push or on close
    /// (kept if it already wakes the same task).
    fn wait_with(&mut self, waker: &Waker) {
        if !self.waiter.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.waiter = Some(waker.clone());
        }
    }
}

impl TopicQueue {
    pub(crate) fn new(capacity: usize, subscriber: &'static str) -> Self {
        Self {
            state: Mutex::new(TopicState {
                buf: VecDeque::new(),
                lag: LagByTopic::default(),
                closed: false,
                waiter: None,
            }),
            capacity: capacity.max(1),
            subscriber,
        }
    }

    /// Enqueues `event`; when full, drops the oldest and counts it. The
    /// wakeup and the loss report are left to [`after_push`](Self::after_push),
    /// so the caller can make them after releasing its own locks.
    pub(crate) fn push(&self, event: Arc<AstridEvent>) -> Pushed {
        let mut state = self.state.lock();
        if state.closed {
            return Pushed::default();
        }
        let mut pushed = Pushed::default();
        if state.buf.len() >= self.capacity
            && let Some(old) = state.buf.pop_front()
        {
            pushed.first_of_episode = state.lag.total == 0;
            state.lag.record(ipc_topic(&old));
            pushed.dropped = 1;
        }
        // A registered waiter found the queue empty and nothing was pushed
        // since (a push takes it): this push is the one to wake it.
        pushed.wake = state.waiter.take();
        state.buf.push_back(event);
        pushed
    }

    /// Reports the loss and wakes the receiver, as `pushed` says.
    pub(crate) fn after_push(&self, pushed: Pushed) {
        if pushed.dropped > 0 {
            report_lag(self.subscriber, pushed.dropped, pushed.first_of_episode);
        }
        if let Some(waker) = pushed.wake {
            waker.wake();
        }
    }

    pub(crate) fn pop(&self) -> Option<Arc<AstridEvent>> {
        self.state.lock().buf.pop_front()
    }

    pub(crate) fn close(&self) {
        let waiter = {
            let mut state = self.state.lock();
            state.closed = true;
            state.waiter.take()
        };
        if let Some(waker) = waiter {
            waker.wake();
        }
    }

    /// Moves up to `limit` (> 0) queued events into `buf` under one lock,
    /// or, when none is queued and the queue is open, registers `cx`'s
    /// waker in the same critical section.
    fn poll_take(
        &self,
        cx: &mut Context<'_>,
        buf: &mut Vec<Arc<AstridEvent>>,
        limit: usize,
    ) -> Poll<usize> {
        let mut state = self.state.lock();
        let n = limit.min(state.buf.len());
        if n > 0 {
            buf.extend(state.buf.drain(..n));
            return Poll::Ready(n);
        }
        if state.closed {
            return Poll::Ready(0);
        }
        state.wait_with(cx.waker());
        Poll::Pending
    }

    /// `poll_take` of one event; `None` once the queue is closed and empty.
    fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<Arc<AstridEvent>>> {
        let mut state = self.state.lock();
        if let Some(event) = state.buf.pop_front() {
            return Poll::Ready(Some(event));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        state.wait_with(cx.waker());
        Poll::Pending
    }
}

/// What [`TopicQueue::push`] leaves to do once the caller's locks are
/// released.
#[derive(Debug, Default)]
pub(crate) struct Pushed {
    /// The waiting receiver's waker, taken from the queue: wake it.
    wake: Option<Waker>,
    /// Oldest events dropped to make room.
    dropped: u64,
    /// A drop started a lag episode (log it).
    first_of_episode: bool,
}

impl Pushed {
    /// What several pushes to one queue leave to do, done once: one loss
    /// report and at most one wakeup. A later push only takes a waker that
    /// was registered after an earlier push took its own, so the receiver
    /// emptied the queue in between and the earlier wait is over: the later
    /// waker is the one a receive may still be waiting on.
    pub(crate) fn merge(self, later: Self) -> Self {
        Self {
            wake: later.wake.or(self.wake),
            dropped: self.dropped + later.dropped,
            first_of_episode: self.first_of_episode || later.first_of_episode,
        }
    }
}

fn ipc_topic(event: &AstridEvent) -> &str {
    match event {
        AstridEvent::Ipc { message, .. } => &message.topic,
        _ => LAG_OTHER_TOPICS,
    }
}

/// A topic receiver's queue and its registration in the bus index. Dropping
/// it removes the registration.
pub(crate) struct TopicSubscription {
    pub(crate) queue: Arc<TopicQueue>,
    _registration: Registration,
    /// Events returned in a row without waiting (for cooperative yielding).
    streak: u32,
}

impl TopicSubscription {
    pub(crate) fn new(queue: Arc<TopicQueue>, registration: Registration) -> Self {
        Self {
            queue,
            _registration: registration,
            streak: 0,
        }
    }

    async fn recv(&mut self) -> Option<Arc<AstridEvent>> {
        // Yield before taking an event, never after: a future cancelled
        // while yielding must not lose the event it took.
        if self.streak >= YIELD_EVERY {
            self.streak = 0;
            tokio::task::yield_now().await;
        }
        let queue = &self.queue;
        let streak = &mut self.streak;
        std::future::poll_fn(|cx| {
            let polled = queue.poll_pop(cx);
            match &polled {
                Poll::Pending => *streak = 0,
                Poll::Ready(Some(_)) => *streak += 1,
                Poll::Ready(None) => {}
            }
            polled
        })
        .await
    }

    /// `recv` for up to `limit` (> 0) events at once: one lock of the queue
    /// moves them all; the batch counts as one event towards yielding.
    async fn recv_many(&mut self, buf: &mut Vec<Arc<AstridEvent>>, limit: usize) -> usize {
        if self.streak >= YIELD_EVERY {
            self.streak = 0;
            tokio::task::yield_now().await;
        }
        let queue = &self.queue;
        let streak = &mut self.streak;
        std::future::poll_fn(|cx| {
            let polled = queue.poll_take(cx, buf, limit);
            match polled {
                Poll::Pending => *streak = 0,
                Poll::Ready(0) => {}
                Poll::Ready(_) => *streak += 1,
            }
            polled
        })
        .await
    }
}

/// A subscription's entry in the bus index; removes itself on drop.
pub(crate) struct Registration {
    pub(crate) shared: Weak<Shared>,
    pub(crate) pattern: Box<str>,
    pub(crate) id: EntryId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.unregister(&self.pattern, self.id);
        }
    }
}
