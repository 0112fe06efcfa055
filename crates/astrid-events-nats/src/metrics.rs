//! Metric names of the bridge, and their help texts.
//!
//! One counter family: every outcome the bridge counts in
//! [`BridgeStats`](crate::BridgeStats) is also
//! [`METRIC_BRIDGE_EVENTS_TOTAL`] with an `outcome` label (a fixed set:
//! `exported`, `imported`, `rejected_signature`, `disconnect`, ...).

/// Counter: events and connection incidents of every bridge in the
/// process, by `outcome`.
pub const METRIC_BRIDGE_EVENTS_TOTAL: &str = "astrid_nats_bridge_events_total";

/// Registers the help text of every metric above with the installed
/// recorder (Prometheus `# HELP`). Call it once, after installing the
/// recorder; without one it does nothing.
///
/// ```
/// // After installing a recorder (e.g. a Prometheus exporter):
/// astrid_events_nats::metrics::describe();
/// ```
pub fn describe() {
    metrics::describe_counter!(
        METRIC_BRIDGE_EVENTS_TOTAL,
        metrics::Unit::Count,
        "Events and incidents of the NATS bridge, by outcome (exported, imported, rejected_*, disconnect, ...)."
    );
}
