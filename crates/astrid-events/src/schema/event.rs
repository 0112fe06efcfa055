//! The lifecycle event taxonomy: [`AstridEvent`] and its [`EventMetadata`].
//!
//! This module owns the schema of every event the runtime publishes on the
//! bus, from runtime start-up to budget warnings, plus the two open-ended
//! variants ([`AstridEvent::Ipc`] and [`AstridEvent::Custom`]).
//!
//! # Wire format
//!
//! The JSON encoding is byte-compatible with `astrid-events` 0.8.0:
//!
//! - the enum is internally tagged: a `"type"` key holding the snake_case
//!   variant name comes first, followed by the fields in declaration order;
//! - `Option` fields are always written (`null` for `None`) and read back as
//!   `None` when missing;
//! - unknown `"type"` values are rejected, unknown fields are ignored;
//! - timestamps use chrono's default RFC 3339 form in UTC (`...Z`, fractional
//!   seconds only when non-zero) and ids are lowercase hyphenated UUIDs.
//!
//! The tag is not the same string as [`AstridEvent::event_type`], which
//! returns the dotted `astrid.v1.lifecycle.*` name used for routing.
//!
//! Changing a variant name, field name, field type or field order here is a
//! wire-format change; the golden vectors in `tests/golden_events.rs` catch
//! it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::ipc::IpcMessage;

/// Common header carried by every [`AstridEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Identifier of this particular event.
    pub event_id: Uuid,
    /// Moment the event was created (UTC).
    #[serde(with = "crate::timestamp")]
    pub timestamp: DateTime<Utc>,
    /// Shared id tying together events that belong to one logical operation.
    pub correlation_id: Option<Uuid>,
    /// Session the event relates to, when there is one.
    pub session_id: Option<Uuid>,
    /// User the event relates to, when there is one.
    pub user_id: Option<Uuid>,
    /// Name of the component that emitted the event.
    pub source: String,
}

impl EventMetadata {
    /// Metadata for a new event emitted by `source`: a random v4 id, the
    /// current time and no correlation, session or user id.
    #[must_use]
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

    /// Returns the metadata with its correlation id set to `id`.
    #[must_use]
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Returns the metadata with its session id set to `id`.
    #[must_use]
    pub fn with_session_id(mut self, id: Uuid) -> Self {
        self.session_id = Some(id);
        self
    }

    /// Returns the metadata with its user id set to `id`.
    #[must_use]
    pub fn with_user_id(mut self, id: Uuid) -> Self {
        self.user_id = Some(id);
        self
    }
}

impl Default for EventMetadata {
    /// Same as [`EventMetadata::new`] with the source `"unknown"`.
    fn default() -> Self {
        Self::new("unknown")
    }
}

/// Every event published on the bus.
///
/// Each variant carries its [`EventMetadata`] in a `metadata` field; use
/// [`AstridEvent::metadata`] to read it without matching.
///
/// The [`AstridEvent::Ipc`] variant holds its [`IpcMessage`] inline, as 0.8.0
/// does, which makes it much larger than the other variants. Boxing it would
/// break code that builds or matches that variant, so the size is accepted;
/// pass events around behind an `Arc` rather than by value.
#[allow(
    clippy::large_enum_variant,
    reason = "`Ipc { message: IpcMessage }` is public 0.8.0 API; boxing would break it"
)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AstridEvent {
    // ---------------------------------------------------------------------
    // Runtime and agents
    // ---------------------------------------------------------------------
    /// The runtime finished starting up.
    RuntimeStarted {
        /// Event header.
        metadata: EventMetadata,
        /// Version string of the runtime that started.
        version: String,
    },

    /// The runtime is stopping.
    RuntimeStopped {
        /// Event header.
        metadata: EventMetadata,
        /// Why it stopped, if known.
        reason: Option<String>,
    },

    /// An agent began running inside the runtime.
    AgentStarted {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the agent.
        agent_id: Uuid,
        /// Human-readable name of the agent.
        agent_name: String,
    },

    /// An agent stopped running.
    AgentStopped {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the agent.
        agent_id: Uuid,
        /// Why it stopped, if known.
        reason: Option<String>,
    },

    // ---------------------------------------------------------------------
    // Sessions
    // ---------------------------------------------------------------------
    /// A new conversation session was opened.
    SessionCreated {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the new session.
        session_id: Uuid,
    },

    /// A session was closed.
    SessionEnded {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the closed session.
        session_id: Uuid,
        /// Why it was closed, if known.
        reason: Option<String>,
    },

    /// A session was restored from persisted state.
    SessionResumed {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the restored session.
        session_id: Uuid,
    },

    // ---------------------------------------------------------------------
    // Message flow
    // ---------------------------------------------------------------------
    /// An inbound user message reached the runtime.
    MessageReceived {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the message.
        message_id: Uuid,
        /// Platform the message arrived from (for example `cli`).
        platform: String,
    },

    /// A reply was delivered to its platform.
    MessageSent {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the delivered message.
        message_id: Uuid,
        /// Platform the reply was delivered to.
        platform: String,
    },

    /// Handling of a message is complete, reply included.
    MessageProcessed {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the handled message.
        message_id: Uuid,
        /// Total handling time in milliseconds.
        duration_ms: u64,
    },

    // ---------------------------------------------------------------------
    // Agent loop hooks
    // ---------------------------------------------------------------------
    /// The prompt for an upcoming LLM call is being assembled.
    PromptBuilding {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the LLM request the prompt is for.
        request_id: Uuid,
    },

    /// A reply is about to be handed to its platform.
    MessageSending {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the outgoing message.
        message_id: Uuid,
        /// Platform the reply is going to.
        platform: String,
    },

    /// Trimming of a session's conversation history has begun.
    ContextCompactionStarted {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the session being trimmed.
        session_id: Uuid,
        /// Number of messages in the history before trimming.
        message_count: u32,
    },

    /// Trimming of a session's conversation history has finished.
    ContextCompactionCompleted {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the trimmed session.
        session_id: Uuid,
        /// Number of messages left in the history.
        messages_remaining: u32,
    },

    /// A session's conversation history is about to be cleared.
    SessionResetting {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the session being cleared.
        session_id: Uuid,
    },

    /// The provider and model for an LLM call are being chosen.
    ModelResolving {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the LLM request being resolved.
        request_id: Uuid,
        /// Provider proposed so far, if any.
        provider: Option<String>,
        /// Model proposed so far, if any.
        model: Option<String>,
    },

    /// An agent's reasoning loop produced its final answer.
    AgentLoopCompleted {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the agent.
        agent_id: Uuid,
        /// Number of loop iterations that ran.
        turns: u32,
        /// Wall time of the whole loop in milliseconds.
        duration_ms: u64,
    },

    /// A tool result is about to be written into the conversation history.
    ToolResultPersisting {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the tool call that produced the result.
        call_id: Uuid,
        /// Name of the tool.
        tool_name: String,
    },

    // ---------------------------------------------------------------------
    // LLM calls
    // ---------------------------------------------------------------------
    /// A request was sent to an LLM provider.
    LlmRequestStarted {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the request.
        request_id: Uuid,
        /// Provider the request went to.
        provider: String,
        /// Model the request targets.
        model: String,
    },

    /// An LLM request finished, successfully or not.
    LlmRequestCompleted {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the request.
        request_id: Uuid,
        /// Whether the provider returned a usable response.
        success: bool,
        /// Prompt tokens billed, when the provider reported them.
        input_tokens: Option<u32>,
        /// Completion tokens billed, when the provider reported them.
        output_tokens: Option<u32>,
        /// Request latency in milliseconds.
        duration_ms: u64,
    },

    /// A streamed LLM response began.
    LlmStreamStarted {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the request being streamed.
        request_id: Uuid,
        /// Model producing the stream.
        model: String,
    },

    /// One chunk of a streamed LLM response arrived.
    LlmStreamChunk {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the request being streamed.
        request_id: Uuid,
        /// Position of the chunk in the stream, starting at 0.
        chunk_index: u32,
        /// Tokens contained in this chunk.
        token_count: u32,
    },

    /// A streamed LLM response ended.
    LlmStreamCompleted {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the request that was streamed.
        request_id: Uuid,
        /// Prompt tokens billed, when the provider reported them.
        input_tokens: Option<u32>,
        /// Completion tokens billed, when the provider reported them.
        output_tokens: Option<u32>,
        /// Time from request to end of stream in milliseconds.
        duration_ms: u64,
    },

    // ---------------------------------------------------------------------
    // Tool calls
    // ---------------------------------------------------------------------
    /// A tool call began (built-in or MCP).
    ToolCallStarted {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the tool call.
        call_id: Uuid,
        /// Name of the tool.
        tool_name: String,
        /// MCP server providing the tool, for MCP tools.
        server_name: Option<String>,
    },

    /// A tool call returned successfully.
    ToolCallCompleted {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the tool call.
        call_id: Uuid,
        /// Name of the tool.
        tool_name: String,
        /// Execution time in milliseconds.
        duration_ms: u64,
    },

    /// A tool call returned an error.
    ToolCallFailed {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the tool call.
        call_id: Uuid,
        /// Name of the tool.
        tool_name: String,
        /// Error text reported by the tool.
        error: String,
        /// Execution time until the failure, in milliseconds.
        duration_ms: u64,
    },

    // ---------------------------------------------------------------------
    // MCP servers
    // ---------------------------------------------------------------------
    /// A connection to an MCP server was established.
    McpServerConnected {
        /// Event header.
        metadata: EventMetadata,
        /// Configured name of the server.
        server_name: String,
        /// MCP protocol version agreed with the server.
        protocol_version: String,
    },

    /// The connection to an MCP server was lost or closed.
    McpServerDisconnected {
        /// Event header.
        metadata: EventMetadata,
        /// Configured name of the server.
        server_name: String,
        /// Why the connection ended, if known.
        reason: Option<String>,
    },

    /// A tool on an MCP server was invoked.
    McpToolCalled {
        /// Event header.
        metadata: EventMetadata,
        /// Server hosting the tool.
        server_name: String,
        /// Name of the tool.
        tool_name: String,
        /// Call arguments, or `None` when withheld (for example redacted).
        arguments: Option<Value>,
    },

    /// A tool call on an MCP server returned.
    McpToolCompleted {
        /// Event header.
        metadata: EventMetadata,
        /// Server hosting the tool.
        server_name: String,
        /// Name of the tool.
        tool_name: String,
        /// Whether the call succeeded.
        success: bool,
        /// Execution time in milliseconds.
        duration_ms: u64,
    },

    // ---------------------------------------------------------------------
    // Sub-agents
    // ---------------------------------------------------------------------
    /// A parent agent launched a sub-agent.
    SubAgentSpawned {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the new sub-agent.
        subagent_id: Uuid,
        /// Id of the agent that launched it.
        parent_id: Uuid,
        /// Task the sub-agent was given.
        task: String,
        /// Nesting level of the sub-agent in the agent tree.
        depth: u32,
    },

    /// A sub-agent reported progress.
    SubAgentProgress {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the sub-agent.
        subagent_id: Uuid,
        /// Free-form progress note.
        message: String,
    },

    /// A sub-agent finished its task.
    SubAgentCompleted {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the sub-agent.
        subagent_id: Uuid,
        /// Run time in milliseconds.
        duration_ms: u64,
    },

    /// A sub-agent gave up with an error.
    SubAgentFailed {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the sub-agent.
        subagent_id: Uuid,
        /// Error text.
        error: String,
        /// Run time until the failure, in milliseconds.
        duration_ms: u64,
    },

    /// A sub-agent was stopped before finishing.
    SubAgentCancelled {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the sub-agent.
        subagent_id: Uuid,
        /// Why it was stopped, if known.
        reason: Option<String>,
    },

    // ---------------------------------------------------------------------
    // Security
    // ---------------------------------------------------------------------
    /// A capability was issued.
    CapabilityGranted {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the issued capability.
        capability_id: Uuid,
        /// Resource the capability covers.
        resource: String,
        /// Action the capability allows on the resource.
        action: String,
    },

    /// A capability was withdrawn.
    CapabilityRevoked {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the withdrawn capability.
        capability_id: Uuid,
        /// Why it was withdrawn, if known.
        reason: Option<String>,
    },

    /// A capability check was evaluated.
    CapabilityChecked {
        /// Event header.
        metadata: EventMetadata,
        /// Resource that was checked.
        resource: String,
        /// Action that was checked.
        action: String,
        /// Outcome of the check.
        allowed: bool,
    },

    /// An action was refused by authorization.
    AuthorizationDenied {
        /// Event header.
        metadata: EventMetadata,
        /// Resource the action targeted.
        resource: String,
        /// Action that was refused.
        action: String,
        /// Why it was refused.
        reason: String,
    },

    /// A security policy violation was detected.
    SecurityViolation {
        /// Event header.
        metadata: EventMetadata,
        /// Category of violation (for example `path_traversal`).
        violation_type: String,
        /// Description of what was attempted.
        details: String,
    },

    // ---------------------------------------------------------------------
    // Human approval
    // ---------------------------------------------------------------------
    /// An action is waiting for human approval.
    ApprovalRequested {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the approval request.
        request_id: Uuid,
        /// Resource the action targets.
        resource: String,
        /// Action awaiting approval.
        action: String,
        /// Explanation shown to the approver.
        description: String,
    },

    /// An approval request was accepted.
    ApprovalGranted {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the approval request.
        request_id: Uuid,
        /// How long the approval lasts, as free text (for example `1h`);
        /// `None` when it is not time-limited.
        duration: Option<String>,
    },

    /// An approval request was rejected.
    ApprovalDenied {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the approval request.
        request_id: Uuid,
        /// Why it was rejected, if given.
        reason: Option<String>,
    },

    // ---------------------------------------------------------------------
    // Budgets
    // ---------------------------------------------------------------------
    /// Spending budget was assigned to a session or agent.
    BudgetAllocated {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the budget.
        budget_id: Uuid,
        /// Amount assigned, in the currency's minor unit (cents).
        amount_cents: u64,
        /// ISO currency code (for example `USD`).
        currency: String,
    },

    /// A budget crossed its warning threshold.
    BudgetWarning {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the budget.
        budget_id: Uuid,
        /// Amount still available, in cents.
        remaining_cents: u64,
        /// Share of the budget already spent, in percent.
        percent_used: f64,
    },

    /// A budget was overspent.
    BudgetExceeded {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the budget.
        budget_id: Uuid,
        /// Amount spent beyond the budget, in cents.
        overage_cents: u64,
    },

    // ---------------------------------------------------------------------
    // Capsules
    // ---------------------------------------------------------------------
    /// A capsule was loaded.
    CapsuleLoaded {
        /// Event header.
        metadata: EventMetadata,
        /// Identifier of the capsule.
        capsule_id: String,
        /// Display name of the capsule.
        capsule_name: String,
    },

    /// A capsule could not be loaded.
    CapsuleFailed {
        /// Event header.
        metadata: EventMetadata,
        /// Identifier of the capsule.
        capsule_id: String,
        /// Why loading failed.
        error: String,
    },

    /// A capsule was unloaded.
    CapsuleUnloaded {
        /// Event header.
        metadata: EventMetadata,
        /// Identifier of the capsule.
        capsule_id: String,
        /// Display name of the capsule.
        capsule_name: String,
    },

    // ---------------------------------------------------------------------
    // Kernel and configuration
    // ---------------------------------------------------------------------
    /// The kernel daemon started.
    KernelStarted {
        /// Event header.
        metadata: EventMetadata,
        /// Version string of the kernel.
        version: String,
    },

    /// The kernel daemon is shutting down.
    KernelShutdown {
        /// Event header.
        metadata: EventMetadata,
        /// Why it is shutting down, if known.
        reason: Option<String>,
    },

    /// The configuration was re-read from disk.
    ConfigReloaded {
        /// Event header.
        metadata: EventMetadata,
    },

    /// A single configuration value changed.
    ConfigChanged {
        /// Event header.
        metadata: EventMetadata,
        /// Dotted key of the changed setting.
        key: String,
    },

    /// A round of health checks finished.
    HealthCheckCompleted {
        /// Event header.
        metadata: EventMetadata,
        /// Whether the system is considered healthy overall.
        healthy: bool,
        /// Number of checks that ran.
        checks_performed: u32,
        /// Number of checks that did not pass.
        checks_failed: u32,
    },

    // ---------------------------------------------------------------------
    // Audit and errors
    // ---------------------------------------------------------------------
    /// An entry was appended to the audit log.
    AuditEntryCreated {
        /// Event header.
        metadata: EventMetadata,
        /// Id of the audit entry.
        entry_id: Uuid,
        /// Kind of entry (for example `tool_call`).
        entry_type: String,
    },

    /// An error was reported.
    ErrorOccurred {
        /// Event header.
        metadata: EventMetadata,
        /// Machine-readable error code.
        code: String,
        /// Human-readable error text.
        message: String,
        /// Backtrace, when one was captured.
        stack_trace: Option<String>,
    },

    // ---------------------------------------------------------------------
    // Open-ended events
    // ---------------------------------------------------------------------
    /// An IPC message exchanged with a capsule (guest or host side).
    Ipc {
        /// Event header.
        metadata: EventMetadata,
        /// The message, with its topic and payload.
        message: IpcMessage,
    },

    /// An extension-defined event outside the fixed taxonomy.
    Custom {
        /// Event header.
        metadata: EventMetadata,
        /// Extension-chosen event name.
        name: String,
        /// Arbitrary JSON payload (any JSON value, `null` included).
        data: Value,
    },
}

impl AstridEvent {
    /// The header shared by all variants.
    #[must_use]
    pub fn metadata(&self) -> &EventMetadata {
        match self {
            Self::RuntimeStarted { metadata, .. }
            | Self::RuntimeStopped { metadata, .. }
            | Self::AgentStarted { metadata, .. }
            | Self::AgentStopped { metadata, .. }
            | Self::SessionCreated { metadata, .. }
            | Self::SessionEnded { metadata, .. }
            | Self::SessionResumed { metadata, .. }
            | Self::MessageReceived { metadata, .. }
            | Self::MessageSent { metadata, .. }
            | Self::MessageProcessed { metadata, .. }
            | Self::PromptBuilding { metadata, .. }
            | Self::MessageSending { metadata, .. }
            | Self::ContextCompactionStarted { metadata, .. }
            | Self::ContextCompactionCompleted { metadata, .. }
            | Self::SessionResetting { metadata, .. }
            | Self::ModelResolving { metadata, .. }
            | Self::AgentLoopCompleted { metadata, .. }
            | Self::ToolResultPersisting { metadata, .. }
            | Self::LlmRequestStarted { metadata, .. }
            | Self::LlmRequestCompleted { metadata, .. }
            | Self::LlmStreamStarted { metadata, .. }
            | Self::LlmStreamChunk { metadata, .. }
            | Self::LlmStreamCompleted { metadata, .. }
            | Self::ToolCallStarted { metadata, .. }
            | Self::ToolCallCompleted { metadata, .. }
            | Self::ToolCallFailed { metadata, .. }
            | Self::McpServerConnected { metadata, .. }
            | Self::McpServerDisconnected { metadata, .. }
            | Self::McpToolCalled { metadata, .. }
            | Self::McpToolCompleted { metadata, .. }
            | Self::SubAgentSpawned { metadata, .. }
            | Self::SubAgentProgress { metadata, .. }
            | Self::SubAgentCompleted { metadata, .. }
            | Self::SubAgentFailed { metadata, .. }
            | Self::SubAgentCancelled { metadata, .. }
            | Self::CapabilityGranted { metadata, .. }
            | Self::CapabilityRevoked { metadata, .. }
            | Self::CapabilityChecked { metadata, .. }
            | Self::AuthorizationDenied { metadata, .. }
            | Self::SecurityViolation { metadata, .. }
            | Self::ApprovalRequested { metadata, .. }
            | Self::ApprovalGranted { metadata, .. }
            | Self::ApprovalDenied { metadata, .. }
            | Self::BudgetAllocated { metadata, .. }
            | Self::BudgetWarning { metadata, .. }
            | Self::BudgetExceeded { metadata, .. }
            | Self::CapsuleLoaded { metadata, .. }
            | Self::CapsuleFailed { metadata, .. }
            | Self::CapsuleUnloaded { metadata, .. }
            | Self::KernelStarted { metadata, .. }
            | Self::KernelShutdown { metadata, .. }
            | Self::ConfigReloaded { metadata, .. }
            | Self::ConfigChanged { metadata, .. }
            | Self::HealthCheckCompleted { metadata, .. }
            | Self::AuditEntryCreated { metadata, .. }
            | Self::ErrorOccurred { metadata, .. }
            | Self::Ipc { metadata, .. }
            | Self::Custom { metadata, .. } => metadata,
        }
    }

    /// The routing name of the event.
    ///
    /// `astrid.v1.lifecycle.<snake_case variant>` for the fixed taxonomy,
    /// `"ipc"` for [`AstridEvent::Ipc`] and `"custom"` for
    /// [`AstridEvent::Custom`]. This is not the serde `"type"` tag.
    #[must_use]
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::RuntimeStarted { .. } => "astrid.v1.lifecycle.runtime_started",
            Self::RuntimeStopped { .. } => "astrid.v1.lifecycle.runtime_stopped",
            Self::AgentStarted { .. } => "astrid.v1.lifecycle.agent_started",
            Self::AgentStopped { .. } => "astrid.v1.lifecycle.agent_stopped",
            Self::SessionCreated { .. } => "astrid.v1.lifecycle.session_created",
            Self::SessionEnded { .. } => "astrid.v1.lifecycle.session_ended",
            Self::SessionResumed { .. } => "astrid.v1.lifecycle.session_resumed",
            Self::MessageReceived { .. } => "astrid.v1.lifecycle.message_received",
            Self::MessageSent { .. } => "astrid.v1.lifecycle.message_sent",
            Self::MessageProcessed { .. } => "astrid.v1.lifecycle.message_processed",
            Self::PromptBuilding { .. } => "astrid.v1.lifecycle.prompt_building",
            Self::MessageSending { .. } => "astrid.v1.lifecycle.message_sending",
            Self::ContextCompactionStarted { .. } => {
                "astrid.v1.lifecycle.context_compaction_started"
            }
            Self::ContextCompactionCompleted { .. } => {
                "astrid.v1.lifecycle.context_compaction_completed"
            }
            Self::SessionResetting { .. } => "astrid.v1.lifecycle.session_resetting",
            Self::ModelResolving { .. } => "astrid.v1.lifecycle.model_resolving",
            Self::AgentLoopCompleted { .. } => "astrid.v1.lifecycle.agent_loop_completed",
            Self::ToolResultPersisting { .. } => "astrid.v1.lifecycle.tool_result_persisting",
            Self::LlmRequestStarted { .. } => "astrid.v1.lifecycle.llm_request_started",
            Self::LlmRequestCompleted { .. } => "astrid.v1.lifecycle.llm_request_completed",
            Self::LlmStreamStarted { .. } => "astrid.v1.lifecycle.llm_stream_started",
            Self::LlmStreamChunk { .. } => "astrid.v1.lifecycle.llm_stream_chunk",
            Self::LlmStreamCompleted { .. } => "astrid.v1.lifecycle.llm_stream_completed",
            Self::ToolCallStarted { .. } => "astrid.v1.lifecycle.tool_call_started",
            Self::ToolCallCompleted { .. } => "astrid.v1.lifecycle.tool_call_completed",
            Self::ToolCallFailed { .. } => "astrid.v1.lifecycle.tool_call_failed",
            Self::McpServerConnected { .. } => "astrid.v1.lifecycle.mcp_server_connected",
            Self::McpServerDisconnected { .. } => "astrid.v1.lifecycle.mcp_server_disconnected",
            Self::McpToolCalled { .. } => "astrid.v1.lifecycle.mcp_tool_called",
            Self::McpToolCompleted { .. } => "astrid.v1.lifecycle.mcp_tool_completed",
            Self::SubAgentSpawned { .. } => "astrid.v1.lifecycle.sub_agent_spawned",
            Self::SubAgentProgress { .. } => "astrid.v1.lifecycle.sub_agent_progress",
            Self::SubAgentCompleted { .. } => "astrid.v1.lifecycle.sub_agent_completed",
            Self::SubAgentFailed { .. } => "astrid.v1.lifecycle.sub_agent_failed",
            Self::SubAgentCancelled { .. } => "astrid.v1.lifecycle.sub_agent_cancelled",
            Self::CapabilityGranted { .. } => "astrid.v1.lifecycle.capability_granted",
            Self::CapabilityRevoked { .. } => "astrid.v1.lifecycle.capability_revoked",
            Self::CapabilityChecked { .. } => "astrid.v1.lifecycle.capability_checked",
            Self::AuthorizationDenied { .. } => "astrid.v1.lifecycle.authorization_denied",
            Self::SecurityViolation { .. } => "astrid.v1.lifecycle.security_violation",
            Self::ApprovalRequested { .. } => "astrid.v1.lifecycle.approval_requested",
            Self::ApprovalGranted { .. } => "astrid.v1.lifecycle.approval_granted",
            Self::ApprovalDenied { .. } => "astrid.v1.lifecycle.approval_denied",
            Self::BudgetAllocated { .. } => "astrid.v1.lifecycle.budget_allocated",
            Self::BudgetWarning { .. } => "astrid.v1.lifecycle.budget_warning",
            Self::BudgetExceeded { .. } => "astrid.v1.lifecycle.budget_exceeded",
            Self::CapsuleLoaded { .. } => "astrid.v1.lifecycle.capsule_loaded",
            Self::CapsuleFailed { .. } => "astrid.v1.lifecycle.capsule_failed",
            Self::CapsuleUnloaded { .. } => "astrid.v1.lifecycle.capsule_unloaded",
            Self::KernelStarted { .. } => "astrid.v1.lifecycle.kernel_started",
            Self::KernelShutdown { .. } => "astrid.v1.lifecycle.kernel_shutdown",
            Self::ConfigReloaded { .. } => "astrid.v1.lifecycle.config_reloaded",
            Self::ConfigChanged { .. } => "astrid.v1.lifecycle.config_changed",
            Self::HealthCheckCompleted { .. } => "astrid.v1.lifecycle.health_check_completed",
            Self::AuditEntryCreated { .. } => "astrid.v1.lifecycle.audit_entry_created",
            Self::ErrorOccurred { .. } => "astrid.v1.lifecycle.error_occurred",
            Self::Ipc { .. } => "ipc",
            Self::Custom { .. } => "custom",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sets_ids() {
        let (c, s, u) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let meta = EventMetadata::new("test")
            .with_correlation_id(c)
            .with_session_id(s)
            .with_user_id(u);
        assert_eq!(meta.source, "test");
        assert_eq!(meta.correlation_id, Some(c));
        assert_eq!(meta.session_id, Some(s));
        assert_eq!(meta.user_id, Some(u));
    }

    #[test]
    fn new_and_default_leave_ids_empty() {
        let a = EventMetadata::new("x");
        let b = EventMetadata::default();
        assert_ne!(a.event_id, b.event_id);
        assert_eq!(b.source, "unknown");
        for m in [&a, &b] {
            assert!(m.correlation_id.is_none());
            assert!(m.session_id.is_none());
            assert!(m.user_id.is_none());
        }
    }

    #[test]
    fn metadata_and_event_type() {
        let meta = EventMetadata::new("kernel");
        let event = AstridEvent::ConfigReloaded {
            metadata: meta.clone(),
        };
        assert_eq!(event.metadata(), &meta);
        assert_eq!(event.event_type(), "astrid.v1.lifecycle.config_reloaded");
    }
}
