//! The state the bridge's tasks share: configuration, counters, id records,
//! per-path import state and the outbound buffer.

use std::sync::Mutex;

use astrid_events::{EventBus, topic_pattern_matches};
use tokio::sync::Notify;

use super::ids::ImportedIds;
use super::import::{ImportPolicy, ImportState};
use super::outbound::{Outbound, Outgoing};
use super::stats::Counters;
use crate::sign::NodeSigner;

pub(super) struct Shared {
    pub(super) bus: EventBus,
    /// What the import decision reads (node id and prefix included).
    pub(super) policy: ImportPolicy,
    /// Export patterns.
    pub(super) export: Vec<String>,
    pub(super) export_lifecycle: bool,
    pub(super) signer: Option<NodeSigner>,
    pub(super) counters: Counters,
    /// Ids of imported events, so the exporter skips their echo.
    pub(super) imported_ids: Mutex<ImportedIds>,
    /// Replay guard and link tracker of the core subscriptions (taken only
    /// by the core importer task).
    pub(super) core_state: Mutex<ImportState>,
    /// Replay guard of the durable consumer (taken only by its task).
    pub(super) durable_state: Mutex<ImportState>,
    pub(super) outbound: Outbound,
    pub(super) stop: Notify,
}

impl Shared {
    /// This node's id.
    pub(super) fn node_id(&self) -> &str {
        &self.policy.node_id
    }

    /// Queues encoded exports, counting those the buffer has no room for.
    pub(super) fn queue_exports(&self, msgs: &mut Vec<Outgoing>) {
        let dropped = self.outbound.push_all(msgs);
        if dropped > 0 {
            self.counters.dropped_buffer_full.add(dropped);
        }
    }

    /// Whether `topic` is durable (matches a durable pattern).
    pub(super) fn is_durable(&self, topic: &str) -> bool {
        (self.policy.durable)
            .iter()
            .any(|p| topic_pattern_matches(p, topic))
    }
}
