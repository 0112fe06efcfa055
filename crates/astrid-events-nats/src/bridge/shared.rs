//! The state the bridge's tasks share: configuration, counters, id records,
//! link tracker and outbound buffer.

use astrid_events::{EventBus, topic_pattern_matches};
use tokio::sync::Notify;

use super::ids::ImportedIds;
use super::outbound::{Outbound, Outgoing};
use super::stats::Counters;
use crate::link::LinkTracker;
use crate::sign::{NodeSigner, TrustedKeys};

pub(super) struct Shared {
    pub(super) bus: EventBus,
    pub(super) node_id: String,
    pub(super) prefix: String,
    pub(super) export: Vec<String>,
    pub(super) import: Vec<String>,
    pub(super) export_lifecycle: bool,
    pub(super) signer: Option<NodeSigner>,
    pub(super) trusted: TrustedKeys,
    pub(super) allow_unsigned: bool,
    /// Durable topic patterns.
    pub(super) durable: Vec<String>,
    /// Whether durable topics are imported through the consumer (and so
    /// skipped by the core subscriptions).
    pub(super) durable_import: bool,
    pub(super) counters: Counters,
    pub(super) imported_ids: std::sync::Mutex<ImportedIds>,
    /// Event ids imported through the durable consumer (redelivery filter).
    pub(super) durable_seen: std::sync::Mutex<ImportedIds>,
    /// Per (origin, subject) sequence of core imports.
    pub(super) links: std::sync::Mutex<LinkTracker>,
    pub(super) outbound: Outbound,
    pub(super) stop: Notify,
}

impl Shared {
    /// Queues encoded exports, counting those the buffer has no room for.
    pub(super) fn queue_exports(&self, msgs: &mut Vec<Outgoing>) {
        let dropped = self.outbound.push_all(msgs);
        if dropped > 0 {
            self.counters.dropped_buffer_full.add(dropped);
        }
    }

    /// Whether `topic` is durable (matches a durable pattern).
    pub(super) fn is_durable(&self, topic: &str) -> bool {
        self.durable.iter().any(|p| topic_pattern_matches(p, topic))
    }
}
