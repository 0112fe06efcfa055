//! Differential fuzzing of topic matching.
//!
//! Three implementations must agree with a straightforward reference written
//! here from the rules documented in `topic.rs`:
//!
//! 1. `topic_pattern_matches` (the allocation-free matcher);
//! 2. `TopicMatcher::matches_topic`;
//! 3. the topic index (a trie, `pub(crate)`), reached through the public
//!    bus: every fuzzed pattern gets a topic receiver and a routed receiver,
//!    some are dropped again (exercising trie pruning), then one IPC event is
//!    published on the fuzzed topic and exactly the receivers whose pattern
//!    matches must hold it.
//!
//! The validators run on every string too: they must never panic.
#![no_main]

use arbitrary::Arbitrary;
use astrid_events::validate::{validate_pattern, validate_principal, validate_topic};
use astrid_events::{
    AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload, TopicMatcher,
    topic_pattern_matches,
};
use libfuzzer_sys::fuzz_target;

/// A string built from a tiny alphabet, so that patterns and topics collide
/// often, or raw fuzzed text for everything else.
#[derive(Arbitrary, Debug)]
enum Text {
    Small(Vec<Tok>),
    Raw(String),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Tok {
    A,
    B,
    Star,
    Dot,
    /// Twenty dots: gets near the depth limit without a long input.
    Deep,
    Nonascii,
}

impl Text {
    fn render(&self) -> String {
        match self {
            Self::Raw(s) => s.clone(),
            Self::Small(toks) => {
                let mut s = String::new();
                for t in toks {
                    match t {
                        Tok::A => s.push('a'),
                        Tok::B => s.push('b'),
                        Tok::Star => s.push('*'),
                        Tok::Dot => s.push('.'),
                        Tok::Deep => s.push_str(&".".repeat(19)),
                        Tok::Nonascii => s.push('é'),
                    }
                }
                s
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    topic: Text,
    /// Each pattern, and whether its receivers are dropped before the publish.
    patterns: Vec<(Text, bool)>,
}

/// Topics with more segments than this never match (`topic.rs`).
const MAX_TOPIC_DEPTH: usize = 20;

/// The documented rules, written the obvious way.
fn reference(pattern: &str, topic: &str) -> bool {
    let topic: Vec<&str> = topic.split('.').collect();
    if topic.len() > MAX_TOPIC_DEPTH {
        return false;
    }
    let mut pattern: Vec<&str> = pattern.split('.').collect();
    let trailing = pattern.len() >= 2 && pattern.last() == Some(&"*");
    if trailing {
        pattern.pop();
        if topic.len() <= pattern.len() {
            return false;
        }
    } else if topic.len() != pattern.len() {
        return false;
    }
    pattern.iter().zip(&topic).all(|(p, t)| *p == "*" || p == t)
}

fuzz_target!(|input: Input| {
    let topic = input.topic.render();
    let _ = validate_topic(&topic);
    let _ = validate_principal(&topic);
    let patterns: Vec<(String, bool)> = input
        .patterns
        .iter()
        .take(16)
        .map(|(p, dropped)| (p.render(), *dropped))
        .collect();

    for (pattern, _) in &patterns {
        let _ = validate_pattern(pattern);
        let expected = reference(pattern, &topic);
        assert_eq!(
            topic_pattern_matches(pattern, &topic),
            expected,
            "topic_pattern_matches({pattern:?}, {topic:?})"
        );
        assert_eq!(
            TopicMatcher::new(pattern.as_str()).matches_topic(&topic),
            expected,
            "TopicMatcher({pattern:?}).matches_topic({topic:?})"
        );
    }
    if patterns.is_empty() {
        return;
    }

    // The index, through the bus.
    let bus = EventBus::with_capacity(2);
    let mut live = Vec::new();
    let mut dropped = Vec::new();
    for (pattern, drop_it) in &patterns {
        let topic_rx = bus.subscribe_topic(pattern.as_str());
        let routed_rx =
            bus.subscribe_topic_routed(uuid::Uuid::nil(), pattern.as_str(), "fuzz", "fuzz");
        if *drop_it {
            dropped.push((topic_rx, routed_rx));
        } else {
            live.push((pattern, topic_rx, routed_rx));
        }
    }
    drop(dropped);
    assert_eq!(bus.routed_subscription_count(), live.len());
    let payload = IpcPayload::Custom {
        data: serde_json::Value::Null,
    };
    let message = IpcMessage::new(topic.as_str(), payload, uuid::Uuid::nil());
    let reached = bus.publish(AstridEvent::Ipc {
        metadata: EventMetadata::new("fuzz"),
        message,
    });
    let mut expected_reached = 0;
    for (pattern, topic_rx, routed_rx) in &mut live {
        let expected = reference(pattern, &topic);
        let got_topic = topic_rx.try_recv().is_some();
        let got_routed = routed_rx.try_recv_one().is_some();
        assert_eq!(got_topic, expected, "topic index: {pattern:?} vs {topic:?}");
        assert_eq!(
            got_routed, expected,
            "route index: {pattern:?} vs {topic:?}"
        );
        assert!(
            topic_rx.try_recv().is_none(),
            "delivered twice: {pattern:?}"
        );
        assert!(
            routed_rx.try_recv_one().is_none(),
            "delivered twice: {pattern:?}"
        );
        expected_reached += 2 * usize::from(expected);
    }
    assert_eq!(reached, expected_reached, "publish's reach count");
});
