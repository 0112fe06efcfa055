//! Builders for test events.

use astrid_events::{AstridEvent, EventMetadata, IpcMessage, IpcPayload};

/// An IPC event on `topic` for `principal` carrying `bytes` bytes of text.
pub fn ipc(topic: &str, principal: Option<&str>, bytes: usize) -> AstridEvent {
    let payload = IpcPayload::Custom {
        data: serde_json::Value::String("x".repeat(bytes)),
    };
    let mut message = IpcMessage::new(topic, payload, uuid::Uuid::nil());
    message.principal = principal.map(str::to_owned);
    AstridEvent::Ipc {
        metadata: EventMetadata::new("test"),
        message,
    }
}

/// A non-IPC event.
pub fn lifecycle() -> AstridEvent {
    AstridEvent::RuntimeStarted {
        metadata: EventMetadata::new("test"),
        version: "test".into(),
    }
}

/// The sequence number and principal of an IPC event.
pub fn seq_principal(event: &AstridEvent) -> (u64, Option<String>) {
    match event {
        AstridEvent::Ipc { message, .. } => (message.seq, message.principal.clone()),
        other => panic!("expected an IPC event, got {}", other.event_type()),
    }
}

/// What a routed subscription charges for `event`: `(first, next)`, the
/// charge of the first event of its principal (its slot included) and of
/// each further one, measured on a fresh bus.
#[cfg(feature = "runtime")]
pub fn route_charges(event: &AstridEvent) -> (usize, usize) {
    let AstridEvent::Ipc { message, .. } = event else {
        panic!("routes hold IPC events only")
    };
    let bus = astrid_events::EventBus::new();
    let rx =
        bus.subscribe_topic_routed(uuid::Uuid::nil(), message.topic.as_str(), "probe", "probe");
    bus.publish(event.clone());
    let first = rx.total_bytes();
    bus.publish(event.clone());
    (first, rx.total_bytes() - first)
}

/// The seqs of everything a routed receiver holds now, taken and sorted
/// (DRR interleaves principals, so only each principal's own order is
/// fixed).
#[cfg(feature = "runtime")]
pub fn drain_seqs(rx: &mut astrid_events::RoutedEventReceiver) -> Vec<u64> {
    let mut seqs = Vec::new();
    while let Some(e) = rx.try_recv_one() {
        seqs.push(seq_principal(&e).0);
    }
    seqs.sort_unstable();
    seqs
}
