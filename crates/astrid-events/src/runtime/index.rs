//! The topic index: which subscriptions match a topic, without a scan.
//!
//! A subject trie in the manner of the NATS sublist. Each [`Level`] maps a
//! literal segment to the next node and has one slot for the `*` segment.
//! A node holds the subscriptions whose pattern ends exactly there and the
//! ones whose pattern ends there in a trailing `.*`:
//!
//! ```text
//! patterns: a.b   a.*.c   a.*   *
//!
//! root ─ "a" ─┬─ "b"  [exact: a.b]
//!   │         ├─ "*" ─ "c"  [exact: a.*.c]
//!   │         └─ (node a) [trailing: a.*]
//!   └─ "*"  [exact: *]
//! ```
//!
//! A lookup walks the topic's segments once, branching only into `*` slots,
//! so its cost is O(depth × wildcard fan-out + matches) and independent of
//! the number of subscriptions that do not match. Every pattern sits at
//! exactly one node, and a walk visits a node at most once, so a lookup never
//! reports a subscription twice.
//!
//! Removal prunes nodes that became empty from the bottom up, so the index
//! returns to its empty size once every subscription is gone.
//!
//! A pattern with more than `MAX_TOPIC_DEPTH` segments to match can never
//! match (no matchable topic is that deep), and the unchecked subscription
//! paths accept any string, so such patterns are kept in a flat list beside
//! the trie instead of in it: the trie is never deeper than
//! `MAX_TOPIC_DEPTH`, which bounds the recursion of removal, walks and drop.
//!
//! The index itself is not synchronised; the bus keeps it behind a lock and
//! copies the matched values out before delivering (`bus.rs`).

use std::collections::HashMap;

use crate::schema::topic::{MAX_TOPIC_DEPTH, WILDCARD, within_depth};

/// The shape of a parsed pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternShape {
    /// Segment counts must be equal.
    Exact,
    /// Ends in `.*`: the topic needs at least one segment beyond the prefix.
    Trailing,
}

/// Splits a pattern into the segments that must match one by one, and its
/// shape. For a trailing pattern the final `*` is not part of the prefix.
fn split_pattern(pattern: &str) -> (Vec<&str>, PatternShape) {
    let mut segments: Vec<&str> = pattern.split('.').collect();
    if segments.len() >= 2 && segments.last() == Some(&WILDCARD) {
        segments.pop();
        (segments, PatternShape::Trailing)
    } else {
        (segments, PatternShape::Exact)
    }
}

/// Identifies one entry in the index.
pub(crate) type EntryId = u64;

/// One node of the trie.
#[derive(Debug)]
struct Node<T> {
    /// Subscriptions whose whole pattern ends at this node.
    exact: Vec<(EntryId, T)>,
    /// Subscriptions whose pattern is this node's path followed by `.*`.
    trailing: Vec<(EntryId, T)>,
    /// Children, one per literal segment or `*`.
    next: Level<T>,
}

/// The children of a node.
#[derive(Debug)]
struct Level<T> {
    literal: Literals<T>,
    star: Option<Box<Node<T>>>,
}

impl<T> Default for Level<T> {
    fn default() -> Self {
        Self {
            literal: Literals::Few(Vec::new()),
            star: None,
        }
    }
}

/// Most literal children a level keeps in a list; one more turns it into a
/// map.
const FEW_LITERALS: usize = 8;

/// The literal children of a node, by segment.
///
/// Most levels hold one or two children (`tool` → `v1` → ...): those are a
/// short list, found by comparing the segment with each key, which is
/// several times cheaper than hashing it (a lookup per topic segment is
/// most of a publish's index walk). A level with more than
/// [`FEW_LITERALS`] children is a map, hashed with SipHash and a random
/// key (segments come from callers), so no level is ever scanned past
/// [`FEW_LITERALS`] keys. A map that shrinks to half that becomes a list
/// again (the gap keeps a level at the boundary from switching back and
/// forth).
///
/// Nodes are boxed so an entry is a few words whichever the form.
#[derive(Debug)]
enum Literals<T> {
    Few(Vec<(Box<str>, Box<Node<T>>)>),
    Many(HashMap<Box<str>, Box<Node<T>>>),
}

impl<T> Literals<T> {
    fn is_empty(&self) -> bool {
        match self {
            Self::Few(list) => list.is_empty(),
            Self::Many(map) => map.is_empty(),
        }
    }

    #[inline]
    fn get(&self, segment: &str) -> Option<&Node<T>> {
        match self {
            Self::Few(list) => list
                .iter()
                .find(|(key, _)| key.as_ref() == segment)
                .map(|(_, node)| node.as_ref()),
            Self::Many(map) => map.get(segment).map(AsRef::as_ref),
        }
    }

    fn get_mut(&mut self, segment: &str) -> Option<&mut Node<T>> {
        match self {
            Self::Few(list) => list
                .iter_mut()
                .find(|(key, _)| key.as_ref() == segment)
                .map(|(_, node)| node.as_mut()),
            Self::Many(map) => map.get_mut(segment).map(AsMut::as_mut),
        }
    }

    /// The child under `segment`, made empty if there is none.
    fn get_or_insert(&mut self, segment: &str) -> &mut Node<T> {
        if let Self::Few(list) = self
            && list.len() >= FEW_LITERALS
            && !list.iter().any(|(key, _)| key.as_ref() == segment)
        {
            *self = Self::Many(std::mem::take(list).into_iter().collect());
        }
        match self {
            Self::Few(list) => {
                let at = match list.iter().position(|(key, _)| key.as_ref() == segment) {
                    Some(at) => at,
                    None => {
                        list.push((segment.into(), Box::default()));
                        list.len() - 1
                    }
                };
                &mut list[at].1
            }
            // Look up first so an existing segment costs no allocation.
            Self::Many(map) => {
                if !map.contains_key(segment) {
                    map.insert(segment.into(), Box::default());
                }
                map.get_mut(segment)
                    .unwrap_or_else(|| unreachable!("inserted above"))
            }
        }
    }

    fn remove(&mut self, segment: &str) {
        match self {
            Self::Few(list) => {
                if let Some(at) = list.iter().position(|(key, _)| key.as_ref() == segment) {
                    list.swap_remove(at);
                }
                if list.is_empty() {
                    *list = Vec::new();
                }
            }
            Self::Many(map) => {
                map.remove(segment);
                if map.len() <= FEW_LITERALS / 2 {
                    *self = Self::Few(std::mem::take(map).into_iter().collect());
                }
            }
        }
    }

    fn nodes(&self) -> impl Iterator<Item = &Node<T>> {
        let (few, many) = match self {
            Self::Few(list) => (Some(list.iter().map(|(_, node)| node.as_ref())), None),
            Self::Many(map) => (None, Some(map.values().map(AsRef::as_ref))),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            exact: Vec::new(),
            trailing: Vec::new(),
            next: Level::default(),
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.trailing.is_empty()
            && self.next.literal.is_empty()
            && self.next.star.is_none()
    }

    fn child_mut(&mut self, segment: &str) -> &mut Node<T> {
        if segment == WILDCARD {
            self.next.star.get_or_insert_with(Box::default)
        } else {
            self.next.literal.get_or_insert(segment)
        }
    }

    /// Removes `id` below this node along `segments`; prunes emptied
    /// children. Returns the removed value.
    fn remove(&mut self, segments: &[&str], shape: PatternShape, id: EntryId) -> Option<T> {
        let Some((first, rest)) = segments.split_first() else {
            let list = match shape {
                PatternShape::Exact => &mut self.exact,
                PatternShape::Trailing => &mut self.trailing,
            };
            let pos = list.iter().position(|(e, _)| *e == id)?;
            return Some(list.swap_remove(pos).1);
        };
        if *first == crate::schema::topic::WILDCARD {
            let child = self.next.star.as_mut()?;
            let removed = child.remove(rest, shape, id);
            if child.is_empty() {
                self.next.star = None;
            }
            removed
        } else {
            let child = self.next.literal.get_mut(first)?;
            let removed = child.remove(rest, shape, id);
            if child.is_empty() {
                self.next.literal.remove(first);
            }
            removed
        }
    }

    fn collect<'a>(&'a self, topic: &[&str], out: &mut impl FnMut(&'a T)) {
        let Some((first, rest)) = topic.split_first() else {
            self.exact.iter().for_each(|(_, v)| out(v));
            return;
        };
        // At least one topic segment remains: trailing patterns here match.
        self.trailing.iter().for_each(|(_, v)| out(v));
        if let Some(child) = self.next.literal.get(first) {
            child.collect(rest, out);
        }
        if let Some(child) = &self.next.star {
            child.collect(rest, out);
        }
    }

    #[cfg(test)]
    fn count_nodes(&self) -> usize {
        1 + self
            .next
            .literal
            .nodes()
            .map(Node::count_nodes)
            .sum::<usize>()
            + self.next.star.as_ref().map_or(0, |n| n.count_nodes())
    }
}

/// A subject trie mapping patterns to values of type `T`.
#[derive(Debug)]
pub(crate) struct TopicIndex<T> {
    root: Node<T>,
    /// Entries whose pattern can never match (deeper than any matchable
    /// topic). Kept out of the trie, so the trie's depth, and with it every
    /// recursion over it, is bounded by `MAX_TOPIC_DEPTH`.
    inert: Vec<(EntryId, T)>,
    len: usize,
}

impl<T> Default for TopicIndex<T> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            inert: Vec::new(),
            len: 0,
        }
    }
}

/// Whether a pattern of this shape could match a topic of matchable depth.
fn can_match(segments: usize, shape: PatternShape) -> bool {
    match shape {
        PatternShape::Exact => segments <= MAX_TOPIC_DEPTH,
        // The topic needs at least one segment beyond the prefix.
        PatternShape::Trailing => segments < MAX_TOPIC_DEPTH,
    }
}

impl<T> TopicIndex<T> {
    /// Adds `value` under `pattern` with the caller-chosen unique `id`.
    pub(crate) fn insert(&mut self, pattern: &str, id: EntryId, value: T) {
        let (segments, shape) = split_pattern(pattern);
        self.len += 1;
        if !can_match(segments.len(), shape) {
            self.inert.push((id, value));
            return;
        }
        let mut node = &mut self.root;
        for segment in segments {
            node = node.child_mut(segment);
        }
        match shape {
            PatternShape::Exact => node.exact.push((id, value)),
            PatternShape::Trailing => node.trailing.push((id, value)),
        }
    }

    /// Removes the entry `id` that was inserted under `pattern`.
    pub(crate) fn remove(&mut self, pattern: &str, id: EntryId) -> Option<T> {
        let (segments, shape) = split_pattern(pattern);
        let removed = if can_match(segments.len(), shape) {
            self.root.remove(&segments, shape, id)
        } else {
            let pos = self.inert.iter().position(|(e, _)| *e == id)?;
            Some(self.inert.swap_remove(pos).1)
        };
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Calls `out` once for every value whose pattern matches `topic`.
    pub(crate) fn for_each_match<'a>(&'a self, topic: &str, mut out: impl FnMut(&'a T)) {
        if self.len == 0 || !within_depth(topic) {
            return;
        }
        // At most MAX_TOPIC_DEPTH segments: a fixed array keeps this off the heap.
        let mut segments = [""; MAX_TOPIC_DEPTH];
        let mut n = 0;
        for segment in topic.split('.') {
            segments[n] = segment;
            n += 1;
        }
        self.root.collect(&segments[..n], &mut out);
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Calls `f` for every entry (any order).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&T)) {
        fn walk<T>(node: &Node<T>, f: &mut impl FnMut(&T)) {
            node.exact
                .iter()
                .chain(&node.trailing)
                .for_each(|(_, v)| f(v));
            node.next.literal.nodes().for_each(|n| walk(n, f));
            if let Some(n) = &node.next.star {
                walk(n, f);
            }
        }
        walk(&self.root, &mut f);
        self.inert.iter().for_each(|(_, v)| f(v));
    }

    /// Number of trie nodes, root included (1 when empty). For pruning tests.
    #[cfg(test)]
    pub(crate) fn node_count(&self) -> usize {
        self.root.count_nodes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_star_is_one_segment_and_a_final_star_is_trailing() {
        assert_eq!(split_pattern("*").1, PatternShape::Exact);
        assert_eq!(split_pattern("a.*").1, PatternShape::Trailing);
        assert_eq!(split_pattern("a.*"), (vec!["a"], PatternShape::Trailing));
    }
    use crate::schema::topic::topic_pattern_matches;
    use proptest::prelude::*;

    fn matches(index: &TopicIndex<u64>, topic: &str) -> Vec<u64> {
        let mut out = Vec::new();
        index.for_each_match(topic, |v| out.push(*v));
        out.sort_unstable();
        out
    }

    #[test]
    fn finds_exact_single_and_trailing_wildcards() {
        let mut index = TopicIndex::default();
        for (id, pattern) in ["a.b", "a.*.c", "a.*", "*", "a.b.*", "x.y"]
            .iter()
            .enumerate()
        {
            index.insert(pattern, id as u64, id as u64);
        }
        assert_eq!(matches(&index, "a.b"), vec![0, 2]);
        assert_eq!(matches(&index, "a.b.c"), vec![1, 2, 4]);
        assert_eq!(matches(&index, "a"), vec![3]);
        assert_eq!(matches(&index, "q.r"), Vec::<u64>::new());
    }

    #[test]
    fn remove_prunes_back_to_an_empty_root() {
        let mut index = TopicIndex::default();
        let patterns = ["a.b", "a.*.c", "a.*", "*", "a.b.*", "x.y.z.w", "", ".*"];
        for (id, p) in patterns.iter().enumerate() {
            index.insert(p, id as u64, id as u64);
        }
        assert!(index.node_count() > 1);
        for (id, p) in patterns.iter().enumerate() {
            assert_eq!(index.remove(p, id as u64), Some(id as u64));
        }
        assert_eq!(index.len(), 0);
        assert_eq!(index.node_count(), 1);
        assert_eq!(index.remove("a.b", 0), None);
    }

    #[test]
    fn unmatchable_deep_patterns_stay_out_of_the_trie() {
        let mut index = TopicIndex::default();
        let deep = vec!["s"; 100_000].join(".");
        let twenty = vec!["s"; 20].join(".");
        index.insert(&deep, 1, 1);
        index.insert(&format!("{twenty}.*"), 2, 2);
        index.insert(&twenty, 3, 3);
        assert_eq!(index.len(), 3);
        assert_eq!(
            index.node_count(),
            21,
            "only the 20-segment pattern is in the trie"
        );
        assert_eq!(matches(&index, &twenty), vec![3]);
        let mut all = Vec::new();
        index.for_each(|v| all.push(*v));
        all.sort_unstable();
        assert_eq!(all, vec![1, 2, 3]);
        assert_eq!(index.remove(&deep, 1), Some(1));
        assert_eq!(index.remove(&format!("{twenty}.*"), 2), Some(2));
        assert_eq!(index.len(), 1);
    }

    /// A level grows from a list into a map past `FEW_LITERALS` children
    /// and back into a list as they leave; lookups agree with the reference
    /// matcher at every step.
    #[test]
    fn wide_levels_switch_between_list_and_map() {
        let patterns: Vec<String> = (0..3 * FEW_LITERALS)
            .flat_map(|i| [format!("s{i}.x"), format!("s{i}.*"), format!("*.s{i}")])
            .collect();
        let topics: Vec<String> = (0..3 * FEW_LITERALS + 1)
            .flat_map(|i| [format!("s{i}.x"), format!("s{i}.y"), format!("q.s{i}")])
            .collect();
        let check = |index: &TopicIndex<u64>, live: &[bool]| {
            for topic in &topics {
                let expected: Vec<u64> = (0..patterns.len())
                    .filter(|&id| live[id] && topic_pattern_matches(&patterns[id], topic))
                    .map(|id| id as u64)
                    .collect();
                assert_eq!(matches(index, topic), expected, "topic {topic}");
            }
        };
        let mut index = TopicIndex::default();
        let mut live = vec![false; patterns.len()];
        for (id, p) in patterns.iter().enumerate() {
            index.insert(p, id as u64, id as u64);
            live[id] = true;
            if id % 7 == 0 {
                check(&index, &live);
            }
        }
        assert!(matches!(index.root.next.literal, Literals::Many(_)));
        check(&index, &live);
        for (id, p) in patterns.iter().enumerate() {
            assert_eq!(index.remove(p, id as u64), Some(id as u64));
            live[id] = false;
            if id % 5 == 0 {
                check(&index, &live);
            }
        }
        assert!(matches!(index.root.next.literal, Literals::Few(_)));
        assert_eq!(index.node_count(), 1);
    }

    #[test]
    fn same_pattern_twice_reports_both() {
        let mut index = TopicIndex::default();
        index.insert("a.b", 1, 1);
        index.insert("a.b", 2, 2);
        assert_eq!(matches(&index, "a.b"), vec![1, 2]);
        index.remove("a.b", 1);
        assert_eq!(matches(&index, "a.b"), vec![2]);
    }

    /// A pattern too deep to ever match (the 0.8.0 unchecked subscription
    /// paths accept any string) must not build a trie that deep: removal,
    /// walking and dropping recurse per level and would overflow the stack.
    #[test]
    fn unmatchable_deep_patterns_do_not_deepen_the_trie() {
        let deep = ".".repeat(200_000);
        let deep_trailing = format!("{}*", "a.".repeat(100_000));
        let mut index = TopicIndex::default();
        index.insert(&deep, 1, 1);
        index.insert(&deep_trailing, 2, 2);
        index.insert("", 3, 3);
        assert!(index.node_count() <= 2, "trie depth follows the pattern");
        assert_eq!(index.len(), 3);
        let mut all = Vec::new();
        index.for_each(|v| all.push(*v));
        all.sort_unstable();
        assert_eq!(all, vec![1, 2, 3], "still reachable for shutdown");
        assert_eq!(matches(&index, ""), vec![3]);
        assert_eq!(matches(&index, &deep[..20]), Vec::<u64>::new());
        assert_eq!(index.remove(&deep, 1), Some(1));
        assert_eq!(index.remove(&deep_trailing, 2), Some(2));
        assert_eq!(index.remove(&deep, 1), None);
        index.insert(&deep, 4, 4);
        drop(index);
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("*".to_string()),
            Just(String::new()),
            Just("a*".to_string())
        ]
    }

    fn dotted(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..max).prop_map(|s| s.join("."))
    }

    proptest! {
        /// The index reports exactly the patterns that the reference matcher
        /// accepts, for any set of patterns and topics over a small alphabet.
        #[test]
        fn index_agrees_with_brute_force(patterns in prop::collection::vec(dotted(5), 0..24),
                                         topics in prop::collection::vec(dotted(6), 1..16),
                                         removed in prop::collection::vec(any::<bool>(), 24)) {
            let mut index = TopicIndex::default();
            for (id, p) in patterns.iter().enumerate() {
                index.insert(p, id as u64, id as u64);
            }
            for (id, p) in patterns.iter().enumerate() {
                if removed[id] {
                    prop_assert_eq!(index.remove(p, id as u64), Some(id as u64));
                }
            }
            for topic in &topics {
                let expected: Vec<u64> = patterns.iter().enumerate()
                    .filter(|(id, p)| !removed[*id] && topic_pattern_matches(p, topic))
                    .map(|(id, _)| id as u64).collect();
                prop_assert_eq!(matches(&index, topic), expected, "topic {:?}", topic);
            }
        }
    }
}
