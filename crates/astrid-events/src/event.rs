//! The event taxonomy: every event the runtime publishes.
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use chrono::{DateTime, Utc};

use crate::ipc::IpcMessage;

/// Metadata attached to every event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Unique id of this event.
    pub event_id: Uuid,
    /// When the event was created.
    pub timestamp: DateTime<Utc>,
    /// Correlation id linking related events.
    pub correlation_id: Option<Uuid>,
    /// Session the event belongs to.
    pub session_id: Option<Uuid>,
    /// User the event belongs to.
    pub user_id: Option<Uuid>,
    /// Component that produced the event.
    pub source: String,
}

impl EventMetadata {
    /// New metadata with a fresh id and the current time.
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            event_id: Uuid::new_v4(),
            timestamp: Utc::now(),
            correlation_id: None,
            session_id: None,
            user_id: None,
            source: source.into(),
        }
    }
}

/// All events that can occur in the runtime (placeholder: being filled in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AstridEvent {
    /// The runtime started.
    RuntimeStarted {
        /// Event metadata.
        metadata: EventMetadata,
        /// Runtime version.
        version: String,
    },
    /// An IPC message.
    Ipc {
        /// Event metadata.
        metadata: EventMetadata,
        /// The message.
        message: IpcMessage,
    },
    /// A custom event.
    Custom {
        /// Event metadata.
        metadata: EventMetadata,
        /// Event name.
        name: String,
        /// Event data.
        data: serde_json::Value,
    },
}

impl AstridEvent {
    /// Metadata of the event.
    pub fn metadata(&self) -> &EventMetadata {
        match self {
            Self::RuntimeStarted { metadata, .. }
            | Self::Ipc { metadata, .. }
            | Self::Custom { metadata, .. } => metadata,
        }
    }
    /// The event's type string.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::RuntimeStarted { .. } => "astrid.v1.lifecycle.runtime_started",
            Self::Ipc { .. } => "ipc",
            Self::Custom { .. } => "custom",
        }
    }
}
