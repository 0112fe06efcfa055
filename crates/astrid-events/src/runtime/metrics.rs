//! Metric names: every metric the bus emits, in one place.
//!
//! Metrics go through the [`metrics`](https://docs.rs/metrics) facade, so
//! they cost next to nothing until the program installs a recorder (the CLI
//! installs a Prometheus exporter). The 0.8.0 names are kept so existing
//! dashboards work; new metrics join the same families. Every label has a
//! bounded set of values: `event_kind` is an `event_type()` string (a fixed
//! set), `subscriber` is a `&'static str` chosen by the program, `capsule` is
//! the capsule label given at subscription, `principal_class` is one of
//! `system`, `agent`, `user`, and `reason` is one of the `DROP_*` constants.

/// Counter: events published, by `event_kind`.
pub const METRIC_BUS_EVENTS_PUBLISHED_TOTAL: &str = "astrid_bus_events_published_total";
/// Counter: events a plain or topic receiver lost to overflow, by `subscriber`
/// (`untagged` for receivers made without a name).
pub const METRIC_BUS_RECEIVER_LAGGED_TOTAL: &str = "astrid_bus_receiver_lagged_total";
/// Counter: synchronous subscriber calls that panicked, by `subscriber`.
pub const METRIC_BUS_SUBSCRIBER_PANICS_TOTAL: &str = "astrid_bus_subscriber_panics_total";
/// Counter: events not handed to synchronous subscribers because publishing
/// recursed deeper than the dispatch depth limit.
pub const METRIC_BUS_SYNC_DEPTH_DROPPED_TOTAL: &str = "astrid_bus_sync_depth_dropped_total";
/// Counter: routed events dropped because the route's byte budget was full
/// (oldest evicted), by `capsule`, `principal_class`.
pub const METRIC_ROUTE_BYTE_EVICTIONS_TOTAL: &str = "astrid_capsule_route_byte_evictions_total";
/// Counter: DRR visits that ended with the head event larger than the
/// principal's remaining deficit, by `capsule`, `principal_class`.
pub const METRIC_ROUTE_QUANTUM_STARVED_TOTAL: &str = "astrid_capsule_route_quantum_starved_total";
/// Gauge: principals with queued events, by `capsule`, `principal_class`.
pub const METRIC_ROUTE_ACTIVE_PRINCIPALS: &str = "astrid_capsule_route_active_principals";
/// Gauge: charged bytes queued in routes, by `capsule`, `principal_class`.
pub const METRIC_ROUTE_BUDGET_BYTES_IN_USE: &str = "astrid_capsule_route_budget_bytes_in_use";
/// Counter: routed events dropped for a reason other than eviction, by
/// `capsule`, `principal_class`, `reason` (`oversize`, `lossless_full`).
pub const METRIC_ROUTE_DROPPED_TOTAL: &str = "astrid_capsule_route_dropped_total";

/// Counter: retained events evicted (least recently published first) to
/// stay within the retention policy's bounds.
pub const METRIC_BUS_RETAINED_EVICTIONS_TOTAL: &str = "astrid_bus_retained_evictions_total";

/// The name of the bucket that sums everything not tracked by name, wherever
/// a count is bounded in names (lag by topic, the monitor's top topics, lag
/// and eviction tables).
pub const OTHER_LABEL: &str = "<other>";

/// Label value of [`METRIC_BUS_RECEIVER_LAGGED_TOTAL`] for unnamed receivers.
pub const UNTAGGED_SUBSCRIBER: &str = "untagged";
/// `reason` label: a single event larger than the whole route budget.
pub const DROP_OVERSIZE: &str = "oversize";
/// `reason` label: a lossless route was full on a plain `publish`.
pub const DROP_LOSSLESS_FULL: &str = "lossless_full";

/// Registers the help text and unit of every metric above with the
/// installed recorder, so an exporter can print them (Prometheus `# HELP`).
///
/// Call it once, after installing the recorder (a recorder installed later
/// does not see the descriptions); without a recorder it does nothing.
///
/// ```
/// // After e.g. `metrics_exporter_prometheus::PrometheusBuilder::new().install()`:
/// astrid_events::metrics::describe();
/// ```
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(
        METRIC_BUS_EVENTS_PUBLISHED_TOTAL,
        Unit::Count,
        "Events published on the bus, by event_kind."
    );
    describe_counter!(
        METRIC_BUS_RECEIVER_LAGGED_TOTAL,
        Unit::Count,
        "Events a plain or topic receiver lost to overflow, by subscriber."
    );
    describe_counter!(
        METRIC_BUS_SUBSCRIBER_PANICS_TOTAL,
        Unit::Count,
        "Synchronous subscriber calls that panicked, by subscriber."
    );
    describe_counter!(
        METRIC_BUS_SYNC_DEPTH_DROPPED_TOTAL,
        Unit::Count,
        "Events not handed to synchronous subscribers: publishing recursed past the depth limit."
    );
    describe_counter!(
        METRIC_ROUTE_BYTE_EVICTIONS_TOTAL,
        Unit::Count,
        "Routed events evicted (oldest first) because the route's byte budget was full, by capsule and principal_class."
    );
    describe_counter!(
        METRIC_ROUTE_QUANTUM_STARVED_TOTAL,
        Unit::Count,
        "Deficit round-robin visits that ended with the head event larger than the principal's deficit, by capsule and principal_class."
    );
    describe_gauge!(
        METRIC_ROUTE_ACTIVE_PRINCIPALS,
        Unit::Count,
        "Principals with queued events in routes, by capsule and principal_class."
    );
    describe_gauge!(
        METRIC_ROUTE_BUDGET_BYTES_IN_USE,
        Unit::Bytes,
        "Charged bytes queued in routes, by capsule and principal_class."
    );
    describe_counter!(
        METRIC_ROUTE_DROPPED_TOTAL,
        Unit::Count,
        "Routed events dropped for a reason other than eviction (oversize, lossless_full), by capsule, principal_class and reason."
    );
    describe_counter!(
        METRIC_BUS_RETAINED_EVICTIONS_TOTAL,
        Unit::Count,
        "Retained events evicted (least recently published first) to stay within the retention policy's bounds."
    );
}
