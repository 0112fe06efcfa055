//! Bus monitor: what flows through a bus, in bounded memory.
//!
//! [`BusMonitor::attach`] registers a synchronous subscriber that counts
//! every published event: by event kind, and for IPC events by topic. Topic
//! cardinality is unbounded in a real runtime (request ids, capsule ids), so
//! topics are counted with the *space-saving* algorithm (Metwally, Agrawal
//! and El Abbadi, "Efficient Computation of Frequent and Top-k Elements in
//! Data Streams", ICDT 2005): at most `k` counters, whatever the number of
//! distinct topics ([`SpaceSaving`]).
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
use std::hash::Hasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use parking_lot::Mutex;
use serde::Serialize;

use crate::bus::EventBus;
use crate::event::AstridEvent;
use crate::sync_sub::{EventSubscriber, SubscriberId};

/// Default number of topics tracked by name.
pub const DEFAULT_TOP_K: usize = 32;

/// Default length of the rate window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(1);

/// Most subscriber (lag) or capsule (eviction) names tracked one by one; the
/// rest are summed under [`OTHER`].
pub const MAX_NAMED_ENTRIES: usize = 256;

/// Bucket name for everything not tracked by name.
pub const OTHER: &str = "<other>";

/// How many monitored events pass between two checks of the clock for the
/// rate window (the clock is also checked at every snapshot).
const CLOCK_CHECK_EVERY: u32 = 256;

/// Top-k frequent items of a stream in `k` counters (space-saving).
///
/// Each tracked key has a `count` and an `error`. When a key that is not
/// tracked arrives and all `k` counters are taken, the counter with the
/// smallest count is given to the new key: its count becomes `min + 1` and
/// its error `min`. Guarantees, for a stream of `N` items:
///
/// - `count - error <= true frequency <= count` for every tracked key;
/// - every key with true frequency greater than `N / k` is tracked;
/// - the counts sum to `N`.
///
/// Memory is `k` keys whatever the number of distinct keys. An update of a
/// tracked key is one hash lookup; taking over the minimum scans the `k`
/// counts (`k` is meant to be small, tens to hundreds) and allocates nothing
/// once the `k` counters are taken.
#[derive(Debug, Clone)]
pub struct SpaceSaving {
    k: usize,
    /// Tracked keys; at most `k`. Slot `i` is `keys[i]`, `counts[i]`,
    /// `errors[i]` (kept apart so the minimum scan reads only counts).
    keys: Vec<String>,
    counts: Vec<u64>,
    errors: Vec<u64>,
    /// `hash_key` of each slot's key (so a slot is found again without
    /// hashing its key a second time).
    hashes: Vec<u64>,
    /// The slots, found by their key's hash; exactly the slots of `keys`.
    index: HashTable<usize>,
    /// Items offered since creation or the last `clear`.
    total: u64,
    /// No count is below this (counts only grow): a slot holding it is a
    /// minimum, and the search for one stops there.
    floor: u64,
    /// Where the next search for a minimum starts (after the last slot
    /// taken over, so equal minima are taken in turn).
    cursor: usize,
}

/// The hash of a tracked key (each key is hashed once per offer).
fn hash_key(key: &str) -> u64 {
    let mut h = FastHasher::default();
    h.write(key.as_bytes());
    h.finish()
}

/// A fast, unkeyed hasher for the `k` tracked topics (multiply-rotate, as
/// in rustc's `FxHasher`).
///
/// Unkeyed is safe here: the map never holds more than `k` keys, so even
/// topics crafted to collide cost at most `k` comparisons per lookup.
#[derive(Debug, Default, Clone, Copy)]
struct FastHasher(u64);

impl FastHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One tracked key of a [`SpaceSaving`] summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicCount {
    /// The topic.
    pub topic: String,
    /// Upper bound of its frequency.
    pub count: u64,
    /// Most by which `count` may overstate it: the true frequency is in
    /// `count - error ..= count`.
    pub error: u64,
}

impl SpaceSaving {
    /// A summary that tracks at most `k` keys (at least 1).
    pub fn new(k: usize) -> Self {
        let k = k.max(1);
        Self {
            k,
            keys: Vec::with_capacity(k),
            counts: Vec::with_capacity(k),
            errors: Vec::with_capacity(k),
            hashes: Vec::with_capacity(k),
            index: HashTable::with_capacity(k),
            total: 0,
            floor: 0,
            cursor: 0,
        }
    }

    /// Counts one occurrence of `key`.
    pub fn offer(&mut self, key: &str) {
        self.offer_slot(key);
    }

    /// Counts one occurrence of `key`; returns its slot and, if the slot was
    /// (re)assigned to `key` by this call, the count the slot started from.
    fn offer_slot(&mut self, key: &str) -> (usize, Option<u64>) {
        self.total += 1;
        let hash = hash_key(key);
        let keys = &self.keys;
        if let Some(&i) = self.index.find(hash, |&i| keys[i] == key) {
            self.counts[i] += 1;
            return (i, None);
        }
        let slot = self.keys.len();
        if slot < self.k {
            self.keys.push(key.to_owned());
            self.counts.push(1);
            self.errors.push(0);
            self.hashes.push(hash);
            let hashes = &self.hashes;
            self.index.insert_unique(hash, slot, |&i| hashes[i]);
            return (slot, Some(0));
        }
        let (slot, min) = self.min_slot();
        // Take the slot over, reusing its key buffer: no allocation in the
        // steady state of a high-cardinality stream.
        if let Ok(entry) = self.index.find_entry(self.hashes[slot], |&i| i == slot) {
            entry.remove();
        }
        self.keys[slot].clear();
        self.keys[slot].push_str(key);
        self.hashes[slot] = hash;
        self.counts[slot] = min + 1;
        self.errors[slot] = min;
        let hashes = &self.hashes;
        self.index.insert_unique(hash, slot, |&i| hashes[i]);
        (slot, Some(min))
    }

    /// A slot with the smallest count, and that count: the first slot from
    /// `cursor` holding `floor` if any (usually within a few slots), else
    /// the smallest found in one full pass (which becomes the new floor).
    fn min_slot(&mut self) -> (usize, u64) {
        let k = self.counts.len();
        let (mut best, mut min) = (0, u64::MAX);
        for step in 0..k {
            let i = (self.cursor + step) % k;
            let c = self.counts[i];
            if c == self.floor {
                (best, min) = (i, c);
                break;
            }
            if c < min {
                (best, min) = (i, c);
            }
        }
        self.floor = min;
        self.cursor = (best + 1) % k;
        (best, min)
    }

    /// Items offered so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Keys currently tracked (at most `k`).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing was offered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The most keys tracked.
    pub fn k(&self) -> usize {
        self.k
    }

    /// `(count, error)` of `key`, if tracked.
    pub fn estimate(&self, key: &str) -> Option<(u64, u64)> {
        let i = *self.index.find(hash_key(key), |&i| self.keys[i] == key)?;
        Some((self.counts[i], self.errors[i]))
    }

    /// The tracked keys, highest count first (ties by key).
    pub fn top(&self) -> Vec<TopicCount> {
        let mut top: Vec<TopicCount> = (0..self.keys.len())
            .map(|i| TopicCount {
                topic: self.keys[i].clone(),
                count: self.counts[i],
                error: self.errors[i],
            })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.topic.cmp(&b.topic)));
        top
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.counts.clear();
        self.errors.clear();
        self.hashes.clear();
        self.index.clear();
        self.total = 0;
        self.floor = 0;
        self.cursor = 0;
    }
}

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
            self.bases.copy_from_slice(&self.topics.counts);
            self.last_window = Some((done, elapsed));
            self.window_start = now;
        }
    }

    /// Events per tracked topic in the current window so far.
    fn window_counts(&self) -> Vec<(String, u64)> {
        let t = &self.topics;
        (0..t.keys.len())
            .map(|i| (t.keys[i].clone(), t.counts[i] - self.bases[i]))
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
    use proptest::prelude::*;
    use std::collections::HashMap;

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

    /// Checks the space-saving guarantees against exact counts.
    fn check_guarantees(stream: &[String], k: usize) {
        let mut ss = SpaceSaving::new(k);
        let mut exact: HashMap<&str, u64> = HashMap::new();
        for key in stream {
            ss.offer(key);
            *exact.entry(key).or_default() += 1;
        }
        let n = stream.len() as u64;
        assert_eq!(ss.total(), n);
        assert!(ss.len() <= k);
        let top = ss.top();
        assert_eq!(top.iter().map(|t| t.count).sum::<u64>(), n);
        for t in &top {
            let truth = exact[t.topic.as_str()];
            assert!(t.count >= truth, "{t:?} undercounts {truth}");
            assert!(
                t.count - t.error <= truth,
                "{t:?} error bound broken, truth {truth}"
            );
        }
        for (key, &freq) in &exact {
            if freq * k as u64 > n {
                assert!(
                    ss.estimate(key).is_some(),
                    "{key} ({freq}/{n}) not tracked with k={k}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn space_saving_guarantees(
            // Skewed: small alphabets repeat, so some keys exceed N/k.
            stream in prop::collection::vec((0u8..40, 0u8..3), 0..2000),
            k in 1usize..20,
        ) {
            let stream: Vec<String> = stream
                .into_iter()
                .map(|(a, b)| if b == 0 { format!("t{}", a % 4) } else { format!("t{a}") })
                .collect();
            check_guarantees(&stream, k);
        }
    }

    #[test]
    fn heavy_hitter_survives_a_storm_of_distinct_topics() {
        // One topic at 1/8 of the stream, interleaved with 100,000 distinct
        // topics: with k = 32 it must be tracked and never undercounted.
        let mut stream = Vec::new();
        for i in 0..100_000u32 {
            stream.push(format!("storm.{i}"));
            if i % 7 == 0 {
                stream.push("llm.v1.stream.hot".to_owned());
            }
        }
        check_guarantees(&stream, 32);
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
            assert_eq!(c.topics.index.len(), 32);
            assert!(c.topics.keys.capacity() <= 64 && c.topics.counts.capacity() <= 64);
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

    #[test]
    fn k_of_zero_is_raised_to_one() {
        let mut ss = SpaceSaving::new(0);
        ss.offer("a");
        ss.offer("b");
        assert_eq!(ss.len(), 1);
        assert_eq!(ss.estimate("b"), Some((2, 1)));
        ss.clear();
        assert!(ss.is_empty() && ss.total() == 0);
    }
}
