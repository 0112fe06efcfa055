//! Retained events: the last IPC event per exact topic, for late joiners.
//!
//! Opt-in per bus ([`RetentionPolicy`]). The policy names the patterns whose
//! topics are retained; those patterns sit in the bus's topic index as
//! `Target::Retain` entries, so a publish on a topic nobody retains pays
//! nothing extra (the index walk it does anyway finds no such entry).
//!
//! The store is bounded by a topic count and a byte limit; when either would
//! be exceeded, the least recently published topic is evicted and counted
//! (`astrid_bus_retained_evictions_total`). The byte limit bounds real
//! memory: an entry is charged what its event holds (see `held.rs`), its
//! topic key and [`RETAINED_ENTRY_BYTES`], a bound on its share of the two
//! maps: the topic map keeps at most twice the entries' capacity (it is
//! shrunk when emptier) at 8/7 buckets per entry, and the age index is a
//! B-tree of at least 5 entries per non-root node. The event of the age
//! index is the same `Arc` (its topic is read from it), not a second copy.
//!
//! Consistency with live delivery: a publish updates the store, and a
//! `with_last` subscription snapshots it and joins the topic index, each
//! under the bus's publish lock (the sequencer, which guards the index). So
//! every event is either in the snapshot (published before the subscription
//! joined) or delivered live, never both and never neither, and the
//! snapshot is older than every live event. Lock order: sequencer, then
//! store.

use std::collections::{BTreeMap, HashMap};
use std::mem::size_of;
use std::sync::Arc;

use crate::metrics::METRIC_BUS_RETAINED_EVICTIONS_TOTAL;
use crate::schema::event::AstridEvent;
use crate::schema::topic::topic_pattern_matches;

/// Which topics a bus retains, and how much.
///
/// ```
/// use astrid_events::{EventBus, RetentionPolicy};
///
/// let bus = EventBus::builder()
///     .retention(RetentionPolicy::new(["registry.v1.*"]).max_topics(1000).max_bytes(4 << 20))
///     .build();
/// # let _ = bus;
/// ```
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    pub(crate) patterns: Vec<String>,
    pub(crate) max_topics: usize,
    pub(crate) max_bytes: usize,
}

impl RetentionPolicy {
    /// Default bound on retained topics.
    pub const DEFAULT_MAX_TOPICS: usize = 10_000;
    /// Default bound on retained bytes: what the retained events hold, plus
    /// each entry's topic key and map overhead.
    pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

    /// Retains the last event of every topic matching one of `patterns`.
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            patterns: patterns.into_iter().map(Into::into).collect(),
            max_topics: Self::DEFAULT_MAX_TOPICS,
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }

    /// Retains every topic (of matchable depth).
    pub fn all() -> Self {
        Self::new(["*", "*.*"])
    }

    /// At most `n` topics are retained.
    #[must_use]
    pub fn max_topics(mut self, n: usize) -> Self {
        self.max_topics = n;
        self
    }

    /// At most `bytes` are retained, counting what each retained event holds
    /// in memory (its allocation and every string, vector and map in it),
    /// its topic key and a per-entry overhead; the least recently published
    /// topics are evicted to stay within it.
    #[must_use]
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }
}

struct Entry {
    event: Arc<AstridEvent>,
    /// What the event holds (see `held.rs`).
    held: usize,
    stamp: u64,
}

/// Bound on one entry's share of the two maps (its event and topic key
/// excluded); see the module docs.
const RETAINED_ENTRY_BYTES: usize = {
    let map = (2 * 8 * (size_of::<(String, Entry)>() + 1)).div_ceil(7);
    let age_node = 16 + 11 * size_of::<(u64, Arc<AstridEvent>)>() + 12 * size_of::<usize>();
    map + age_node.div_ceil(5)
};

/// Topic maps with this capacity or less are not shrunk.
const MIN_SHRINK_CAPACITY: usize = 64;

/// What an entry of `topic` whose event holds `held` bytes is charged.
fn charge(topic: &str, held: usize) -> usize {
    held.saturating_add(topic.len())
        .saturating_add(RETAINED_ENTRY_BYTES)
}

/// The topic of a retained (IPC) event.
fn topic_of(event: &AstridEvent) -> Option<&str> {
    match event {
        AstridEvent::Ipc { message, .. } => Some(&message.topic),
        _ => None,
    }
}

/// The store. Lives behind a mutex in the bus.
pub(crate) struct Retained {
    max_topics: usize,
    max_bytes: usize,
    /// Capacity at most twice the length plus [`MIN_SHRINK_CAPACITY`].
    by_topic: HashMap<String, Entry>,
    /// Publish stamp -> the entry's event, oldest first: the eviction order.
    by_age: BTreeMap<u64, Arc<AstridEvent>>,
    /// Sum of the entries' charges.
    bytes: usize,
    next_stamp: u64,
}

impl Retained {
    pub(crate) fn new(policy: &RetentionPolicy) -> Self {
        Self {
            max_topics: policy.max_topics,
            max_bytes: policy.max_bytes,
            by_topic: HashMap::new(),
            by_age: BTreeMap::new(),
            bytes: 0,
            next_stamp: 0,
        }
    }

    /// Keeps `event` (an IPC event holding `held` bytes) as the last one of
    /// its topic.
    pub(crate) fn store(&mut self, event: &Arc<AstridEvent>, held: usize) {
        let Some(topic) = topic_of(event) else {
            return;
        };
        let size = charge(topic, held);
        if self.max_topics == 0 || size > self.max_bytes {
            // Could never be held: evicting everything else would not help.
            self.remove(topic);
            metrics::counter!(METRIC_BUS_RETAINED_EVICTIONS_TOTAL).increment(1);
            return;
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let entry = Entry {
            event: Arc::clone(event),
            held,
            stamp,
        };
        match self.by_topic.get_mut(topic) {
            Some(old) => {
                self.by_age.remove(&old.stamp);
                self.bytes = self.bytes - charge(topic, old.held) + size;
                *old = entry;
            }
            None => {
                self.by_topic.insert(topic.to_owned(), entry);
                self.bytes += size;
            }
        }
        self.by_age.insert(stamp, Arc::clone(event));
        let mut evicted = 0u64;
        while self.by_topic.len() > self.max_topics || self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            if let Some(topic) = topic_of(&oldest)
                && let Some(entry) = self.by_topic.remove(topic)
            {
                self.bytes -= charge(topic, entry.held);
            }
            evicted += 1;
        }
        if evicted > 0 {
            self.shrink();
            metrics::counter!(METRIC_BUS_RETAINED_EVICTIONS_TOTAL).increment(evicted);
        }
    }

    fn remove(&mut self, topic: &str) {
        if let Some(entry) = self.by_topic.remove(topic) {
            self.by_age.remove(&entry.stamp);
            self.bytes -= charge(topic, entry.held);
            self.shrink();
        }
    }

    /// Gives back topic map capacity past twice the entries: the rehash
    /// costs the entries left and follows at least as many removals.
    fn shrink(&mut self) {
        if self.by_topic.capacity() > 2 * self.by_topic.len() + MIN_SHRINK_CAPACITY {
            self.by_topic.shrink_to(self.by_topic.len());
        }
    }

    /// The retained event of exactly `topic`.
    pub(crate) fn get(&self, topic: &str) -> Option<Arc<AstridEvent>> {
        self.by_topic.get(topic).map(|e| Arc::clone(&e.event))
    }

    /// Retained events whose topic matches `pattern`, oldest publish first,
    /// each with the bytes it holds.
    pub(crate) fn matching(&self, pattern: &str) -> Vec<(Arc<AstridEvent>, usize)> {
        self.by_age
            .values()
            .filter_map(|event| topic_of(event))
            .filter(|topic| topic_pattern_matches(pattern, topic))
            .filter_map(|topic| self.by_topic.get(topic))
            .map(|e| (Arc::clone(&e.event), e.held))
            .collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_topic.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{IpcMessage, IpcPayload};
    use crate::schema::event::EventMetadata;

    fn ev(topic: &str) -> Arc<AstridEvent> {
        let payload = IpcPayload::Custom {
            data: serde_json::json!(1),
        };
        Arc::new(AstridEvent::Ipc {
            metadata: EventMetadata::new("t"),
            message: IpcMessage::new(topic, payload, uuid::Uuid::nil()),
        })
    }

    #[test]
    fn least_recently_published_topic_goes_first() {
        let mut r = Retained::new(&RetentionPolicy::all().max_topics(2));
        r.store(&ev("a"), 10);
        r.store(&ev("b"), 10);
        r.store(&ev("a"), 10); // a is now the most recent
        r.store(&ev("c"), 10); // evicts b
        assert!(r.get("a").is_some() && r.get("c").is_some() && r.get("b").is_none());
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn byte_limit_evicts_and_oversize_is_not_kept() {
        let one = charge("a", 60);
        let mut r = Retained::new(&RetentionPolicy::all().max_bytes(one + one / 2));
        r.store(&ev("a"), 60);
        r.store(&ev("b"), 60);
        assert!(r.get("a").is_none() && r.get("b").is_some());
        assert_eq!(r.bytes, one);
        r.store(&ev("b"), 2 * one);
        assert!(
            r.get("b").is_none(),
            "an event over the whole limit replaces and is dropped"
        );
        assert_eq!(r.bytes, 0);
    }

    #[test]
    fn an_entry_is_charged_its_topic_and_overhead() {
        let mut r = Retained::new(&RetentionPolicy::all());
        let topic = "t".repeat(1000);
        r.store(&ev(&topic), 500);
        assert_eq!(r.bytes, 500 + 1000 + RETAINED_ENTRY_BYTES);
        r.store(&ev(&topic), 700);
        assert_eq!(
            r.bytes,
            700 + 1000 + RETAINED_ENTRY_BYTES,
            "replaced, not added"
        );
    }

    #[test]
    fn the_topic_map_shrinks_after_mass_eviction() {
        let mut r = Retained::new(&RetentionPolicy::all().max_topics(100_000));
        for i in 0..10_000 {
            r.store(&ev(&format!("t{i}")), 1);
        }
        assert!(r.by_topic.capacity() >= 10_000);
        r.max_topics = 10;
        r.store(&ev("last"), 1);
        assert_eq!(r.len(), 10);
        assert!(r.by_topic.capacity() <= 2 * 10 + MIN_SHRINK_CAPACITY);
    }

    #[test]
    fn matching_is_in_publish_order() {
        let mut r = Retained::new(&RetentionPolicy::all());
        r.store(&ev("x.2"), 1);
        r.store(&ev("x.1"), 1);
        r.store(&ev("y.1"), 1);
        assert_eq!(r.matching("x.*").len(), 2);
        assert_eq!(r.matching("*.1").len(), 2);
        let topics: Vec<String> = r
            .matching("x.*")
            .iter()
            .filter_map(|(e, _)| topic_of(e).map(str::to_owned))
            .collect();
        assert_eq!(topics, ["x.2", "x.1"]);
    }
}
