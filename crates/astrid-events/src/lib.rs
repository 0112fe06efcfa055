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
//! - `upstream-types` (off): type identity with the Astrid runtime. `ipc` and
//!   `llm` become re-exports of `astrid-types` 0.8.0 and `kernel_api` of
//!   `astrid-core` 0.8.0, exactly as in the published 0.8.0, so runtime crates
//!   that build `astrid_types::ipc::IpcMessage` values hand them to this bus
//!   unchanged. The bus, routed subscriptions, index, `ipc_json` and
//!   validation work on those types. `IpcMessage`'s `Debug` is then the
//!   runtime's, which prints payload content (see `MIGRATING.md`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(unreachable_pub)]
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod event;
#[cfg(not(feature = "upstream-types"))]
pub mod ipc;
// With `upstream-types`, `ipc`, `llm` and `kernel_api` are the Astrid
// runtime's own modules (as in 0.8.0); see `ipc_upstream.rs`.
#[cfg(feature = "upstream-types")]
#[path = "ipc_upstream.rs"]
pub mod ipc;
pub mod ipc_json;
#[cfg(not(feature = "upstream-types"))]
pub mod llm;
mod payload_ext;
#[cfg(feature = "runtime")]
pub mod rate_limiter;
pub mod timestamp;
mod topic;
pub mod validate;

#[cfg(feature = "runtime")]
mod bus;
#[cfg(feature = "runtime")]
mod checked;
#[cfg(feature = "runtime")]
mod error;
#[cfg(feature = "runtime")]
mod held;
#[cfg(feature = "runtime")]
mod index;
#[cfg(feature = "runtime")]
pub mod metrics;
#[cfg(feature = "runtime")]
pub mod monitor;
#[cfg(feature = "runtime")]
mod receiver;
#[cfg(feature = "runtime")]
mod retain;
#[cfg(feature = "runtime")]
mod routed;
#[cfg(feature = "runtime")]
mod scope;
#[cfg(feature = "runtime")]
mod sequencer;
#[cfg(feature = "runtime")]
pub mod subscription;
#[cfg(feature = "runtime")]
mod sync;
#[cfg(feature = "runtime")]
mod sync_sub;

pub mod prelude;

#[cfg(feature = "upstream-types")]
pub use astrid_core::kernel_api;
#[cfg(feature = "upstream-types")]
pub use astrid_types::llm;
pub use event::{AstridEvent, EventMetadata};
pub use ipc::{IpcMessage, IpcPayload};
#[cfg(feature = "runtime")]
pub use rate_limiter::IpcRateLimiter;
pub use topic::{TopicMatcher, topic_pattern_matches};

#[cfg(feature = "runtime")]
pub use bus::{DEFAULT_CHANNEL_CAPACITY, EventBus, EventBusBuilder};
#[cfg(feature = "runtime")]
pub use error::{PublishError, SubscribeError};
#[cfg(feature = "runtime")]
pub use metrics::{
    METRIC_ROUTE_ACTIVE_PRINCIPALS, METRIC_ROUTE_BUDGET_BYTES_IN_USE,
    METRIC_ROUTE_BYTE_EVICTIONS_TOTAL, METRIC_ROUTE_QUANTUM_STARVED_TOTAL,
};
#[cfg(feature = "runtime")]
pub use monitor::{BusMonitor, MonitorRecorder, MonitorSnapshot};
#[cfg(feature = "runtime")]
pub use receiver::{EventReceiver, LAG_OTHER_TOPICS, LAG_TOPICS_TRACKED};
#[cfg(feature = "runtime")]
pub use retain::RetentionPolicy;
#[cfg(feature = "runtime")]
pub use routed::{
    DRR_QUANTUM_MIN_BYTES, MAX_SUBSCRIPTION_BUDGET_BYTES, PrincipalKey,
    ROUTED_EVENT_OVERHEAD_BYTES, RouteKey, RoutedEventReceiver, ipc_size_of, principal_class_label,
};
#[cfg(feature = "runtime")]
pub use scope::Scope;
#[cfg(feature = "runtime")]
pub use subscription::Subscription;
#[cfg(feature = "runtime")]
pub use sync_sub::{EventSubscriber, MAX_SYNC_DISPATCH_DEPTH, SubscriberId};
