//! Routed subscriptions: the guest (capsule) side of the bus.
//!
//! Every routed subscription gets its own copy of each matching IPC event,
//! queued per publishing principal and handed out by deficit round-robin
//! inside a byte budget, so no principal can starve another and a flood
//! costs bounded memory. Nothing is lost without a record: every event a
//! route drops is counted, reported to its receiver by
//! [`RoutedEventReceiver::drain_lagged`], logged and counted in the route
//! metrics.
//!
//! - `queue.rs`: the single-threaded DRR + budget state machine, and what
//!   its per-event and per-principal charges cover.
//! - `route.rs`: one subscription's shared state (lock, wakeups, metrics) and
//!   its receiver handle.
//!
//! # The byte budget
//!
//! A route charges what it really keeps alive: each queued event the bytes
//! it holds (the shared event allocation and every string, vector and map
//! inside it, see `held.rs`) plus [`ROUTED_EVENT_OVERHEAD_BYTES`], and each
//! principal with queued events its name twice plus a bound on its share of
//! the per-principal containers. The charge of an event is computed once
//! per publish and carried to every matching route. When the total would
//! pass [`MAX_SUBSCRIPTION_BUDGET_BYTES`], the oldest events of the route
//! are evicted (and counted); an event that cannot fit even in an empty
//! route is rejected (and counted). The DRR quantum is in the same charged
//! bytes. [`ipc_size_of`] (payload JSON plus topic) keeps its 0.8.0 meaning
//! and is what [`RoutedEventReceiver::try_drain`] budgets in.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use astrid_events::{AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload};
//!
//! let bus = EventBus::new();
//! let capsule = uuid::Uuid::new_v4();
//! let mut rx = bus.subscribe_topic_routed(capsule, "tool.v1.*", "fs-capsule", "fs");
//! let message = IpcMessage::new("tool.v1.read", IpcPayload::Custom { data: serde_json::json!({}) }, capsule)
//!     .with_principal("user-1");
//! bus.publish(AstridEvent::Ipc { metadata: EventMetadata::new("doc"), message });
//! let event = rx.recv(Some(Duration::from_secs(1))).await.expect("delivered");
//! assert_eq!(rx.drain_lagged(), 0);
//! # let _ = event;
//! # });
//! ```

mod queue;
mod route;

pub use route::RoutedEventReceiver;
pub(crate) use route::{Offer, Offered, Reservation, Route};

use std::sync::Arc;

use uuid::Uuid;

use crate::ipc::IpcMessage;
use crate::schema::event::AstridEvent;
use crate::schema::payload_ext::IpcPayloadExt;

/// The principal an event is published for: `None` is the system (kernel).
pub type PrincipalKey = Option<String>;

/// Most charged bytes one routed subscription holds before it evicts.
///
/// The charge is the memory the route keeps alive: each queued event is
/// charged the bytes it holds (its shared allocation and every string,
/// vector and map inside it: `metadata.source`, topic, principal,
/// signature, payload) plus [`ROUTED_EVENT_OVERHEAD_BYTES`]; each principal
/// with queued events is charged its name twice plus about 650 bytes for its
/// share of the per-principal bookkeeping. An event shared by several routes
/// is charged in full by each. When a publish would pass the budget, the
/// route's oldest events are evicted; an event that cannot fit even in an
/// empty route is rejected. Both are counted and reported by
/// [`RoutedEventReceiver::drain_lagged`]. The memory a route holds beyond
/// the budget is a fixed few KiB.
pub const MAX_SUBSCRIPTION_BUDGET_BYTES: usize = 1024 * 1024;

/// The DRR quantum: charged bytes each active principal may take per round.
pub const DRR_QUANTUM_MIN_BYTES: usize = 4 * 1024;

/// Charge added to every queued event on top of the bytes it holds: its
/// place in the route's queue (at most four queue places of 32 bytes).
pub const ROUTED_EVENT_OVERHEAD_BYTES: usize = 128;

/// What one IPC event costs a route, computed once per publish and carried
/// to every matching route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventCharge {
    /// Held bytes plus [`ROUTED_EVENT_OVERHEAD_BYTES`]: what the budget and
    /// the DRR deficits count.
    pub(crate) charge: u64,
    /// [`ipc_size_of`]: what `try_drain` budgets in.
    pub(crate) size: u64,
}

impl EventCharge {
    /// The charge of `message`, whose event holds `held` bytes.
    pub(crate) fn new(held: usize, message: &IpcMessage) -> Self {
        Self {
            charge: (held as u64).saturating_add(ROUTED_EVENT_OVERHEAD_BYTES as u64),
            size: ipc_message_size(message) as u64,
        }
    }
}

/// Size accounted for a non-IPC event.
const NON_IPC_SIZE: usize = 64;

/// Identity of one routed subscription.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteKey {
    /// The subscribing capsule.
    pub capsule_uuid: Uuid,
    /// The topic pattern subscribed to.
    pub topic_pattern: String,
    /// Unique per subscription (shared by all clones of the bus), so two
    /// subscriptions with the same capsule and pattern are distinct routes.
    pub subscription_rep: u64,
}

/// The size an event is accounted at: for IPC, the payload's guest bytes plus
/// the topic length in bytes; 64 for any other event.
///
/// A payload that cannot be serialized (a non-object `RawJson`) is sized by
/// its guest bytes, which always serialize.
#[must_use]
pub fn ipc_size_of(event: &Arc<AstridEvent>) -> usize {
    accounted_size(event)
}

/// [`ipc_size_of`] for a borrowed event.
pub(crate) fn accounted_size(event: &AstridEvent) -> usize {
    match event {
        AstridEvent::Ipc { message, .. } => ipc_message_size(message),
        _ => NON_IPC_SIZE,
    }
}

/// [`ipc_size_of`] of an IPC event's message.
fn ipc_message_size(message: &IpcMessage) -> usize {
    message
        .payload
        .guest_len()
        .saturating_add(message.topic.len())
}

/// Bounded metric label for a principal: `system` for `None`, `agent` for
/// principals starting with `agent.` or `agent:`, `user` otherwise.
#[must_use]
pub fn principal_class_label(principal: Option<&str>) -> &'static str {
    match principal {
        None => "system",
        Some(p) if p.starts_with("agent.") || p.starts_with("agent:") => "agent",
        Some(_) => "user",
    }
}

/// Index of a principal class in per-class metric arrays.
fn class_index(principal: Option<&str>) -> usize {
    match principal_class_label(principal) {
        "system" => 0,
        "agent" => 1,
        _ => 2,
    }
}

const CLASSES: [&str; 3] = ["system", "agent", "user"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_classes() {
        assert_eq!(principal_class_label(None), "system");
        assert_eq!(principal_class_label(Some("agent.scout")), "agent");
        assert_eq!(principal_class_label(Some("agent:7")), "agent");
        assert_eq!(principal_class_label(Some("agentx")), "user");
        assert_eq!(principal_class_label(Some("")), "user");
        for (i, c) in CLASSES.iter().enumerate() {
            let sample = match *c {
                "system" => None,
                "agent" => Some("agent.x"),
                _ => Some("u"),
            };
            assert_eq!(class_index(sample), i);
        }
    }
}
