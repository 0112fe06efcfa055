//! Type identity with the Astrid runtime (`upstream-types` feature).
//!
//! With the feature, `ipc`, `llm` and `kernel_api` must be the runtime's own
//! types (astrid-types / astrid-core 0.8.0), not look-alikes, and the bus must
//! carry them. `scripts/runtime-compat` checks the same thing on the real
//! runtime crates. Without the feature this file is empty.
#![cfg(all(feature = "upstream-types", feature = "runtime"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::any::type_name;
use std::time::Duration;

use astrid_events::ipc::{IpcMessage, IpcPayload, IpcPayloadExt};
use astrid_events::{AstridEvent, EventBus, EventMetadata};

#[test]
fn schema_modules_are_the_runtime_crates_own() {
    assert!(type_name::<IpcMessage>().starts_with("astrid_types::ipc::"));
    assert!(type_name::<IpcPayload>().starts_with("astrid_types::ipc::"));
    assert!(type_name::<astrid_events::llm::Message>().starts_with("astrid_types::llm::"));
    assert!(
        type_name::<astrid_events::kernel_api::KernelRequest>()
            .starts_with("astrid_core::kernel_api::")
    );
}

#[tokio::test]
async fn the_bus_routes_runtime_messages_and_stamps_their_seq() {
    let bus = EventBus::new();
    let capsule = uuid::Uuid::new_v4();
    let mut rx = bus.subscribe_topic_routed(capsule, "tool.v1.*", "fs", "fs");
    let payload = IpcPayload::Custom {
        data: serde_json::json!({"path": "/tmp/x"}),
    };
    assert_eq!(payload.tag(), "custom");
    let message = IpcMessage::new("tool.v1.read", payload, capsule).with_principal("alice");
    bus.publish(AstridEvent::Ipc {
        metadata: EventMetadata::new("kernel"),
        message,
    });
    let event = rx
        .recv(Some(Duration::from_secs(5)))
        .await
        .expect("delivered");
    let AstridEvent::Ipc { message, .. } = &*event else {
        panic!("not IPC")
    };
    assert_eq!(message.seq, 1);
    assert_eq!(message.principal.as_deref(), Some("alice"));
}
