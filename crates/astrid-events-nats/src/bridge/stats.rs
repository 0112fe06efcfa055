//! The bridge's counters: [`BridgeStats`] (the snapshot callers read) and
//! the per-outcome tallies behind it, each also a metric
//! (`astrid_nats_bridge_events_total{outcome}`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of a running bridge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeStats {
    /// Events handed to NATS.
    pub exported: u64,
    /// Events published into the local bus from NATS.
    pub imported: u64,
    /// Exports dropped because the outbound buffer was full.
    pub dropped_buffer_full: u64,
    /// Imports rejected by the signature policy.
    pub rejected_signature: u64,
    /// Verified core imports already delivered (replays), not published
    /// again (see [`replay`](mod@crate::replay); durable ones count in
    /// `duplicates_suppressed`).
    pub rejected_replay: u64,
    /// Imports rejected as outside the replay window (see
    /// [`replay`](mod@crate::replay)).
    pub rejected_stale: u64,
    /// Imports rejected as malformed (subject, headers, JSON, topic).
    pub rejected_malformed: u64,
    /// Imports or exports skipped as echoes of this node's traffic.
    pub echo_suppressed: u64,
    /// Imported non-IPC events, ignored.
    pub ignored_non_ipc: u64,
    /// Events that could not be encoded or signed for export.
    pub export_errors: u64,
    /// NATS publish calls that failed.
    pub publish_errors: u64,
    /// Local events the exporter missed because its bus receiver lagged.
    pub export_lagged: u64,
    /// Messages waiting in the outbound buffer now (a gauge).
    pub outbound_buffered: u64,
    /// Bytes charged to the outbound buffer now (a gauge): waiting messages
    /// and durable exports still waiting for their publish ack.
    pub outbound_buffered_bytes: u64,
    /// Core messages the importer found missing in transit (gaps in the
    /// exporter's per-subject sequence; see [`link`](mod@crate::link)).
    pub lost_in_transit: u64,
    /// Durable exports the stream reported as duplicates (a re-sent copy of
    /// a message it had already stored).
    pub durable_duplicates: u64,
    /// Durable exports re-queued after a failed or timed-out publish ack.
    pub durable_retries: u64,
    /// Durable redeliveries of already imported events, not published again.
    pub duplicates_suppressed: u64,
    /// Durable messages whose topic matches no import pattern (acked, not
    /// published).
    pub ignored_not_imported: u64,
    /// Durable import acks or pull requests that failed (and failed reads,
    /// dead-letter publishes and terminations of poison messages).
    pub durable_errors: u64,
    /// Durable messages terminated because this bridge can never import
    /// them (unreadable by the client, malformed, or failing the signature
    /// policy); each is also counted under its reason (`rejected_malformed`
    /// or `rejected_signature`). See the `bridge/poison.rs` docs.
    pub poison_terminated: u64,
    /// Times the NATS connection was lost (see the `connection` module:
    /// each is also a warning in the log).
    pub disconnects: u64,
    /// Poison messages republished on the dead-letter subject.
    pub dead_lettered: u64,
}

/// One outcome: its count for [`Bridge::stats`](super::Bridge::stats) and its metric handle,
/// bound once (counting is then an atomic add, not a registry lookup per
/// event; the recorder must be installed before the bridge starts).
pub(super) struct Tally {
    pub(super) n: AtomicU64,
    pub(super) metric: metrics::Counter,
}

impl Tally {
    pub(super) fn new(outcome: &'static str) -> Self {
        Self {
            n: AtomicU64::new(0),
            metric: metrics::counter!(crate::metrics::METRIC_BRIDGE_EVENTS_TOTAL, "outcome" => outcome),
        }
    }

    pub(super) fn add(&self, k: u64) {
        self.n.fetch_add(k, Ordering::Relaxed);
        self.metric.increment(k);
    }

    pub(super) fn bump(&self) {
        self.add(1);
    }

    pub(super) fn get(&self) -> u64 {
        self.n.load(Ordering::Relaxed)
    }
}

pub(super) struct Counters {
    pub(super) exported: Tally,
    pub(super) imported: Tally,
    pub(super) dropped_buffer_full: Tally,
    pub(super) rejected_signature: Tally,
    pub(super) rejected_replay: Tally,
    pub(super) rejected_stale: Tally,
    pub(super) rejected_malformed: Tally,
    pub(super) echo_suppressed: Tally,
    pub(super) ignored_non_ipc: Tally,
    pub(super) export_errors: Tally,
    pub(super) publish_errors: Tally,
    pub(super) export_lagged: Tally,
    pub(super) lost_in_transit: Tally,
    pub(super) durable_duplicates: Tally,
    pub(super) durable_retries: Tally,
    pub(super) duplicates_suppressed: Tally,
    pub(super) ignored_not_imported: Tally,
    pub(super) durable_errors: Tally,
    pub(super) poison_terminated: Tally,
    pub(super) disconnects: Tally,
    pub(super) dead_lettered: Tally,
}

impl Counters {
    pub(super) fn new() -> Self {
        Self {
            exported: Tally::new("exported"),
            imported: Tally::new("imported"),
            dropped_buffer_full: Tally::new("dropped_buffer_full"),
            rejected_signature: Tally::new("rejected_signature"),
            rejected_replay: Tally::new("rejected_replay"),
            rejected_stale: Tally::new("rejected_stale"),
            rejected_malformed: Tally::new("rejected_malformed"),
            echo_suppressed: Tally::new("echo_suppressed"),
            ignored_non_ipc: Tally::new("ignored_non_ipc"),
            export_errors: Tally::new("export_error"),
            publish_errors: Tally::new("publish_error"),
            export_lagged: Tally::new("export_lagged"),
            lost_in_transit: Tally::new("lost_in_transit"),
            durable_duplicates: Tally::new("durable_duplicate"),
            durable_retries: Tally::new("durable_retry"),
            duplicates_suppressed: Tally::new("duplicate_suppressed"),
            ignored_not_imported: Tally::new("ignored_not_imported"),
            durable_errors: Tally::new("durable_error"),
            poison_terminated: Tally::new("poison_terminated"),
            disconnects: Tally::new("disconnect"),
            dead_lettered: Tally::new("dead_lettered"),
        }
    }

    pub(super) fn snapshot(&self) -> BridgeStats {
        BridgeStats {
            exported: self.exported.get(),
            imported: self.imported.get(),
            dropped_buffer_full: self.dropped_buffer_full.get(),
            rejected_signature: self.rejected_signature.get(),
            rejected_replay: self.rejected_replay.get(),
            rejected_stale: self.rejected_stale.get(),
            rejected_malformed: self.rejected_malformed.get(),
            echo_suppressed: self.echo_suppressed.get(),
            ignored_non_ipc: self.ignored_non_ipc.get(),
            export_errors: self.export_errors.get(),
            publish_errors: self.publish_errors.get(),
            export_lagged: self.export_lagged.get(),
            outbound_buffered: 0,
            outbound_buffered_bytes: 0,
            lost_in_transit: self.lost_in_transit.get(),
            durable_duplicates: self.durable_duplicates.get(),
            durable_retries: self.durable_retries.get(),
            duplicates_suppressed: self.duplicates_suppressed.get(),
            ignored_not_imported: self.ignored_not_imported.get(),
            durable_errors: self.durable_errors.get(),
            poison_terminated: self.poison_terminated.get(),
            disconnects: self.disconnects.get(),
            dead_lettered: self.dead_lettered.get(),
        }
    }
}
