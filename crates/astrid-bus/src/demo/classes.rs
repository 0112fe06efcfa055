//! The demo's vocabulary: event classes (by publisher) and receiver
//! groups (by role), as the report names them.

/// Event classes, by publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    LlmToken,
    ToolRequest,
    ToolResult,
    Capsule,
    Audit,
    FloodNormal,
    FloodRunaway,
    Lifecycle,
    Registry,
}

impl Class {
    pub(crate) const ALL: [Class; 9] = [
        Class::LlmToken,
        Class::ToolRequest,
        Class::ToolResult,
        Class::Capsule,
        Class::Audit,
        Class::FloodNormal,
        Class::FloodRunaway,
        Class::Lifecycle,
        Class::Registry,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Class::LlmToken => "llm_token",
            Class::ToolRequest => "tool_request",
            Class::ToolResult => "tool_result",
            Class::Capsule => "capsule",
            Class::Audit => "audit",
            Class::FloodNormal => "flood_normal",
            Class::FloodRunaway => "flood_runaway",
            Class::Lifecycle => "lifecycle",
            Class::Registry => "registry",
        }
    }
}

/// Receiver groups of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    LlmStream,
    ToolHost,
    ToolResults,
    CapsuleRoutes,
    Audit,
    Flooded,
    LateJoiner,
    Plain,
    Sync,
}

impl Group {
    pub(crate) const ALL: [Group; 9] = [
        Group::LlmStream,
        Group::ToolHost,
        Group::ToolResults,
        Group::CapsuleRoutes,
        Group::Audit,
        Group::Flooded,
        Group::LateJoiner,
        Group::Plain,
        Group::Sync,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Group::LlmStream => "llm stream (lossless route)",
            Group::ToolHost => "tool requests (tool host route)",
            Group::ToolResults => "tool results (owner + observer routes)",
            Group::CapsuleRoutes => "capsule trees (routes)",
            Group::Audit => "audit feeds (scoped routes)",
            Group::Flooded => "flooded route",
            Group::LateJoiner => "late joiner (retained + live)",
            Group::Plain => "plain subscribers (all events)",
            Group::Sync => "synchronous subscriber",
        }
    }
}
