//! The space-saving summary: the top-k most frequent keys of a stream in
//! `k` counters, whatever the number of distinct keys.
//!
//! Algorithm by Metwally, Agrawal and El Abbadi ("Efficient Computation of
//! Frequent and Top-k Elements in Data Streams", ICDT 2005). The bus monitor
//! (`monitor.rs`) counts topics with it; it knows the summary only through
//! the methods below (offers, slot counts and keys), never its fields.

use std::hash::Hasher;

use hashbrown::HashTable;
use serde::Serialize;

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
    ///
    /// Slots are numbered `0..len()` and keep their number while the summary
    /// lives (a slot taken over by another key keeps its number too), so a
    /// caller can keep per-slot data beside the summary (the monitor keeps
    /// each slot's count at the start of its rate window).
    pub(crate) fn offer_slot(&mut self, key: &str) -> (usize, Option<u64>) {
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

    /// The count of every slot, by slot number (see
    /// [`offer_slot`](Self::offer_slot)).
    pub(crate) fn slot_counts(&self) -> &[u64] {
        &self.counts
    }

    /// The key and count of every slot, by slot number.
    pub(crate) fn slots(&self) -> impl Iterator<Item = (&str, u64)> {
        self.keys
            .iter()
            .map(String::as_str)
            .zip(self.counts.iter().copied())
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

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
    fn k_of_zero_is_raised_to_one() {
        let mut ss = SpaceSaving::new(0);
        ss.offer("a");
        ss.offer("b");
        assert_eq!(ss.len(), 1);
        assert_eq!(ss.estimate("b"), Some((2, 1)));
        ss.clear();
        assert!(ss.is_empty() && ss.total() == 0);
    }

    #[test]
    fn memory_stays_at_k_keys_with_100k_distinct_keys() {
        let mut ss = SpaceSaving::new(32);
        for i in 0..100_000u32 {
            ss.offer(&format!("capsule.{i}.v1.state"));
        }
        assert_eq!(ss.len(), 32);
        assert_eq!(ss.index.len(), 32);
        assert!(ss.keys.capacity() <= 64 && ss.counts.capacity() <= 64);
        assert_eq!(ss.slot_counts().iter().sum::<u64>(), 100_000);
    }
}
