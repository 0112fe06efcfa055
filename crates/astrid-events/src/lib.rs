//! `astrid-events`: the event bus of a secure agent runtime.
//!
//! Everything in an agent runtime talks through one in-process bus: the
//! kernel publishes lifecycle events ([`AstridEvent`]), capsules publish IPC
//! messages ([`IpcMessage`]) on dot-separated topics, and consumers subscribe
//! with plain receivers, topic-filtered receivers, routed (per-principal, fair,
//! budgeted) receivers or synchronous subscribers.
//!
//! The crate keeps the API and JSON wire format of the published
//! `astrid-events` 0.8.0: a 0.8.0 user switches by changing the dependency
//! line (`MIGRATING.md` in the repository lists what is identical and what
//! changed on purpose, with the reason for each change).
//!
//! # A first look
//!
#![cfg_attr(all(feature = "runtime", not(feature = "upstream-types")), doc = "```")]
#![cfg_attr(
    not(all(feature = "runtime", not(feature = "upstream-types"))),
    doc = "```ignore"
)]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use astrid_events::prelude::*;
//! use std::time::Duration;
//!
//! let bus = EventBus::new();
//! let capsule = uuid::Uuid::new_v4();
//! // A routed subscription: its own queue per principal, drained fairly.
//! let mut rx = bus
//!     .subscription("tool.v1.*")
//!     .routed(capsule, "fs-capsule")
//!     .scope(Scope::Principal("alice".into()))
//!     .subscribe();
//! let payload = IpcPayload::Custom { data: serde_json::json!({"path": "/tmp/x"}) };
//! let message = IpcMessage::new("tool.v1.read", payload, capsule).with_principal("alice");
//! bus.publish(AstridEvent::Ipc { metadata: EventMetadata::new("kernel"), message });
//! let event = rx.recv(Some(Duration::from_secs(1))).await.expect("delivered");
//! assert_eq!(event.event_type(), "ipc");
//! assert_eq!(rx.drain_lagged(), 0); // nothing was dropped for this receiver
//! # }
//! ```
//!
//! # Subscribers
//!
//! Every receiver comes from one builder ([`EventBus::subscription`],
//! [`EventBus::subscription_all`]); the 0.8.0 `subscribe*` methods are thin
//! wrappers over it.
//!
//! | kind | gets | when it falls behind |
//! |---|---|---|
//! | plain: `subscription_all()` (0.8.0 `subscribe`) | every event | oldest skipped, counted in `drain_lagged` |
//! | topic: `subscription(pattern)` (0.8.0 `subscribe_topic`) | IPC events whose topic matches, through the topic index | own bounded queue; oldest dropped, counted by topic |
//! | routed: `.routed(capsule, label)` (0.8.0 `subscribe_topic_routed`) | matching IPC events inside its [`Scope`], a FIFO per principal, deficit round-robin across principals | byte budget of what it keeps alive; oldest evicted, counted |
//! | lossless routed: `.routed(..).lossless()` | as routed, never evicts | `publish` drops and counts; [`EventBus::reserve`], [`EventBus::reserve_batch`] and the `publish*_with_backpressure` wrappers wait for room |
//! | gated routed: `.routed(..).gate(&gate)` | as routed, only while its [`Gate`] is published | as routed |
//! | synchronous: [`EventBus::register_subscriber`] | every event, inside `publish` | runs inline |
//!
//! Every drop is counted, exported as a metric ([`metrics`]) and reported to
//! the receiver it was meant for. Publishes from any number of threads form
//! one total order numbered by the IPC `seq`, and every receiver sees its
//! events in that order. Every `recv` is cancel safe: an event is taken only
//! when the future completes.
//!
//! # Authority
//!
//! A route's [`Scope`] bounds whose events it admits, down to one request
//! owner within a principal (`Scope::RequestOwner`, with
//! `IpcMessage::request_owner`; not with `upstream-types`); a [`Gate`]
//! admits a generation of routes only while it is published and hands over
//! to the next generation atomically ([`Gate::replace_with`]); and
//! [`EventBus::reserve`] lets a publisher hold room, re-check its authority
//! and then commit or drop the event ([`PublishPermit`]), or a whole burst
//! at once with [`EventBus::reserve_batch`] ([`BatchPermit`]).
//!
//! # Features
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `runtime` | on | the bus and everything that needs tokio. Without it the crate is the schema types, topic matching and validation, with no tokio in the tree, for `wasm32-wasip1` guests |
//! | `stream` | off | receivers as `futures_core::Stream` (`EventReceiver::into_stream`, `RoutedEventReceiver::into_stream`); adds `futures-core` and `tokio-util` |
//! | `upstream-types` | off | type identity with the Astrid runtime: `ipc` and `llm` are `astrid-types` 0.8.0's modules and `kernel_api` is `astrid-core` 0.8.0's, as in the published 0.8.0; `IpcMessage`'s `Debug` is then the runtime's, which prints payload content, and it has no `request_owner` (no `Scope::RequestOwner`) |
//!
//! # Modules
//!
//! Schema (always built): the event taxonomy ([`AstridEvent`],
//! [`EventMetadata`]), [`ipc`] and [`llm`] payloads, [`ipc_json`] (direct
//! JSON reader and writer), [`timestamp`], topic matching
//! ([`topic_pattern_matches`], [`TopicMatcher`]) and [`validate`].
//! Runtime (`runtime`): [`EventBus`] and its receivers, the subscription
//! builder ([`subscription`]), [`rate_limiter`], [`monitor`] and [`metrics`]
//! (every metric name).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(unreachable_pub)]
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

// The crate's two halves are two folders. `schema/` is always built: what
// an event is (taxonomy, IPC and LLM payloads, JSON fast paths, timestamps,
// topic matching, validation), with no tokio, for capsules and wasm guests.
// `runtime/` is the `runtime` feature: the bus and everything that moves
// events (receivers, topic index, routed subscriptions, retention,
// synchronous subscribers, rate limiting, monitoring, metrics). The public
// paths are the same as 0.8.0's: modules are re-exported at the root below.
mod schema;

#[cfg(feature = "runtime")]
mod runtime;

pub mod prelude;

#[cfg(feature = "upstream-types")]
pub use astrid_core::kernel_api;
#[cfg(feature = "upstream-types")]
pub use astrid_types::llm;
#[cfg(feature = "runtime")]
pub use runtime::{metrics, monitor, rate_limiter, subscription};
#[cfg(not(feature = "upstream-types"))]
pub use schema::llm;
pub use schema::{ipc, ipc_json, timestamp, validate};

pub use ipc::{IpcMessage, IpcPayload};
#[cfg(feature = "runtime")]
pub use rate_limiter::IpcRateLimiter;
pub use schema::event::{AstridEvent, EventMetadata};
pub use schema::topic::{TopicMatcher, topic_pattern_matches};

#[cfg(feature = "runtime")]
pub use metrics::{
    METRIC_ROUTE_ACTIVE_PRINCIPALS, METRIC_ROUTE_BUDGET_BYTES_IN_USE,
    METRIC_ROUTE_BYTE_EVICTIONS_TOTAL, METRIC_ROUTE_QUANTUM_STARVED_TOTAL,
};
#[cfg(feature = "runtime")]
pub use monitor::{BusMonitor, MonitorRecorder, MonitorSnapshot};
#[cfg(feature = "runtime")]
pub use runtime::bus::{DEFAULT_CHANNEL_CAPACITY, EventBus, EventBusBuilder};
#[cfg(feature = "runtime")]
pub use runtime::error::{BatchPublishError, PublishError, SubscribeError};
#[cfg(feature = "runtime")]
pub use runtime::gate::{Gate, GateError, GateState};
#[cfg(feature = "runtime")]
pub use runtime::permit::{BatchPermit, PublishPermit};
#[cfg(feature = "runtime")]
pub use runtime::receiver::{EventReceiver, LAG_OTHER_TOPICS, LAG_TOPICS_TRACKED};
#[cfg(feature = "runtime")]
pub use runtime::retain::RetentionPolicy;
#[cfg(feature = "runtime")]
pub use runtime::routed::{
    DRR_QUANTUM_MIN_BYTES, MAX_SUBSCRIPTION_BUDGET_BYTES, PrincipalKey,
    ROUTED_EVENT_OVERHEAD_BYTES, RouteKey, RoutedEventReceiver, ipc_size_of, principal_class_label,
};
#[cfg(feature = "runtime")]
pub use runtime::scope::Scope;
#[cfg(feature = "stream")]
pub use runtime::stream::{EventStream, RoutedEventStream};
#[cfg(feature = "runtime")]
pub use runtime::sync_sub::{EventSubscriber, MAX_SYNC_DISPATCH_DEPTH, SubscriberId};
#[cfg(feature = "runtime")]
pub use subscription::Subscription;

// The package README's example runs as a doctest, so the front page of the
// crate on crates.io cannot drift from the API.
#[cfg(all(doctest, feature = "runtime", not(feature = "upstream-types")))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
