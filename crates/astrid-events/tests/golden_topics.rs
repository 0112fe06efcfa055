//! Topic matching against the 0.8.0 golden vectors (`topics.jsonl`).

mod common;

use astrid_events::ipc::{IpcMessage, IpcPayload};
use astrid_events::{AstridEvent, EventMetadata, TopicMatcher, topic_pattern_matches};
use uuid::Uuid;

#[test]
fn every_recorded_pair_matches_as_0_8_0_did() {
    let lines = common::load_jsonl("topics.jsonl");
    assert_eq!(lines.len(), 442, "topics.jsonl should hold 442 pairs");
    let mut mismatches = Vec::new();
    for line in &lines {
        let pattern = line["pattern"].as_str().expect("pattern is a string");
        let topic = line["topic"].as_str().expect("topic is a string");
        let expected = line["matches"].as_bool().expect("matches is a bool");
        let got = topic_pattern_matches(pattern, topic);
        let matcher = TopicMatcher::new(pattern);
        let event = AstridEvent::Ipc {
            metadata: EventMetadata::new("golden"),
            message: IpcMessage::new(topic, IpcPayload::Connect, Uuid::nil()),
        };
        if got != expected
            || matcher.matches_topic(topic) != expected
            || matcher.matches(&event) != expected
        {
            mismatches.push(format!(
                "{pattern:?} vs {topic:?}: expected {expected}, got {got}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn max_topic_depth_is_twenty() {
    assert_eq!(TopicMatcher::MAX_TOPIC_DEPTH, 20);
}
