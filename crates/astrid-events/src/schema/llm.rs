//! LLM schemas carried inside IPC payloads: conversation messages, tool
//! definitions and calls, tool results, streaming events and final
//! responses.
//!
//! This module owns every LLM-facing type that 0.8.0 exposes under
//! `astrid_events::llm`. The serde shapes are part of the wire format and are
//! pinned by the golden vectors in `tests/golden/`:
//!
//! - [`MessageRole`] is written in lowercase (`"user"`, `"tool"`, ...).
//! - [`MessageContent`] is untagged; on input an array is tried as
//!   [`MessageContent::ToolCalls`] before [`MessageContent::MultiPart`], so an
//!   empty array always reads back as `ToolCalls`.
//! - [`ContentPart`] carries a `"type"` tag (`"text"` / `"image"`).
//! - [`StreamEvent`] and [`StopReason`] use serde's default external tagging
//!   with PascalCase variant names (`"Done"`, `{"TextDelta": "..."}`).
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One turn of a conversation sent to or received from a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who produced this turn.
    pub role: MessageRole,
    /// What the turn contains.
    pub content: MessageContent,
}

impl Message {
    /// A plain-text turn from the user.
    pub fn user(content: impl Into<String>) -> Self {
        Self::plain(MessageRole::User, content)
    }

    /// A plain-text turn from the assistant.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::plain(MessageRole::Assistant, content)
    }

    /// A plain-text system instruction.
    pub fn system(content: impl Into<String>) -> Self {
        Self::plain(MessageRole::System, content)
    }

    /// An assistant turn that requests the given tool calls.
    #[must_use]
    pub fn assistant_with_tools(tool_calls: Vec<ToolCall>) -> Self {
        Self {
            role: MessageRole::Assistant,
            content: MessageContent::ToolCalls(tool_calls),
        }
    }

    /// A tool turn reporting the outcome of one tool call.
    #[must_use]
    pub fn tool_result(result: ToolCallResult) -> Self {
        Self {
            role: MessageRole::Tool,
            content: MessageContent::ToolResult(result),
        }
    }

    /// The text of a [`MessageContent::Text`] turn; `None` for any other
    /// content (multi-part text included).
    #[must_use]
    pub fn text(&self) -> Option<&str> {
        match &self.content {
            MessageContent::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The calls of a [`MessageContent::ToolCalls`] turn; `None` for any
    /// other content.
    #[must_use]
    pub fn tool_calls(&self) -> Option<&[ToolCall]> {
        match &self.content {
            MessageContent::ToolCalls(calls) => Some(calls),
            _ => None,
        }
    }

    fn plain(role: MessageRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: MessageContent::Text(content.into()),
        }
    }
}

/// The author of a [`Message`]; serialized in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    /// System prompt / instructions.
    System,
    /// The human (or frontend) side.
    User,
    /// The model.
    Assistant,
    /// Output of a tool execution.
    Tool,
}

/// The body of a [`Message`].
///
/// Untagged on the wire: a string is [`Text`](Self::Text), an object is
/// [`ToolResult`](Self::ToolResult), and an array is tried as
/// [`ToolCalls`](Self::ToolCalls) first and as [`MultiPart`](Self::MultiPart)
/// second. The variant order below is what makes that precedence hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Tool invocations requested by the model.
    ToolCalls(Vec<ToolCall>),
    /// The result of a single tool invocation.
    ToolResult(ToolCallResult),
    /// Mixed text and image parts.
    MultiPart(Vec<ContentPart>),
}

/// One element of a [`MessageContent::MultiPart`] body, tagged by `"type"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ContentPart {
    /// A run of text.
    Text {
        /// The text.
        text: String,
    },
    /// An inline image.
    Image {
        /// Encoded image bytes (base64 text).
        data: String,
        /// MIME type of the image, e.g. `image/png`.
        media_type: String,
    },
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmToolDefinition {
    /// Tool name as the model sees it.
    pub name: String,
    /// Human-readable purpose; written as `null` when absent.
    pub description: Option<String>,
    /// JSON Schema of the arguments object (required on input; `null` allowed).
    pub input_schema: Value,
}

impl LlmToolDefinition {
    /// A tool with no description whose schema accepts any object
    /// (`{"type": "object"}`).
    pub fn new(name: impl Into<String>) -> Self {
        let mut schema = serde_json::Map::new();
        schema.insert("type".to_owned(), Value::String("object".to_owned()));
        Self {
            name: name.into(),
            description: None,
            input_schema: Value::Object(schema),
        }
    }

    /// Returns the definition with `description` set.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Returns the definition with `input_schema` replaced.
    #[must_use]
    pub fn with_schema(mut self, schema: Value) -> Self {
        self.input_schema = schema;
        self
    }
}

/// A tool invocation requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id used to match the result.
    pub id: String,
    /// Name of the tool to run.
    pub name: String,
    /// Arguments as arbitrary JSON (required on input; `null` allowed).
    pub arguments: Value,
}

impl ToolCall {
    /// A call with an empty arguments object.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            arguments: Value::Object(serde_json::Map::new()),
        }
    }

    /// Returns the call with `arguments` replaced.
    #[must_use]
    pub fn with_arguments(mut self, arguments: Value) -> Self {
        self.arguments = arguments;
        self
    }

    /// Splits a namespaced name at its first `:` into `(namespace, tool)`,
    /// e.g. `"filesystem:read_file"` into `("filesystem", "read_file")`;
    /// `None` when the name has no `:`.
    #[must_use]
    pub fn parse_name(&self) -> Option<(&str, &str)> {
        self.name.split_once(':')
    }
}

/// The outcome of running one tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallResult {
    /// Id of the [`ToolCall`] this answers.
    pub call_id: String,
    /// Output text (or error description).
    pub content: String,
    /// Whether the tool failed; `false` when missing on input.
    #[serde(default)]
    pub is_error: bool,
}

impl ToolCallResult {
    /// A successful result carrying the tool's output.
    pub fn success(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            call_id: call_id.into(),
            content: content.into(),
            is_error: false,
        }
    }

    /// A failed result; `error` becomes the content.
    pub fn error(call_id: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            call_id: call_id.into(),
            content: error.into(),
            is_error: true,
        }
    }
}

/// A complete, non-streaming model answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmResponse {
    /// The answer itself.
    pub message: Message,
    /// Whether the answer contains tool calls.
    pub has_tool_calls: bool,
    /// Why generation stopped.
    pub stop_reason: StopReason,
    /// Token accounting.
    pub usage: Usage,
}

/// Why the model stopped generating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StopReason {
    /// The model finished its turn.
    EndTurn,
    /// The output token limit was reached.
    MaxTokens,
    /// The model wants tool results before continuing.
    ToolUse,
    /// A configured stop sequence was produced.
    StopSequence,
}

/// Token counts for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens consumed by the prompt.
    pub input_tokens: usize,
    /// Tokens produced by the model.
    pub output_tokens: usize,
}

impl Usage {
    /// Input plus output tokens, saturating at `usize::MAX`.
    #[must_use]
    pub fn total(&self) -> usize {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// One incremental event of a streaming model answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StreamEvent {
    /// A fragment of output text.
    TextDelta(String),
    /// The model started a tool call.
    ToolCallStart {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
    },
    /// A fragment of a tool call's JSON arguments.
    ToolCallDelta {
        /// Call id.
        id: String,
        /// The next piece of argument text.
        args_delta: String,
    },
    /// A tool call's arguments are complete.
    ToolCallEnd {
        /// Call id.
        id: String,
    },
    /// A fragment of reasoning / chain-of-thought text.
    ReasoningDelta(String),
    /// Token accounting, usually near the end of the stream.
    Usage {
        /// Tokens consumed by the prompt.
        input_tokens: usize,
        /// Tokens produced by the model.
        output_tokens: usize,
    },
    /// The stream finished normally.
    Done,
    /// The stream failed with this message.
    Error(String),
}
