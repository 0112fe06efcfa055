//! The bridge between a local [`EventBus`](astrid_events::EventBus) and NATS.
//!
//! # Export
//!
//! The exporter takes the local IPC events whose topic matches an export
//! pattern through the bus's topic index (one topic receiver per pattern,
//! merged back into `seq` order; see the `feed` module), encodes each by
//! [`wire::encode`](crate::wire::encode) and publishes it on
//! `<prefix>.<encoded topic>`, in `seq` order. With a
//! [`NodeSigner`](crate::NodeSigner), the core messages it sends together
//! (up to [`merkle::MAX_LEAVES`](crate::merkle::MAX_LEAVES)) are signed with
//! one signature, in the exporter task, just before they go (see
//! [`sign`](crate::sign)); durable ones one by one. Lifecycle (non-IPC) events are exported only
//! with [`BridgeBuilder::export_lifecycle`], on
//! [`lifecycle_subject`](crate::subject::lifecycle_subject). Encoded messages wait in
//! an outbound buffer bounded in bytes while NATS is not connected; a message
//! that does not fit is dropped and counted in
//! [`BridgeStats::dropped_buffer_full`].
//!
//! # Import
//!
//! One NATS subscription per import pattern. What one read of them yields
//! (up to 64 messages) is decided message by message in arrival order, and
//! what passes is published into the local bus as one batch
//! (`EventBus::publish_batch`: one lock, one wakeup per receiver). A message
//! is published into the local bus only if it decodes, is an IPC event whose topic equals the topic
//! of its subject and matches the import pattern under the bus's own rules,
//! was not exported by this node, passes the signature policy (signed
//! messages must verify under a trusted key, over the whole message, see
//! [`sign`](crate::sign); unsigned ones are rejected unless
//! [`BridgeBuilder::allow_unsigned`] is set) and is not a replay (see
//! [`replay`](crate::replay)). The decision is one pure function, see the
//! `import` module.
//!
//! # Echo suppression
//!
//! * The NATS connection is opened with `no_echo`, and messages whose
//!   `Astrid-Origin-Node` header is this node's id are dropped on import.
//! * An imported event keeps its event id; the importer records the id before
//!   publishing it locally and the exporter skips (and forgets) any event
//!   carrying a recorded id, so an imported event is never re-exported. The
//!   record is bounded ([`IMPORTED_IDS_CAPACITY`]).
//!
//! # Durable topics and loss accounting
//!
//! Topics matching a durable pattern go through JetStream, see the
//! [`durable`](mod@crate::durable) module. Core traffic is at-most-once; what it
//! loses in transit is counted by the importer in
//! [`BridgeStats::lost_in_transit`], see the [`link`](mod@crate::link) module.
//!
//! # Metrics
//!
//! Every count in [`BridgeStats`] (but the buffer gauges) is also the counter
//! `astrid_nats_bridge_events_total{outcome}`, outcome being the field name
//! in the singular (`exported`, `imported`, `dropped_buffer_full`,
//! `export_lagged`, `lost_in_transit`, `rejected_signature`, ...). The handles
//! are taken when the bridge starts: install the recorder before.

mod builder;
mod connection;
mod error;
mod export;
mod feed;
mod handle;
mod ids;
mod import;
mod import_loop;
mod outbound;
mod poison;
mod shared;
mod stats;

pub use builder::{BridgeBuilder, round_trip};
pub use error::{ShutdownError, StartError};
pub use handle::Bridge;
pub use poison::MAX_RECOVERY_SCAN;
pub use stats::BridgeStats;

/// How many imported event ids are remembered for echo suppression.
pub const IMPORTED_IDS_CAPACITY: usize = 65_536;

/// Default bound of the outbound buffer (8 MiB).
pub const DEFAULT_MAX_OUTBOUND_BYTES: usize = 8 * 1024 * 1024;

/// Default subject prefix.
pub const DEFAULT_PREFIX: &str = "astrid";

/// Locks `m`, ignoring poisoning (no invariant spans a panic).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
