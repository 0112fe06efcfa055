//! `astrid-events`: the event bus of a secure agent runtime.
//!
//! Everything in an agent runtime talks through one in-process bus: the
//! kernel publishes lifecycle events ([`AstridEvent`]), capsules publish IPC
//! messages ([`IpcMessage`]) on dot-separated topics, and consumers subscribe
//! with plain receivers, topic-filtered receivers, routed (per-principal, fair,
//! budgeted) receivers or synchronous subscribers.
//!
//! The crate keeps the API and JSON wire format of the published
//! `astrid-events` 0.8.0.
//!
//! # Features
//! - `runtime` (default): the bus and everything that needs tokio. Without it
//!   the crate exposes only the schema types and topic matching, and builds
//!   for `wasm32-wasip1` guests with no tokio in the tree.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(unreachable_pub)]
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod event;
pub mod ipc;
pub mod llm;
mod topic;
#[cfg(feature = "runtime")]
mod index;

pub use event::{AstridEvent, EventMetadata};
pub use ipc::{IpcMessage, IpcPayload};
pub use topic::{TopicMatcher, topic_pattern_matches};
