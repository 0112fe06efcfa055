//! Helpers on [`IpcPayload`] that 0.8.0 did not have, as an extension trait.
//!
//! They are a trait rather than inherent methods so that they work on either
//! payload type the crate can be built with: its own ([`crate::ipc`]) or,
//! with the `upstream-types` feature, `astrid_types::ipc::IpcPayload`, on
//! which this crate cannot define inherent methods. Import the trait (it is in
//! the [`prelude`](crate::prelude)) to call them.
use crate::ipc::IpcPayload;

/// Payload helpers used by the bus and by tooling.
///
/// ```
/// use astrid_events::ipc::{IpcPayload, IpcPayloadExt};
///
/// let payload = IpcPayload::Custom { data: serde_json::json!({"k": 1}) };
/// assert_eq!(payload.tag(), "custom");
/// assert_eq!(payload.guest_len(), payload.to_guest_bytes().unwrap().len());
/// ```
pub trait IpcPayloadExt {
    /// The payload's `type` tag as written on the wire (`"unknown"` for
    /// [`IpcPayload::Unknown`]).
    fn tag(&self) -> &'static str;

    /// The length of [`IpcPayload::to_guest_bytes`], computed without
    /// building the bytes (0 if they cannot be built).
    fn guest_len(&self) -> usize;
}

impl IpcPayloadExt for IpcPayload {
    fn tag(&self) -> &'static str {
        match self {
            Self::RawJson(_) => "raw_json",
            Self::UserInput { .. } => "user_input",
            Self::AgentResponse { .. } => "agent_response",
            Self::ApprovalRequired { .. } => "approval_required",
            Self::ApprovalResponse { .. } => "approval_response",
            Self::OnboardingRequired { .. } => "onboarding_required",
            Self::LlmRequest { .. } => "llm_request",
            Self::LlmStreamEvent { .. } => "llm_stream_event",
            Self::LlmResponse { .. } => "llm_response",
            Self::ToolExecuteRequest { .. } => "tool_execute_request",
            Self::ToolExecuteResult { .. } => "tool_execute_result",
            Self::ToolCancelRequest { .. } => "tool_cancel_request",
            Self::SelectionRequired { .. } => "selection_required",
            Self::ElicitRequest { .. } => "elicit_request",
            Self::ElicitResponse { .. } => "elicit_response",
            Self::Connect => "connect",
            Self::Disconnect { .. } => "disconnect",
            Self::Custom { .. } => "custom",
            Self::Unknown => "unknown",
        }
    }

    fn guest_len(&self) -> usize {
        let mut counter = ByteCounter(0);
        let written = match self {
            Self::Custom { data } | Self::RawJson(data) => {
                serde_json::to_writer(&mut counter, data)
            }
            other => serde_json::to_writer(&mut counter, other),
        };
        written.map_or(0, |()| counter.0)
    }
}

/// A writer that only counts bytes.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
