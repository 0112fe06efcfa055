//! Retained events: the last IPC event per exact topic, for late joiners.
//!
//! Opt-in per bus ([`RetentionPolicy`]). The policy names the patterns whose
//! topics are retained; those patterns sit in the bus's topic index as
//! `Target::Retain` entries, so a publish on a topic nobody retains pays
//! nothing extra (the index walk it does anyway finds no such entry).
//!
//! The store is bounded by a topic count and a byte limit; when either would
//! be exceeded, the least recently published topic is evicted and counted
//! (`astrid_bus_retained_evictions_total`).
//!
//! Consistency with live delivery: a publish updates the store, and a
//! `*_with_last` subscription snapshots it and joins the topic index, each
//! under the bus's publish lock (the sequencer, which guards the index). So
//! every event is either in the snapshot (published before the subscription
//! joined) or delivered live, never both and never neither, and the
//! snapshot is older than every live event. Lock order: sequencer, then
//! store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::event::AstridEvent;
use crate::metrics::METRIC_BUS_RETAINED_EVICTIONS_TOTAL;
use crate::topic::topic_pattern_matches;

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
    /// Default bound on retained bytes (accounted size, see `ipc_size_of`).
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

    /// At most `bytes` of accounted size are retained.
    #[must_use]
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }
}

struct Entry {
    event: Arc<AstridEvent>,
    size: usize,
    stamp: u64,
}

/// The store. Lives behind a mutex in the bus.
pub(crate) struct Retained {
    max_topics: usize,
    max_bytes: usize,
    by_topic: HashMap<String, Entry>,
    /// Publish stamp -> topic, oldest first: the eviction order.
    by_age: BTreeMap<u64, String>,
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

    /// Keeps `event` as the last one of `topic`.
    pub(crate) fn store(&mut self, topic: &str, event: &Arc<AstridEvent>, size: usize) {
        if self.max_topics == 0 || size > self.max_bytes {
            // Could never be held: evicting everything else would not help.
            self.remove(topic);
            metrics::counter!(METRIC_BUS_RETAINED_EVICTIONS_TOTAL).increment(1);
            return;
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        match self.by_topic.get_mut(topic) {
            Some(entry) => {
                self.by_age.remove(&entry.stamp);
                self.bytes = self.bytes - entry.size + size;
                *entry = Entry {
                    event: Arc::clone(event),
                    size,
                    stamp,
                };
                self.by_age.insert(stamp, topic.to_owned());
            }
            None => {
                self.by_topic.insert(
                    topic.to_owned(),
                    Entry {
                        event: Arc::clone(event),
                        size,
                        stamp,
                    },
                );
                self.by_age.insert(stamp, topic.to_owned());
                self.bytes += size;
            }
        }
        let mut evicted = 0u64;
        while self.by_topic.len() > self.max_topics || self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            if let Some(entry) = self.by_topic.remove(&oldest) {
                self.bytes -= entry.size;
            }
            evicted += 1;
        }
        if evicted > 0 {
            metrics::counter!(METRIC_BUS_RETAINED_EVICTIONS_TOTAL).increment(evicted);
        }
    }

    fn remove(&mut self, topic: &str) {
        if let Some(entry) = self.by_topic.remove(topic) {
            self.by_age.remove(&entry.stamp);
            self.bytes -= entry.size;
        }
    }

    /// The retained event of exactly `topic`.
    pub(crate) fn get(&self, topic: &str) -> Option<Arc<AstridEvent>> {
        self.by_topic.get(topic).map(|e| Arc::clone(&e.event))
    }

    /// Retained events whose topic matches `pattern`, oldest publish first.
    pub(crate) fn matching(&self, pattern: &str) -> Vec<Arc<AstridEvent>> {
        self.by_age
            .values()
            .filter(|topic| topic_pattern_matches(pattern, topic))
            .filter_map(|topic| self.by_topic.get(topic))
            .map(|e| Arc::clone(&e.event))
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
    use crate::event::EventMetadata;

    fn ev() -> Arc<AstridEvent> {
        Arc::new(AstridEvent::Custom {
            metadata: EventMetadata::new("t"),
            name: "n".into(),
            data: serde_json::json!(1),
        })
    }

    #[test]
    fn least_recently_published_topic_goes_first() {
        let mut r = Retained::new(&RetentionPolicy::all().max_topics(2));
        r.store("a", &ev(), 10);
        r.store("b", &ev(), 10);
        r.store("a", &ev(), 10); // a is now the most recent
        r.store("c", &ev(), 10); // evicts b
        assert!(r.get("a").is_some() && r.get("c").is_some() && r.get("b").is_none());
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn byte_limit_evicts_and_oversize_is_not_kept() {
        let mut r = Retained::new(&RetentionPolicy::all().max_bytes(100));
        r.store("a", &ev(), 60);
        r.store("b", &ev(), 60);
        assert!(r.get("a").is_none() && r.get("b").is_some());
        r.store("b", &ev(), 101);
        assert!(
            r.get("b").is_none(),
            "an event over the whole limit replaces and is dropped"
        );
        assert_eq!(r.bytes, 0);
    }

    #[test]
    fn matching_is_in_publish_order() {
        let mut r = Retained::new(&RetentionPolicy::all());
        r.store("x.2", &ev(), 1);
        r.store("x.1", &ev(), 1);
        r.store("y.1", &ev(), 1);
        assert_eq!(r.matching("x.*").len(), 2);
        assert_eq!(r.matching("*.1").len(), 2);
    }
}
