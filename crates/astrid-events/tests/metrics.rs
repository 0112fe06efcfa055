//! The bus's metrics, read back through an in-memory recorder: names keep
//! their 0.8.0 spelling, counters match what receivers were told, and gauges
//! return to zero when queues empty (no drift through eviction).
#![cfg(feature = "runtime")]

mod common;

use astrid_events::EventBus;
use astrid_events::metrics::{
    METRIC_BUS_EVENTS_PUBLISHED_TOTAL, METRIC_BUS_RECEIVER_LAGGED_TOTAL,
    METRIC_ROUTE_ACTIVE_PRINCIPALS, METRIC_ROUTE_BUDGET_BYTES_IN_USE,
    METRIC_ROUTE_BYTE_EVICTIONS_TOTAL,
};
use common::events::{ipc, lifecycle};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Running totals of everything recorded. The debugging recorder resets
/// counters and gauges on each snapshot, so adding snapshots up gives the
/// cumulative counter values and the current gauge values.
struct Totals {
    snapshotter: Snapshotter,
    series: Vec<Series>,
}

/// A metric name, its labels and its running total.
type Series = (String, Vec<(String, String)>, f64);

impl Totals {
    fn new(snapshotter: Snapshotter) -> Self {
        Self {
            snapshotter,
            series: Vec::new(),
        }
    }

    /// Sum of `name` over the series whose labels include `labels`.
    fn sum(&mut self, name: &str, labels: &[(&str, &str)]) -> f64 {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let value = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(h) => h.len() as f64,
            };
            let key_name = key.key().name().to_owned();
            let key_labels: Vec<(String, String)> = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            match self
                .series
                .iter_mut()
                .find(|(n, l, _)| *n == key_name && *l == key_labels)
            {
                Some((_, _, total)) => *total += value,
                None => self.series.push((key_name, key_labels, value)),
            }
        }
        self.series
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, total)| total)
            .sum()
    }
}

#[test]
fn route_metrics_account_for_every_eviction_and_return_to_zero() {
    let recorder = DebuggingRecorder::new();
    let mut totals = Totals::new(recorder.snapshotter());
    metrics::with_local_recorder(&recorder, || {
        let bus = EventBus::new();
        let mut rx = bus.subscribe_topic_routed(uuid::Uuid::nil(), "t.*", "cap-m", "m");
        for i in 0..3_000 {
            let principal = if i % 3 == 0 { "agent.a" } else { "user-b" };
            bus.publish(ipc("t.x", Some(principal), 1_000));
        }
        bus.publish(ipc("t.x", None, 10));
        let capsule = [("capsule", "cap-m")];
        assert!(totals.sum(METRIC_ROUTE_BUDGET_BYTES_IN_USE, &capsule) > 0.0);
        assert_eq!(totals.sum(METRIC_ROUTE_ACTIVE_PRINCIPALS, &capsule), 3.0);
        let mut received = 0u64;
        while rx.try_recv_one().is_some() {
            received += 1;
        }
        let lagged = rx.drain_lagged();
        assert_eq!(received + lagged, 3_001);
        assert_eq!(
            totals.sum(METRIC_ROUTE_BYTE_EVICTIONS_TOTAL, &capsule),
            lagged as f64
        );
        assert_eq!(totals.sum(METRIC_ROUTE_BUDGET_BYTES_IN_USE, &capsule), 0.0);
        assert_eq!(totals.sum(METRIC_ROUTE_ACTIVE_PRINCIPALS, &capsule), 0.0);
        for class in ["system", "agent", "user"] {
            let labels = [("capsule", "cap-m"), ("principal_class", class)];
            assert_eq!(
                totals.sum(METRIC_ROUTE_BUDGET_BYTES_IN_USE, &labels),
                0.0,
                "{class}"
            );
        }
    });
}

#[test]
fn published_and_lagged_counters_use_the_0_8_0_names_and_labels() {
    assert_eq!(
        METRIC_BUS_EVENTS_PUBLISHED_TOTAL,
        "astrid_bus_events_published_total"
    );
    assert_eq!(
        METRIC_BUS_RECEIVER_LAGGED_TOTAL,
        "astrid_bus_receiver_lagged_total"
    );
    let recorder = DebuggingRecorder::new();
    let mut totals = Totals::new(recorder.snapshotter());
    metrics::with_local_recorder(&recorder, || {
        let bus = EventBus::with_capacity(4);
        let mut named = bus.subscribe_topic_as("t.*", "named-topic");
        let mut plain = bus.subscribe();
        for _ in 0..10 {
            bus.publish(ipc("t.x", None, 1));
        }
        bus.publish(lifecycle());
        while plain.try_recv().is_some() {}
        let ipc_kind = [("event_kind", "ipc")];
        assert_eq!(
            totals.sum(METRIC_BUS_EVENTS_PUBLISHED_TOTAL, &ipc_kind),
            10.0
        );
        let kind = [("event_kind", "astrid.v1.lifecycle.runtime_started")];
        assert_eq!(totals.sum(METRIC_BUS_EVENTS_PUBLISHED_TOTAL, &kind), 1.0);
        let lag = named.drain_lagged();
        assert_eq!(lag, 6);
        let by_name = [("subscriber", "named-topic")];
        assert_eq!(totals.sum(METRIC_BUS_RECEIVER_LAGGED_TOTAL, &by_name), 6.0);
        let untagged = [("subscriber", "untagged")];
        assert_eq!(
            totals.sum(METRIC_BUS_RECEIVER_LAGGED_TOTAL, &untagged),
            plain.drain_lagged() as f64
        );
    });
}
