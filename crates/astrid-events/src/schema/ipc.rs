//! IPC envelope and payload schemas: [`IpcMessage`], [`IpcPayload`] and the
//! onboarding / selection types the payloads carry.
//!
//! Everything here is wire-compatible with `astrid-events` 0.8.0 (module
//! `astrid_events::ipc`); the golden vectors in
//! `tests/golden/` are the reference. The LLM types that
//! payloads embed live in [`crate::llm`].
//!
//! Wire notes worth keeping in mind when touching these types:
//!
//! - [`IpcPayload`] is internally tagged by `"type"` with snake_case names.
//!   Plain serde maps any unrecognised string tag to [`IpcPayload::Unknown`]
//!   (dropping the other fields), whereas [`IpcPayload::from_json_value`]
//!   keeps such input as [`IpcPayload::Custom`].
//! - [`IpcPayload::RawJson`] can only be serialized when it holds an object
//!   (or `null`); any other JSON kind is a serialization error, even though
//!   [`IpcPayload::to_guest_bytes`] still succeeds for it.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::llm::{LlmResponse, LlmToolDefinition, Message, StreamEvent, ToolCallResult};
pub use crate::schema::payload_ext::IpcPayloadExt;

/// 0.8.0 exports the limiter from this module too; the runtime imports it
/// from here.
#[cfg(feature = "runtime")]
pub use crate::rate_limiter::IpcRateLimiter;

/// A message published on the bus by a capsule, frontend or the kernel.
///
/// Field order is the wire order. `signature` is always written (`null` when
/// absent); `principal` and `request_owner` are left out when absent, so a
/// message without a request owner has 0.8.0's exact bytes.
///
/// `Debug` shows the payload's tag, never its content, and the signature's
/// length, never its bytes: messages end up in logs.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct IpcMessage {
    /// Dot-separated topic, e.g. `astrid.v1.user.input`.
    pub topic: String,
    /// The typed payload.
    pub payload: IpcPayload,
    /// Optional signature bytes (a JSON array of numbers on the wire).
    #[serde(default)]
    pub signature: Option<Vec<u8>>,
    /// Id of the publishing capsule or agent.
    pub source_id: Uuid,
    /// When the message was created; the current time if missing on input.
    #[serde(default = "Utc::now", with = "crate::timestamp")]
    pub timestamp: DateTime<Utc>,
    /// Sequence number stamped by the bus at publish time; 0 if missing.
    #[serde(default)]
    pub seq: u64,
    /// Principal the message acts for; `None` means a system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Who, within the principal, owns the request this message belongs to
    /// (for example one session of a user with several open): a route
    /// scoped with [`Scope::RequestOwner`](crate::Scope) admits it only if
    /// both the principal and this match. Not in 0.8.0: left out of the JSON
    /// when `None`, and ignored by readers that do not know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_owner: Option<String>,
}

impl IpcMessage {
    /// A new unsigned message stamped with the current time, `seq` 0 and no
    /// principal.
    #[must_use]
    pub fn new(topic: impl Into<String>, payload: IpcPayload, source_id: Uuid) -> Self {
        Self {
            topic: topic.into(),
            payload,
            signature: None,
            source_id,
            timestamp: Utc::now(),
            seq: 0,
            principal: None,
            request_owner: None,
        }
    }

    /// Returns the message with `signature` set.
    #[must_use]
    pub fn with_signature(mut self, signature: Vec<u8>) -> Self {
        self.signature = Some(signature);
        self
    }

    /// Returns the message with `principal` set.
    #[must_use]
    pub fn with_principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    /// Returns the message with `request_owner` set: the party, within the
    /// principal, that owns the request (a session id, say). Replies carry
    /// their request's owner so that only that party's routes
    /// ([`Scope::RequestOwner`](crate::Scope)) get them.
    ///
    /// ```
    /// use astrid_events::{IpcMessage, IpcPayload};
    ///
    /// let reply = IpcPayload::ApprovalResponse { request_id: "r1".into(), decision: "approve".into(), reason: None };
    /// let message = IpcMessage::new("approval.v1.response", reply, uuid::Uuid::nil())
    ///     .with_principal("alice")
    ///     .with_request_owner("session-1");
    /// let json = serde_json::to_string(&message).unwrap();
    /// assert!(json.ends_with(r#""principal":"alice","request_owner":"session-1"}"#));
    /// ```
    #[must_use]
    pub fn with_request_owner(mut self, owner: impl Into<String>) -> Self {
        self.request_owner = Some(owner.into());
        self
    }
}

/// `session_id` used when a payload omits it.
fn default_session_id() -> String {
    String::from("default")
}

/// The payload schemas understood on the bus.
///
/// Internally tagged by `"type"` (snake_case variant name). Unknown string
/// tags deserialize to [`IpcPayload::Unknown`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IpcPayload {
    /// Arbitrary JSON; an object's keys are written next to the tag.
    RawJson(Value),
    /// Text typed by a user into a frontend.
    UserInput {
        /// The text.
        text: String,
        /// Conversation id; `"default"` when missing.
        #[serde(default = "default_session_id")]
        session_id: String,
        /// Frontend-specific context; omitted when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<Value>,
    },
    /// Agent output for a frontend, streamed or final.
    AgentResponse {
        /// The text.
        text: String,
        /// Whether this is the last chunk of the answer.
        is_final: bool,
        /// Conversation id; `"default"` when missing.
        #[serde(default = "default_session_id")]
        session_id: String,
    },
    /// A capsule asks the user to approve an action.
    ApprovalRequired {
        /// Id to quote in the matching [`IpcPayload::ApprovalResponse`].
        request_id: String,
        /// What would be done.
        action: String,
        /// What it would be done to.
        resource: String,
        /// Why the capsule wants to do it.
        reason: String,
    },
    /// The user's answer to an [`IpcPayload::ApprovalRequired`].
    ApprovalResponse {
        /// Id of the request being answered.
        request_id: String,
        /// The decision, e.g. `approve` or `deny`.
        decision: String,
        /// Optional explanation; omitted when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A capsule needs configuration values before it can run.
    OnboardingRequired {
        /// The capsule asking.
        capsule_id: String,
        /// The values it needs.
        fields: Vec<OnboardingField>,
    },
    /// A generation request for an LLM provider capsule.
    LlmRequest {
        /// Request id, echoed by stream events and the response.
        request_id: Uuid,
        /// Model name.
        model: String,
        /// Conversation so far.
        messages: Vec<Message>,
        /// Tools the model may call.
        tools: Vec<LlmToolDefinition>,
        /// System prompt.
        system: String,
    },
    /// One streaming event of an LLM answer.
    LlmStreamEvent {
        /// Id of the originating request.
        request_id: Uuid,
        /// The event.
        event: StreamEvent,
    },
    /// A complete LLM answer.
    LlmResponse {
        /// Id of the originating request.
        request_id: Uuid,
        /// The answer.
        response: LlmResponse,
    },
    /// Asks the tool router to run a tool.
    ToolExecuteRequest {
        /// Call id.
        call_id: String,
        /// Tool to run.
        tool_name: String,
        /// Arguments (required on input; `null` allowed).
        arguments: Value,
    },
    /// The tool router reports a tool's outcome.
    ToolExecuteResult {
        /// Call id.
        call_id: String,
        /// The outcome.
        result: ToolCallResult,
    },
    /// Asks the tool router to cancel running calls.
    ToolCancelRequest {
        /// Calls to cancel.
        call_ids: Vec<String>,
    },
    /// Asks a frontend to let the user pick one option.
    SelectionRequired {
        /// Request id.
        request_id: String,
        /// Picker title.
        title: String,
        /// The choices.
        options: Vec<SelectionOption>,
        /// Topic on which the choice is to be published.
        callback_topic: String,
    },
    /// Asks a frontend for the value of a single field.
    ElicitRequest {
        /// Request id.
        request_id: Uuid,
        /// The capsule asking.
        capsule_id: String,
        /// The field wanted.
        field: OnboardingField,
    },
    /// The answer to an [`IpcPayload::ElicitRequest`].
    ElicitResponse {
        /// Id of the request being answered.
        request_id: Uuid,
        /// Single value; omitted when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
        /// List value (for array fields); omitted when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        values: Option<Vec<String>>,
    },
    /// A frontend connected.
    Connect,
    /// A frontend disconnected.
    Disconnect {
        /// Optional reason; omitted when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Application-defined data under a `data` key.
    Custom {
        /// The data (required on input; `null` allowed).
        data: Value,
    },
    /// A payload whose tag this version does not know.
    #[serde(other)]
    Unknown,
}

/// Every tag [`IpcPayload::from_json_value`] hands to serde; `unknown` is
/// deliberately absent.
const KNOWN_TAGS: [&str; 18] = [
    "raw_json",
    "user_input",
    "agent_response",
    "approval_required",
    "approval_response",
    "onboarding_required",
    "llm_request",
    "llm_stream_event",
    "llm_response",
    "tool_execute_request",
    "tool_execute_result",
    "tool_cancel_request",
    "selection_required",
    "elicit_request",
    "elicit_response",
    "connect",
    "disconnect",
    "custom",
];

impl IpcPayload {
    /// Whether `tag` is the `"type"` value of a concrete variant.
    ///
    /// `"unknown"` is not a known tag: it names the fallback, not a schema.
    #[must_use]
    pub fn is_known_tag(tag: &str) -> bool {
        KNOWN_TAGS.contains(&tag)
    }

    /// Lenient conversion from arbitrary JSON.
    ///
    /// Input whose `"type"` is a known tag and which matches that schema
    /// becomes the typed variant. Anything else (not an object, no tag, an
    /// unknown or non-string tag, or a schema mismatch) is kept whole as
    /// [`IpcPayload::Custom`] instead of being lost as
    /// [`IpcPayload::Unknown`].
    #[must_use]
    pub fn from_json_value(value: Value) -> Self {
        let known = value
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(Self::is_known_tag);
        if known && let Ok(payload) = serde_json::from_value::<Self>(value.clone()) {
            return payload;
        }
        Self::Custom { data: value }
    }

    /// The bytes delivered to a WASM guest.
    ///
    /// For [`IpcPayload::Custom`] and [`IpcPayload::RawJson`] that is the
    /// inner JSON alone (of any kind); for every other variant it is the
    /// payload's own JSON, tag included.
    ///
    /// # Errors
    /// Returns the `serde_json` error if serialization fails.
    pub fn to_guest_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            Self::Custom { data } | Self::RawJson(data) => serde_json::to_vec(data),
            other => serde_json::to_vec(other),
        }
    }
}

/// A value a capsule needs from the user during onboarding or elicitation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnboardingField {
    /// Configuration key the value is stored under.
    pub key: String,
    /// Prompt shown to the user.
    pub prompt: String,
    /// Longer help text; omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Kind of input expected.
    pub field_type: OnboardingFieldType,
    /// Pre-filled value; omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Placeholder hint; omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
}

/// Kind of input an [`OnboardingField`] expects (externally tagged,
/// PascalCase: `"Text"`, `{"Enum": [...]}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OnboardingFieldType {
    /// Free text.
    Text,
    /// Text to be hidden while typed and stored as a secret.
    Secret,
    /// One of the listed choices.
    Enum(Vec<String>),
    /// A list of free-text values.
    Array,
}

/// One choice in an [`IpcPayload::SelectionRequired`] picker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionOption {
    /// Value returned when chosen.
    pub id: String,
    /// Text shown to the user.
    pub label: String,
    /// Extra detail; omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl std::fmt::Debug for IpcMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcMessage")
            .field("topic", &self.topic)
            .field("payload", &self.payload.tag())
            .field("signature_len", &self.signature.as_ref().map(Vec::len))
            .field("source_id", &self.source_id)
            .field("timestamp", &self.timestamp)
            .field("seq", &self.seq)
            .field("principal", &self.principal)
            .field("request_owner", &self.request_owner)
            .finish()
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;
    use crate::schema::payload_ext::IpcPayloadExt;

    #[test]
    fn debug_never_prints_payload_content_or_signature_bytes() {
        let payload = IpcPayload::UserInput {
            text: "my password is hunter2".into(),
            session_id: "s".into(),
            context: None,
        };
        let message = IpcMessage::new("a.b", payload, Uuid::nil()).with_signature(vec![0xAB; 64]);
        let shown = format!("{message:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("user_input") && shown.contains("signature_len: Some(64)"),
            "{shown}"
        );
    }

    #[test]
    fn tags_match_the_wire() {
        let payloads = [
            IpcPayload::Connect,
            IpcPayload::Unknown,
            IpcPayload::Custom { data: Value::Null },
        ];
        for p in payloads {
            let wire = serde_json::to_value(&p).expect("serializes");
            assert_eq!(wire["type"], p.tag());
        }
    }
}
