//! What an IPC event holds in memory: the bytes the allocator handed out for
//! it, found by walking its fields (never by serializing it).
//!
//! Routes and the retained store charge their byte budgets with this figure
//! plus their own per-entry overhead, so a budget bounds real memory: a
//! 64 KiB `metadata.source` or a 10 KiB principal is charged what it holds.
//! [`ipc_size_of`](crate::ipc_size_of) (payload JSON plus topic) keeps its
//! 0.8.0 meaning and is not used for that.
//!
//! What is counted, per event:
//! - the `Arc` allocation every holder shares: two counters and the whole
//!   [`AstridEvent`] (the IPC variant inline);
//! - the capacity (not the length) of every `String` and `Vec` it owns:
//!   `metadata.source`, topic, principal, request owner, signature and each one inside the
//!   payload, element size times capacity for vectors;
//! - `serde_json` maps by an upper bound that holds for both of its layouts
//!   (the default `BTreeMap`, and `IndexMap` under `preserve_order`).
//!
//! Not seen: capacity reserved ahead inside a `serde_json::Map` built with
//! `preserve_order` (the map does not expose it), and the digits of numbers
//! under `serde_json`'s `arbitrary_precision`. Neither arises from decoding
//! JSON with this crate's features.
//!
//! An event shared by several holders is charged in full by each: each
//! bound stands on its own.

use std::mem::size_of;

use serde_json::Value;

use crate::ipc::{IpcMessage, IpcPayload, OnboardingField, OnboardingFieldType, SelectionOption};
use crate::llm::{
    ContentPart, LlmToolDefinition, Message, MessageContent, StreamEvent, ToolCall, ToolCallResult,
};
use crate::schema::event::{AstridEvent, EventMetadata};

/// Size of the `Arc<AstridEvent>` allocation: strong and weak counters, then
/// the event, padded to its alignment.
pub(crate) const ARC_EVENT_BYTES: usize = {
    let align = std::mem::align_of::<AstridEvent>();
    let counters = (2 * size_of::<usize>()).next_multiple_of(align);
    (counters + size_of::<AstridEvent>()).next_multiple_of(align)
};

/// Bytes a `BTreeMap<String, Value>` node may take: the internal node layout
/// of std (parent link, index and length, 11 keys, 11 values, 12 edges).
const MAP_NODE_BYTES: usize =
    16 + 11 * (size_of::<String>() + size_of::<Value>()) + 12 * size_of::<usize>();

/// Upper bound on the bytes of a non-empty `serde_json::Map` of `n` entries,
/// keys and values excluded.
///
/// `BTreeMap`: every node but the root holds at least 5 entries, so there
/// are at most `n / 5 + 1` nodes, none larger than [`MAP_NODE_BYTES`].
/// `IndexMap`: an entry vector of at most twice `n` slots (hash, key,
/// value) and an index table of at most `2 * 8/7 * n` buckets of a `usize`
/// and a control byte. The bound below is at least either.
fn map_bound(n: usize) -> usize {
    let btree = (n / 5 + 1) * MAP_NODE_BYTES;
    let entry = size_of::<u64>() + size_of::<String>() + size_of::<Value>();
    let index_map = 2 * n * entry + (2 * n * 8).div_ceil(7) * (size_of::<usize>() + 1) + 64;
    btree.max(index_map)
}

/// The bytes an IPC event holds: see the module docs for what is counted.
pub(crate) fn held_bytes(metadata: &EventMetadata, message: &IpcMessage) -> usize {
    ARC_EVENT_BYTES
        .saturating_add(metadata.source.capacity())
        .saturating_add(message.topic.capacity())
        .saturating_add(message.principal.heap())
        .saturating_add(request_owner_heap(message))
        .saturating_add(message.signature.as_ref().map_or(0, Vec::capacity))
        .saturating_add(message.payload.heap())
}

/// Heap bytes of the request owner (`upstream-types` messages have none).
fn request_owner_heap(message: &IpcMessage) -> usize {
    #[cfg(not(feature = "upstream-types"))]
    return message.request_owner.heap();
    #[cfg(feature = "upstream-types")]
    {
        let _ = message;
        0
    }
}

/// Heap bytes owned by a value (its own inline size excluded).
trait Heap {
    fn heap(&self) -> usize;
}

impl Heap for String {
    fn heap(&self) -> usize {
        self.capacity()
    }
}

impl<T: Heap> Heap for Option<T> {
    fn heap(&self) -> usize {
        self.as_ref().map_or(0, Heap::heap)
    }
}

impl<T: Heap> Heap for Vec<T> {
    fn heap(&self) -> usize {
        self.iter().fold(
            self.capacity().saturating_mul(size_of::<T>()),
            |sum, item| sum.saturating_add(item.heap()),
        )
    }
}

impl Heap for Value {
    /// Walks with an explicit stack (allocated only for nested containers),
    /// so a deeply nested value cannot exhaust the thread's stack here.
    fn heap(&self) -> usize {
        let mut total = 0usize;
        let mut nested: Vec<&Value> = Vec::new();
        let mut next = Some(self);
        while let Some(value) = next.take().or_else(|| nested.pop()) {
            match value {
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
                Value::String(s) => total = total.saturating_add(s.capacity()),
                Value::Array(items) => {
                    let slots = items.capacity().saturating_mul(size_of::<Value>());
                    total = total.saturating_add(slots);
                    for item in items {
                        total = total.saturating_add(visit(item, &mut nested));
                    }
                }
                Value::Object(map) => {
                    if !map.is_empty() {
                        total = total.saturating_add(map_bound(map.len()));
                    }
                    for (key, item) in map {
                        total = total.saturating_add(key.capacity());
                        total = total.saturating_add(visit(item, &mut nested));
                    }
                }
            }
        }
        total
    }
}

/// A child of a container: a string is counted at once (returned), a
/// container is left for the walk.
fn visit<'a>(child: &'a Value, nested: &mut Vec<&'a Value>) -> usize {
    match child {
        Value::String(s) => s.capacity(),
        Value::Array(_) | Value::Object(_) => {
            nested.push(child);
            0
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

impl Heap for IpcPayload {
    fn heap(&self) -> usize {
        match self {
            Self::RawJson(data) | Self::Custom { data } => data.heap(),
            Self::UserInput {
                text,
                session_id,
                context,
            } => sum([text.heap(), session_id.heap(), context.heap()]),
            Self::AgentResponse {
                text, session_id, ..
            } => sum([text.heap(), session_id.heap()]),
            Self::ApprovalRequired {
                request_id,
                action,
                resource,
                reason,
            } => sum([
                request_id.heap(),
                action.heap(),
                resource.heap(),
                reason.heap(),
            ]),
            Self::ApprovalResponse {
                request_id,
                decision,
                reason,
            } => sum([request_id.heap(), decision.heap(), reason.heap()]),
            Self::OnboardingRequired { capsule_id, fields } => {
                sum([capsule_id.heap(), fields.heap()])
            }
            Self::LlmRequest {
                model,
                messages,
                tools,
                system,
                ..
            } => sum([model.heap(), messages.heap(), tools.heap(), system.heap()]),
            Self::LlmStreamEvent { event, .. } => event.heap(),
            Self::LlmResponse { response, .. } => response.message.heap(),
            Self::ToolExecuteRequest {
                call_id,
                tool_name,
                arguments,
            } => sum([call_id.heap(), tool_name.heap(), arguments.heap()]),
            Self::ToolExecuteResult { call_id, result } => sum([call_id.heap(), result.heap()]),
            Self::ToolCancelRequest { call_ids } => call_ids.heap(),
            Self::SelectionRequired {
                request_id,
                title,
                options,
                callback_topic,
            } => sum([
                request_id.heap(),
                title.heap(),
                options.heap(),
                callback_topic.heap(),
            ]),
            Self::ElicitRequest {
                capsule_id, field, ..
            } => sum([capsule_id.heap(), field.heap()]),
            Self::ElicitResponse { value, values, .. } => sum([value.heap(), values.heap()]),
            Self::Disconnect { reason } => reason.heap(),
            Self::Connect | Self::Unknown => 0,
        }
    }
}

impl Heap for OnboardingField {
    fn heap(&self) -> usize {
        let field_type = match &self.field_type {
            OnboardingFieldType::Enum(choices) => choices.heap(),
            OnboardingFieldType::Text
            | OnboardingFieldType::Secret
            | OnboardingFieldType::Array => 0,
        };
        sum([
            self.key.heap(),
            self.prompt.heap(),
            self.description.heap(),
            field_type,
            self.default.heap(),
            self.placeholder.heap(),
        ])
    }
}

impl Heap for SelectionOption {
    fn heap(&self) -> usize {
        sum([self.id.heap(), self.label.heap(), self.description.heap()])
    }
}

impl Heap for Message {
    fn heap(&self) -> usize {
        match &self.content {
            MessageContent::Text(text) => text.heap(),
            MessageContent::ToolCalls(calls) => calls.heap(),
            MessageContent::ToolResult(result) => result.heap(),
            MessageContent::MultiPart(parts) => parts.heap(),
        }
    }
}

impl Heap for ContentPart {
    fn heap(&self) -> usize {
        match self {
            Self::Text { text } => text.heap(),
            Self::Image { data, media_type } => sum([data.heap(), media_type.heap()]),
        }
    }
}

impl Heap for LlmToolDefinition {
    fn heap(&self) -> usize {
        sum([
            self.name.heap(),
            self.description.heap(),
            self.input_schema.heap(),
        ])
    }
}

impl Heap for ToolCall {
    fn heap(&self) -> usize {
        sum([self.id.heap(), self.name.heap(), self.arguments.heap()])
    }
}

impl Heap for ToolCallResult {
    fn heap(&self) -> usize {
        sum([self.call_id.heap(), self.content.heap()])
    }
}

impl Heap for StreamEvent {
    fn heap(&self) -> usize {
        match self {
            Self::TextDelta(text) | Self::ReasoningDelta(text) | Self::Error(text) => text.heap(),
            Self::ToolCallStart { id, name } => sum([id.heap(), name.heap()]),
            Self::ToolCallDelta { id, args_delta } => sum([id.heap(), args_delta.heap()]),
            Self::ToolCallEnd { id } => id.heap(),
            Self::Usage { .. } | Self::Done => 0,
        }
    }
}

fn sum<const N: usize>(parts: [usize; N]) -> usize {
    parts.into_iter().fold(0, usize::saturating_add)
}
