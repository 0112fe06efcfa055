//! Topic matching: what a subscription pattern means.
//!
//! Topics and patterns are dot-separated strings. Matching follows the
//! published 0.8.0 semantics exactly (the golden vectors in
//! `tests/golden_topics.rs` pin them):
//!
//! - Both strings are split on `.`; empty segments count (`""` is one empty
//!   segment, `"a."` is two).
//! - A topic with more than [`TopicMatcher::MAX_TOPIC_DEPTH`] segments never
//!   matches anything.
//! - A pattern of two or more segments whose last segment is `*` (a *trailing
//!   wildcard*, `a.b.*`) matches a topic that has strictly more segments than
//!   the part before the `.*`, each of those leading segments matching.
//! - Otherwise segment counts must be equal.
//! - A pattern segment matches a topic segment when it is `*` (exactly one
//!   segment, possibly empty) or byte-equal to it. `*` is special only as a
//!   whole segment: `a*` and `**` are literals.
//!
//! The same rules drive the topic index (`index.rs`), which answers "which
//! patterns match this topic" without scanning them all.

use crate::schema::event::AstridEvent;

/// The single-segment / trailing wildcard segment.
pub(crate) const WILDCARD: &str = "*";

/// Topics with more segments than this never match any pattern.
pub(crate) const MAX_TOPIC_DEPTH: usize = 20;

/// Whether `topic` is within the matchable depth. Does not allocate.
#[inline]
pub(crate) fn within_depth(topic: &str) -> bool {
    // Segments = separators + 1; stop counting as soon as we are over.
    let mut segments = 1usize;
    for b in topic.bytes() {
        if b == b'.' {
            segments += 1;
            if segments > MAX_TOPIC_DEPTH {
                return false;
            }
        }
    }
    true
}

#[inline]
fn segment_matches(pattern_segment: &str, topic_segment: &str) -> bool {
    pattern_segment == WILDCARD || pattern_segment == topic_segment
}

/// Whether `topic` matches `pattern` (see the module docs for the rules).
///
/// Never allocates and never panics, whatever the input.
///
/// ```
/// use astrid_events::topic_pattern_matches;
///
/// assert!(topic_pattern_matches("tool.v1.execute.*.result", "tool.v1.execute.read.result"));
/// assert!(topic_pattern_matches("llm.v1.stream.*", "llm.v1.stream.req-1.delta"));
/// assert!(!topic_pattern_matches("llm.v1.stream.*", "llm.v1.stream"));
/// assert!(!topic_pattern_matches("a.b", "a.b.c"));
/// ```
#[must_use]
pub fn topic_pattern_matches(pattern: &str, topic: &str) -> bool {
    if !within_depth(topic) {
        return false;
    }
    let trailing = pattern.len() >= 2 && pattern.ends_with(".*");
    let prefix = if trailing {
        &pattern[..pattern.len() - 2]
    } else {
        pattern
    };
    let mut pattern_segments = prefix.split('.');
    let mut topic_segments = topic.split('.');
    loop {
        match (pattern_segments.next(), topic_segments.next()) {
            (Some(p), Some(t)) => {
                if !segment_matches(p, t) {
                    return false;
                }
            }
            // Pattern prefix consumed: exact needs the topic consumed too,
            // trailing needs at least one topic segment left.
            (None, rest) => return rest.is_some() == trailing,
            (Some(_), None) => return false,
        }
    }
}

/// A compiled topic pattern.
///
/// Holds the pattern and answers [`matches_topic`](Self::matches_topic) with
/// the same semantics as [`topic_pattern_matches`], so the broadcast, topic
/// and routed paths agree on what each pattern means.
/// [`matches`](Self::matches) asks the same of an event: only IPC events have
/// a topic, so any other event never matches.
///
/// ```
/// use astrid_events::{AstridEvent, EventMetadata, TopicMatcher};
/// use astrid_events::ipc::{IpcMessage, IpcPayload};
/// use uuid::Uuid;
///
/// let m = TopicMatcher::new("capsule.*.v1.*");
/// assert!(m.matches_topic("capsule.7.v1.ready"));
/// assert!(!m.matches_topic("capsule.7.v2.ready"));
/// assert_eq!(m.pattern(), "capsule.*.v1.*");
///
/// let ipc = AstridEvent::Ipc {
///     metadata: EventMetadata::new("docs"),
///     message: IpcMessage::new("capsule.7.v1.ready", IpcPayload::Connect, Uuid::nil()),
/// };
/// assert!(m.matches(&ipc));
/// let lifecycle = AstridEvent::ConfigReloaded { metadata: EventMetadata::new("docs") };
/// assert!(!m.matches(&lifecycle));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicMatcher {
    pattern: String,
}

impl TopicMatcher {
    /// Topics deeper than this many segments never match.
    pub const MAX_TOPIC_DEPTH: usize = MAX_TOPIC_DEPTH;

    /// Compiles `pattern`. Any string is accepted; use the checked
    /// subscription paths (`validate` module) to reject malformed patterns.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
        }
    }

    /// The pattern this matcher was built from.
    #[must_use]
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether `event` is an IPC event whose topic matches this pattern.
    /// Events other than [`AstridEvent::Ipc`] carry no topic and never match.
    #[must_use]
    pub fn matches(&self, event: &AstridEvent) -> bool {
        match event {
            AstridEvent::Ipc { message, .. } => self.matches_topic(&message.topic),
            _ => false,
        }
    }

    /// Whether `topic` matches this pattern.
    #[must_use]
    pub fn matches_topic(&self, topic: &str) -> bool {
        topic_pattern_matches(&self.pattern, topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_limit_is_twenty_segments() {
        let twenty = (0..20)
            .map(|i| format!("s{i}"))
            .collect::<Vec<_>>()
            .join(".");
        let twenty_one = format!("{twenty}.x");
        assert!(topic_pattern_matches(&twenty, &twenty));
        assert!(!topic_pattern_matches(&twenty_one, &twenty_one));
        assert!(within_depth(&twenty));
        assert!(!within_depth(&twenty_one));
    }

    #[test]
    fn lone_star_is_single_segment_not_trailing() {
        assert!(topic_pattern_matches("*", ""));
        assert!(topic_pattern_matches("*", "a"));
        assert!(!topic_pattern_matches("*", "a.b"));
    }

    #[test]
    fn partial_wildcards_are_literals() {
        assert!(topic_pattern_matches("a*", "a*"));
        assert!(!topic_pattern_matches("a*", "ab"));
        assert!(topic_pattern_matches("a.**", "a.**"));
        assert!(!topic_pattern_matches("a.**", "a.b"));
    }
}
