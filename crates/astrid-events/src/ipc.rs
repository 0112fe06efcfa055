//! IPC messages and payload schemas (placeholder: being filled in).
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A cross-boundary message on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpcMessage {
    /// Dot-separated topic.
    pub topic: String,
    /// Payload.
    pub payload: IpcPayload,
    /// Optional signature bytes.
    #[serde(default)]
    pub signature: Option<Vec<u8>>,
    /// Source capsule id.
    pub source_id: Uuid,
    /// Creation time.
    #[serde(default = "Utc::now")]
    pub timestamp: DateTime<Utc>,
    /// Bus-stamped sequence number.
    #[serde(default)]
    pub seq: u64,
    /// Publishing principal (`None` = system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

impl IpcMessage {
    /// New message.
    pub fn new(topic: impl Into<String>, payload: IpcPayload, source_id: Uuid) -> Self {
        Self {
            topic: topic.into(),
            payload,
            signature: None,
            source_id,
            timestamp: Utc::now(),
            seq: 0,
            principal: None,
        }
    }
    /// Attach a principal.
    #[must_use]
    pub fn with_principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }
}

/// Payload schemas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IpcPayload {
    /// Free-form data.
    Custom {
        /// Data.
        data: serde_json::Value,
    },
    /// Raw JSON object.
    RawJson(serde_json::Value),
    /// Unknown tag.
    #[serde(other)]
    Unknown,
}

impl IpcPayload {
    /// Bytes handed to a guest.
    pub fn to_guest_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            Self::Custom { data } | Self::RawJson(data) => serde_json::to_vec(data),
            other => serde_json::to_vec(other),
        }
    }
}
