//! The runtime half of the crate (feature `runtime`): everything that moves
//! events.
//!
//! A publish enters at `bus.rs` (`EventBus`; `checked.rs` for validated
//! `try_publish`), is numbered and handed to every receiver under the lock of
//! `sequencer.rs`: the broadcast channel of plain receivers and the topic
//! queues (`receiver.rs`), found through the topic index (`index.rs`), the
//! routed subscriptions (`routed/`: the per-principal fair queue and its
//! receiver; `scope.rs` says which principals a route admits, `gate.rs` when
//! it admits at all; `held.rs` what an event costs a budget) and the retained store (`retain.rs`); then the
//! synchronous subscribers run (`sync_sub.rs`). Two-phase publish
//! (`permit.rs`) reserves room in lossless routes before a publish.
//! Subscriptions are made by the
//! builder in `subscription.rs`. Beside the path: rate limiting
//! (`rate_limiter.rs`), the bus monitor (`monitor.rs`, over the top-k summary
//! of `space_saving.rs`), metric names (`metrics.rs`), errors (`error.rs`),
//! receivers as streams (`stream.rs`, feature `stream`) and the lock and
//! wakeup types that loom swaps in model checks (`sync.rs`).

pub(crate) mod bus;
pub(crate) mod checked;
pub(crate) mod error;
pub(crate) mod gate;
pub(crate) mod held;
pub(crate) mod index;
pub mod metrics;
pub mod monitor;
pub(crate) mod permit;
pub mod rate_limiter;
pub(crate) mod receiver;
pub(crate) mod retain;
pub(crate) mod routed;
pub(crate) mod scope;
pub(crate) mod sequencer;
pub(crate) mod space_saving;
#[cfg(feature = "stream")]
pub(crate) mod stream;
pub mod subscription;
pub(crate) mod sync;
pub(crate) mod sync_sub;
