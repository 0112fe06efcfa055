//! `ipc_size_of` against the sizes 0.8.0 recorded for every event and message.
#![cfg(feature = "runtime")]

mod common;

use std::sync::Arc;

use astrid_events::{AstridEvent, EventMetadata, IpcMessage, ipc_size_of};

#[test]
fn ipc_size_of_matches_every_recorded_event() {
    let mut checked = 0;
    for line in common::load_jsonl("events.jsonl") {
        // Values that do not survive a round trip (NaN, RawJson(null)) cannot
        // be rebuilt from their wire form.
        let (Some(wire), Some(expected), Some(true)) = (
            line["wire"].as_str(),
            line["ipc_size_of"].as_u64(),
            line["roundtrip"].as_bool(),
        ) else {
            continue;
        };
        let event: AstridEvent = serde_json::from_str(wire).expect("golden event decodes");
        assert_eq!(
            ipc_size_of(&Arc::new(event)) as u64,
            expected,
            "{}",
            line["name"]
        );
        checked += 1;
    }
    // Lines without a wire form (NaN, non-object RawJson) have nothing to decode.
    assert!(checked >= 120, "only {checked} events checked");
}

#[test]
fn ipc_size_of_matches_every_recorded_message() {
    let lines = common::load_jsonl("messages.jsonl");
    let mut checked = 0;
    for line in &lines {
        let (Some(wire), Some(true)) = (line["wire"].as_str(), line["roundtrip"].as_bool()) else {
            continue;
        };
        let message: IpcMessage = serde_json::from_str(wire).expect("golden message decodes");
        let event = Arc::new(AstridEvent::Ipc {
            metadata: EventMetadata::new("t"),
            message,
        });
        assert_eq!(
            ipc_size_of(&event) as u64,
            line["ipc_size_of"].as_u64().expect("size recorded"),
            "{}",
            line["name"]
        );
        checked += 1;
    }
    assert!(
        checked >= 12,
        "only {checked} of {} messages checked",
        lines.len()
    );
}
