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
