//! `IpcPayload::tag` names the wire tag of every recorded 0.8.0 payload.

mod common;

use astrid_events::IpcPayload;
use astrid_events::ipc::IpcPayloadExt;

#[test]
fn tag_matches_the_wire_tag_of_every_golden_payload() {
    let mut checked = 0;
    for line in common::load_jsonl("payloads.jsonl") {
        let Some(wire) = line["wire"].as_str() else {
            continue;
        };
        let Ok(payload) = serde_json::from_str::<IpcPayload>(wire) else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(wire).expect("wire is JSON");
        // `RawJson` whose content has its own `type` reads back as another variant.
        if value["type"] == payload.tag() {
            checked += 1;
        } else {
            assert_eq!(
                line["name"], "RawJson/object_with_type_key",
                "{}",
                line["name"]
            );
        }
    }
    assert!(checked >= 38, "only {checked} payloads checked");
}
