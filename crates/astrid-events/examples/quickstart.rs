//! Publishes a few events on a bus and receives them: the smallest tour.
//!
//! `cargo run --release --example quickstart`

use std::time::Duration;

use astrid_events::prelude::*;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bus = EventBus::new();
    let mut all = bus.subscribe_as("quickstart-all");
    let mut tools = bus.subscribe_topic("tool.v1.*");
    let capsule = uuid::Uuid::new_v4();
    let mut routed = bus.subscribe_topic_routed(capsule, "tool.v1.*", "demo-capsule", "quickstart");

    bus.publish(AstridEvent::RuntimeStarted {
        metadata: EventMetadata::new("quickstart"),
        version: env!("CARGO_PKG_VERSION").to_string(),
    });
    for (i, principal) in ["alice", "bob", "agent.scout"].iter().enumerate() {
        let payload = IpcPayload::Custom {
            data: serde_json::json!({ "call": i }),
        };
        let message =
            IpcMessage::new("tool.v1.execute", payload, capsule).with_principal(*principal);
        bus.publish(AstridEvent::Ipc {
            metadata: EventMetadata::new("quickstart"),
            message,
        });
    }

    let first = all.recv().await.expect("bus alive");
    println!("all-events receiver got: {}", first.event_type());
    while let Some(event) = tools.try_recv() {
        if let AstridEvent::Ipc { message, .. } = event.as_ref() {
            println!(
                "topic receiver got seq {} on {} from {:?}",
                message.seq, message.topic, message.principal
            );
        }
    }
    while let Some(event) = routed.recv(Some(Duration::from_millis(50))).await {
        if let AstridEvent::Ipc { message, .. } = event.as_ref() {
            println!(
                "routed receiver got seq {} for principal {:?}",
                message.seq, message.principal
            );
        }
    }
    println!(
        "lost without record: 0 (routed lag {})",
        routed.drain_lagged()
    );
}
