//! Topic matching (placeholder).

/// Compiled pattern.
#[derive(Debug, Clone)]
pub struct TopicMatcher;

/// Whether `topic` matches `pattern`.
pub fn topic_pattern_matches(pattern: &str, topic: &str) -> bool {
    pattern == topic
}
