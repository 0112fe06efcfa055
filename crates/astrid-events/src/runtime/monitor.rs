//! Bus monitor: what flows through a bus, in bounded memory.
//!
//! [`BusMonitor::attach`] registers a synchronous subscriber that counts
//! every published event: by event kind, and for IPC events by topic. Topic
//! cardinality is unbounded in a real runtime (request ids, capsule ids), so
//! topics are counted with the *space-saving* algorithm (Metwally, Agrawal
//! and El Abbadi, "Efficient Computation of Frequent and Top-k Elements in
//! Data Streams", ICDT 2005): at most `k` counters, whatever the number of
//! distinct topics (`space_saving.rs`).
//!
//! Why a synchronous subscriber rather than a task draining a plain
//! receiver: the counts are exact (a plain receiver that lags loses events,
//! and a monitor that misses the busiest moments is least useful exactly
//! then), and the publish-side cost is lower (one short critical section per
//! publish instead of a broadcast slot that a second core must keep up
//! with); `benches/monitor.rs` measures both.
//!
//! The monitor cannot see inside receivers, so programs feed it what their
//! receivers report: [`BusMonitor::record_lag`] for `drain_lagged` of plain
//! and topic receivers, [`BusMonitor::record_evictions`] for routed ones.
//! Both are bounded too: at most [`MAX_NAMED_ENTRIES`] names each, the rest
//! summed under [`OTHER`].
//!
//! ```
//! use astrid_events::monitor::BusMonitor;
//! use astrid_events::{AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload};
//!
//! let bus = EventBus::new();
//! let monitor = BusMonitor::builder().top_k(8).attach(&bus);
//! for i in 0..100 {
//!     let topic = if i % 2 == 0 { "llm.v1.stream.r1".to_owned() } else { format!("tool.v1.request.{i}") };
//!     let message = IpcMessage::new(topic, IpcPayload::Custom { data: serde_json::json!({}) }, uuid::Uuid::nil());
//!     bus.publish(AstridEvent::Ipc { metadata: EventMetadata::new("doc"), message });
//! }
//! monitor.record_evictions("capsule-7", 3);
//!
//! let snapshot = monitor.snapshot();
//! assert_eq!(snapshot.events_total, 100);
//! // 50 of 100 events is more than 100 / k: always tracked, never undercounted.
//! let top = &snapshot.top_topics[0];
//! assert_eq!(top.topic, "llm.v1.stream.r1");
//! assert!(top.count - top.error <= 50 && 50 <= top.count);
//! assert!(snapshot.top_topics.len() <= 8);
//! assert_eq!(snapshot.evictions_total, 3);
//!
//! drop(monitor); // unregisters
//! assert_eq!(bus.sync_subscriber_count(), 0);
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use crate::runtime::bus::EventBus;
use crate::runtime::sync_sub::{EventSubscriber, SubscriberId};
use crate::schema::event::AstridEvent;

pub use crate::runtime::space_saving::TopicCount;
// Public only so that `benches/monitor.rs` can measure the summary on its
// own; not part of the supported API.
#[doc(hidden)]
pub use crate::runtime::space_saving::SpaceSaving;

/// Default number of topics tracked by name.
pub const DEFAULT_TOP_K: usize = 32;

/// Default length of the rate window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(1);

/// Most subscriber (lag) or capsule (eviction) names tracked one by one; the
/// rest are summed under [`OTHER`].
pub const MAX_NAMED_ENTRIES: usize = 256;

/// Bucket name for everything not tracked by name.
pub const OTHER: &str = crate::metrics::OTHER_LABEL;

/// How many monitored events pass between two checks of the clock for the
/// rate window (the clock is also checked at every snapshot).
const CLOCK_CHECK_EVERY: u32 = 256;

/// Counts by name with at most [`MAX_NAMED_ENTRIES`] names.
#[derive(Debug, Default)]
struct Named {
    counts: BTreeMap<String, u64>,
    total: u64,
}

impl Named {
    fn add(&mut self, name: &str, n: u64) {
        self.total += n;
        if let Some(c) = self.counts.get_mut(name) {
            *c += n;
        } else if self.counts.len() < MAX_NAMED_ENTRIES {
            self.counts.insert(name.to_owned(), n);
        } else {
            *self.counts.entry(OTHER.to_owned()).or_default() += n;
        }
    }

    fn snapshot(&self) -> Vec<NamedCount> {
        let mut v: Vec<NamedCount> = self
            .counts
            .iter()
            .map(|(name, &count)| NamedCount {
                name: name.clone(),
                count,
            })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        v
    }
}

/// The monitor's counters. Behind one mutex, taken once per publish.
#[derive(Debug)]
struct Counters {
    /// Every event seen.
    events: u64,
    /// IPC events seen (the ones with a topic).
    ipc_events: u64,
    /// Non-IPC events by `event_type()`; a fixed set of kinds, so a short
    /// list (IPC events are `ipc_events`).
    kinds: Vec<(&'static str, u64)>,
    /// Topics since attach.
    topics: SpaceSaving,
    /// Per slot of `topics`: its count when the current rate window began
    /// (or when the slot was taken over, if later). `count - base` is the
    /// slot's events in the window so far, exactly, while it keeps its key.
    bases: Vec<u64>,
    window_start: Instant,
    /// Per-topic event counts of the last completed window, and its length.
    last_window: Option<(Vec<(String, u64)>, Duration)>,
    /// Events since the clock was last checked.
    since_clock_check: u32,
    window_len: Duration,
    lag: Named,
    evictions: Named,
}

impl Counters {
    fn observe(&mut self, event: &AstridEvent) {
        self.events += 1;
        if let AstridEvent::Ipc { message, .. } = event {
            // Counted in `ipc_events` only; the snapshot adds the kind.
            self.ipc_events += 1;
            let (slot, fresh) = self.topics.offer_slot(&message.topic);
            if let Some(base) = fresh {
                if slot == self.bases.len() {
                    self.bases.push(base);
                } else {
                    self.bases[slot] = base;
                }
            }
        } else {
            let kind = event.event_type();
            match self.kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => self.kinds.push((kind, 1)),
            }
        }
        self.since_clock_check += 1;
        if self.since_clock_check >= CLOCK_CHECK_EVERY {
            self.rotate(Instant::now());
        }
    }

    /// Closes the rate window if it is over.
    fn rotate(&mut self, now: Instant) {
        self.since_clock_check = 0;
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= self.window_len {
            let done = self.window_counts();
            self.bases.copy_from_slice(self.topics.slot_counts());
            self.last_window = Some((done, elapsed));
            self.window_start = now;
        }
    }

    /// Events per tracked topic in the current window so far.
    fn window_counts(&self) -> Vec<(String, u64)> {
        self.topics
            .slots()
            .zip(&self.bases)
            .map(|((key, count), base)| (key.to_owned(), count - base))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// State shared by the monitor, its recorders and its bus subscriber.
#[derive(Debug)]
struct Shared {
    attached_at: Instant,
    counters: Mutex<Counters>,
}

/// The synchronous subscriber that feeds the counters.
struct Tap(Arc<Shared>);

impl EventSubscriber for Tap {
    fn on_event(&self, event: &AstridEvent, _bus: &EventBus) {
        self.0.counters.lock().observe(event);
    }

    fn name(&self) -> &str {
        "bus-monitor"
    }
}

/// Configures a [`BusMonitor`].
#[derive(Debug, Clone)]
pub struct MonitorBuilder {
    top_k: usize,
    window: Duration,
}

impl MonitorBuilder {
    /// Topics tracked by name (at least 1; default [`DEFAULT_TOP_K`]).
    #[must_use]
    pub fn top_k(mut self, k: usize) -> Self {
        self.top_k = k.max(1);
        self
    }

    /// Length of the rate window (default [`DEFAULT_WINDOW`]; at least 1 ms).
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window.max(Duration::from_millis(1));
        self
    }

    /// Attaches the monitor to `bus`: it sees every event published from
    /// now on, until it is dropped.
    pub fn attach(self, bus: &EventBus) -> BusMonitor {
        let now = Instant::now();
        let shared = Arc::new(Shared {
            attached_at: now,
            counters: Mutex::new(Counters {
                events: 0,
                ipc_events: 0,
                kinds: Vec::new(),
                topics: SpaceSaving::new(self.top_k),
                bases: Vec::with_capacity(self.top_k),
                window_start: now,
                last_window: None,
                since_clock_check: 0,
                window_len: self.window,
                lag: Named::default(),
                evictions: Named::default(),
            }),
        });
        let id = bus.register_subscriber(Arc::new(Tap(Arc::clone(&shared))));
        BusMonitor {
            bus: bus.clone(),
            id,
            recorder: MonitorRecorder { shared },
        }
    }
}

/// Watches a bus: topic and kind counts, rates, lag and evictions.
///
/// Holds a handle to the bus (which keeps it open) and unregisters from it
/// when dropped. To feed lag and evictions from tasks that outlive the
/// monitor's owner without keeping the bus open, hand them a
/// [`MonitorRecorder`] ([`recorder`](Self::recorder)).
///
/// Cost: every publish on the bus runs the monitor's subscriber, which takes
/// one mutex and updates the counters (a hash lookup per IPC event; taking
/// over a counter for a new topic also scans the `k` counters).
pub struct BusMonitor {
    bus: EventBus,
    id: SubscriberId,
    recorder: MonitorRecorder,
}

impl std::fmt::Debug for BusMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusMonitor")
            .field("subscriber", &self.id)
            .finish_non_exhaustive()
    }
}

impl Drop for BusMonitor {
    fn drop(&mut self) {
        self.bus.unregister_subscriber(self.id);
    }
}

impl BusMonitor {
    /// Attaches a monitor with the default settings
    /// ([`DEFAULT_TOP_K`] topics, a [`DEFAULT_WINDOW`] rate window).
    pub fn attach(bus: &EventBus) -> Self {
        Self::builder().attach(bus)
    }

    /// A builder for a monitor with other settings.
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder {
            top_k: DEFAULT_TOP_K,
            window: DEFAULT_WINDOW,
        }
    }

    /// A handle that records and snapshots without keeping the bus open.
    pub fn recorder(&self) -> MonitorRecorder {
        self.recorder.clone()
    }

    /// See [`MonitorRecorder::record_lag`].
    pub fn record_lag(&self, subscriber: &str, lost: u64) {
        self.recorder.record_lag(subscriber, lost);
    }

    /// See [`MonitorRecorder::record_evictions`].
    pub fn record_evictions(&self, capsule: &str, dropped: u64) {
        self.recorder.record_evictions(capsule, dropped);
    }

    /// See [`MonitorRecorder::snapshot`].
    pub fn snapshot(&self) -> MonitorSnapshot {
        self.recorder.snapshot()
    }
}

/// Records into and snapshots a [`BusMonitor`]'s counters; cheap to clone.
///
/// Does not hold the bus: it stays usable after the monitor is dropped (the
/// counters then simply stop seeing new events).
#[derive(Debug, Clone)]
pub struct MonitorRecorder {
    shared: Arc<Shared>,
}

impl MonitorRecorder {
    /// Adds `lost` to the lag of `subscriber`: what a plain or topic
    /// receiver's `drain_lagged` returned.
    pub fn record_lag(&self, subscriber: &str, lost: u64) {
        if lost > 0 {
            self.shared.counters.lock().lag.add(subscriber, lost);
        }
    }

    /// Adds `dropped` to the evictions of `capsule`: what a routed receiver's
    /// `drain_lagged` returned.
    pub fn record_evictions(&self, capsule: &str, dropped: u64) {
        if dropped > 0 {
            self.shared.counters.lock().evictions.add(capsule, dropped);
        }
    }

    /// A copy of the counters now.
    ///
    /// Rates come from the last completed window; before the first window
    /// completes, from the current one so far. The lock is held only while
    /// copying at most `2 k` topics and the named counts.
    pub fn snapshot(&self) -> MonitorSnapshot {
        let now = Instant::now();
        let mut c = self.shared.counters.lock();
        c.rotate(now);
        let (mut window, window_len) = match &c.last_window {
            Some((w, len)) => (w.clone(), *len),
            None => (
                c.window_counts(),
                now.saturating_duration_since(c.window_start),
            ),
        };
        window.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let secs = window_len.as_secs_f64();
        let top_topics = c.topics.top();
        let attributed: u64 = top_topics.iter().map(|t| t.count - t.error).sum();
        let ipc = (c.ipc_events > 0).then_some(("ipc", c.ipc_events));
        let mut kinds: Vec<KindCount> = c
            .kinds
            .iter()
            .copied()
            .chain(ipc)
            .map(|(kind, count)| KindCount { kind, count })
            .collect();
        kinds.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.kind.cmp(b.kind)));
        MonitorSnapshot {
            uptime_seconds: now
                .saturating_duration_since(self.shared.attached_at)
                .as_secs_f64(),
            events_total: c.events,
            ipc_events_total: c.ipc_events,
            top_k: c.topics.k(),
            other_topics: c.ipc_events.saturating_sub(attributed),
            top_topics,
            window_seconds: secs,
            top_topics_by_rate: window
                .into_iter()
                .map(|(topic, count)| TopicRate {
                    per_second: if secs > 0.0 { count as f64 / secs } else { 0.0 },
                    topic,
                    count,
                })
                .collect(),
            event_kinds: kinds,
            lag_total: c.lag.total,
            lag: c.lag.snapshot(),
            evictions_total: c.evictions.total,
            evictions: c.evictions.snapshot(),
        }
    }
}

/// Events of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindCount {
    /// `event_type()` of the events.
    pub kind: &'static str,
    /// How many were published.
    pub count: u64,
}

/// A topic's rate over the rate window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicRate {
    /// The topic.
    pub topic: String,
    /// Its events in the window while it was tracked: exact for a topic
    /// tracked the whole window, a lower bound for one that took a counter
    /// over during the window.
    pub count: u64,
    /// `count` per second of the window.
    pub per_second: f64,
}

/// A count by subscriber or capsule name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedCount {
    /// The subscriber or capsule ([`OTHER`] for the rest).
    pub name: String,
    /// Events lost or evicted.
    pub count: u64,
}

/// A copy of a [`BusMonitor`]'s counters; plain data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorSnapshot {
    /// Seconds since the monitor was attached.
    pub uptime_seconds: f64,
    /// Events published since attach.
    pub events_total: u64,
    /// IPC events among them.
    pub ipc_events_total: u64,
    /// Topics tracked by name.
    pub top_k: usize,
    /// Topics by count since attach (at most `top_k`), highest first.
    pub top_topics: Vec<TopicCount>,
    /// IPC events not attributed for sure to a topic of `top_topics`:
    /// `ipc_events_total - sum(count - error)`.
    pub other_topics: u64,
    /// Length of the window `top_topics_by_rate` was measured over.
    pub window_seconds: f64,
    /// Tracked topics by rate over the last window (at most `top_k`),
    /// highest first. Rates come from the same `top_k` counters as
    /// `top_topics` (one summary, one update per publish), so a topic is
    /// listed if it was tracked during the window.
    pub top_topics_by_rate: Vec<TopicRate>,
    /// Events by kind, most first.
    pub event_kinds: Vec<KindCount>,
    /// Recorded receiver lag, all subscribers.
    pub lag_total: u64,
    /// Recorded receiver lag by subscriber, most first.
    pub lag: Vec<NamedCount>,
    /// Recorded routed evictions, all capsules.
    pub evictions_total: u64,
    /// Recorded routed evictions by capsule, most first.
    pub evictions: Vec<NamedCount>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventMetadata, IpcMessage, IpcPayload};

    fn ipc(topic: &str) -> AstridEvent {
        let message = IpcMessage::new(
            topic,
            IpcPayload::Custom {
                data: serde_json::json!({}),
            },
            uuid::Uuid::nil(),
        );
        AstridEvent::Ipc {
            metadata: EventMetadata::new("test"),
            message,
        }
    }

    #[test]
    fn memory_is_bounded_with_100k_distinct_topics() {
        let bus = EventBus::new();
        let monitor = BusMonitor::builder().top_k(32).attach(&bus);
        for i in 0..100_000u32 {
            bus.publish(ipc(&format!("capsule.{i}.v1.state")));
        }
        monitor.record_lag("dashboard", 5);
        for i in 0..(MAX_NAMED_ENTRIES as u64 + 50) {
            monitor.record_evictions(&format!("capsule-{i}"), 1);
        }
        {
            let c = monitor.recorder.shared.counters.lock();
            assert_eq!(c.topics.len(), 32);
            assert!(c.bases.len() <= 32);
            // IPC events are counted apart from the other kinds.
            assert!(c.kinds.is_empty());
            assert!(c.evictions.counts.len() <= MAX_NAMED_ENTRIES + 1);
        }
        let s = monitor.snapshot();
        assert_eq!(s.events_total, 100_000);
        assert_eq!(s.ipc_events_total, 100_000);
        assert_eq!(s.top_topics.len(), 32);
        assert!(s.top_topics_by_rate.len() <= 32);
        assert_eq!(s.lag_total, 5);
        assert_eq!(s.evictions_total, MAX_NAMED_ENTRIES as u64 + 50);
        assert_eq!(
            s.evictions
                .iter()
                .find(|e| e.name == OTHER)
                .map(|e| e.count),
            Some(50)
        );
        // Every event is accounted either to a listed topic or to "other".
        let attributed: u64 = s.top_topics.iter().map(|t| t.count - t.error).sum();
        assert_eq!(attributed + s.other_topics, s.ipc_events_total);
    }

    #[test]
    fn counts_kinds_and_rates_and_unregisters_on_drop() {
        let bus = EventBus::new();
        let monitor = BusMonitor::builder()
            .window(Duration::from_millis(20))
            .attach(&bus);
        assert_eq!(bus.sync_subscriber_count(), 1);
        for _ in 0..10 {
            bus.publish(ipc("a.b"));
        }
        bus.publish(AstridEvent::ConfigReloaded {
            metadata: EventMetadata::new("test"),
        });
        std::thread::sleep(Duration::from_millis(30));
        let s = monitor.snapshot();
        assert_eq!(s.events_total, 11);
        assert_eq!(s.event_kinds[0].kind, "ipc");
        assert_eq!(s.event_kinds[0].count, 10);
        assert_eq!(s.event_kinds[1].count, 1);
        // The window with the 10 events has closed: its rate is reported.
        assert_eq!(s.top_topics_by_rate[0].topic, "a.b");
        assert_eq!(s.top_topics_by_rate[0].count, 10);
        assert!(s.top_topics_by_rate[0].per_second > 0.0);
        assert!(s.window_seconds >= 0.02);
        let json = serde_json::to_value(&s).expect("serializes");
        assert_eq!(json["events_total"], 11);

        let recorder = monitor.recorder();
        drop(monitor);
        assert_eq!(bus.sync_subscriber_count(), 0);
        bus.publish(ipc("a.b"));
        assert_eq!(recorder.snapshot().events_total, 11);
    }
}
