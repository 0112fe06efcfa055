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
//! - `queue.rs`: the single-threaded DRR + budget state machine.
//! - `route.rs`: one subscription's shared state (lock, wakeups, metrics) and
//!   its receiver handle.
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

use crate::event::AstridEvent;
use crate::payload_ext::IpcPayloadExt;

/// The principal an event is published for: `None` is the system (kernel).
pub type PrincipalKey = Option<String>;

/// Most charged bytes one routed subscription holds before it evicts.
pub const MAX_SUBSCRIPTION_BUDGET_BYTES: usize = 1024 * 1024;

/// The DRR quantum: bytes each active principal may take per round.
pub const DRR_QUANTUM_MIN_BYTES: usize = 4 * 1024;

/// Fixed charge added to every queued event on top of [`ipc_size_of`], so a
/// flood of empty events is bounded by the same byte budget.
pub const ROUTED_EVENT_OVERHEAD_BYTES: usize = 64;

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
        AstridEvent::Ipc { message, .. } => {
            let payload = message.payload.guest_len();
            payload.saturating_add(message.topic.len())
        }
        _ => NON_IPC_SIZE,
    }
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
