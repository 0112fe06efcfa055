//! `metrics::describe()` gives every metric the bus declares a help text
//! of the kind its documentation names (Prometheus `# HELP`). The list of
//! metrics is read from `src/runtime/metrics.rs` itself, so a metric added there
//! without a description fails this test.
#![cfg(feature = "runtime")]

use metrics_util::MetricKind;
use metrics_util::debugging::DebuggingRecorder;

/// `(kind, name)` of every `pub const METRIC_*` in `src/runtime/metrics.rs`, the
/// kind taken from its doc comment's first word (`Counter:` / `Gauge:`).
fn declared() -> Vec<(MetricKind, String)> {
    let source = include_str!("../src/runtime/metrics.rs");
    let mut kind = None;
    let mut out = Vec::new();
    for line in source.lines().map(str::trim) {
        if let Some(doc) = line.strip_prefix("/// ") {
            if doc.starts_with("Counter:") {
                kind = Some(MetricKind::Counter);
            } else if doc.starts_with("Gauge:") {
                kind = Some(MetricKind::Gauge);
            }
        } else if let Some(rest) = line.strip_prefix("pub const METRIC_") {
            let name = rest
                .split('"')
                .nth(1)
                .expect("a metric constant is a string literal");
            let kind = kind.take().expect("its doc comment names its kind");
            out.push((kind, name.to_owned()));
        } else if !line.starts_with("///") {
            kind = None;
        }
    }
    out
}

#[test]
fn every_declared_metric_is_described() {
    let declared = declared();
    assert!(declared.len() >= 10, "parsed {declared:?}");
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        astrid_events::metrics::describe();
        // The recorder reports only metrics that were registered.
        for (kind, name) in &declared {
            match kind {
                MetricKind::Counter => metrics::counter!(name.clone()).increment(0),
                MetricKind::Gauge => metrics::gauge!(name.clone()).set(0.0),
                MetricKind::Histogram => unreachable!("no histogram is declared"),
            }
        }
    });
    let snapshot = snapshotter.snapshot().into_vec();
    for (kind, name) in &declared {
        let (_, _, help, _) = snapshot
            .iter()
            .find(|(key, ..)| key.kind() == *kind && key.key().name() == name)
            .unwrap_or_else(|| panic!("{name} not registered"));
        let help = help.as_deref().unwrap_or_default();
        assert!(help.len() > 10, "{name} ({kind:?}) has no help text");
    }
}

/// The names published before this crate (astrid-events 0.8.0's), kept
/// as they were because dashboards use them, even where they break a
/// Prometheus convention.
const NAMES_OF_0_8_0: [&str; 4] = [
    "astrid_capsule_route_active_principals",
    "astrid_capsule_route_budget_bytes_in_use",
    "astrid_capsule_route_byte_evictions_total",
    "astrid_capsule_route_quantum_starved_total",
];

/// Prometheus naming conventions (<https://prometheus.io/docs/practices/naming/>):
/// snake case under one `astrid_` namespace, counters end in `_total`,
/// gauges do not, and a quantity in a base unit ends in that unit
/// (`_bytes`, or `_bytes_total` for a counter of bytes). Every name added
/// after 0.8.0 follows them; the 0.8.0 names are checked to be exactly the
/// ones that are kept, so no new exception creeps in.
#[test]
fn metric_names_follow_prometheus_conventions() {
    let declared = declared();
    for (kind, name) in &declared {
        assert!(
            name.starts_with("astrid_")
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name}: not snake case under astrid_"
        );
        if NAMES_OF_0_8_0.contains(&name.as_str()) {
            continue;
        }
        match kind {
            MetricKind::Counter => assert!(name.ends_with("_total"), "counter {name}"),
            MetricKind::Gauge => assert!(!name.ends_with("_total"), "gauge {name}"),
            MetricKind::Histogram => unreachable!("no histogram is declared"),
        }
        if name.contains("bytes") {
            assert!(
                name.ends_with("_bytes") || name.ends_with("_bytes_total"),
                "{name}: a byte quantity ends in its unit"
            );
        }
    }
    // The exceptions are 0.8.0's names and nothing else.
    for old in NAMES_OF_0_8_0 {
        assert!(
            declared.iter().any(|(_, n)| n == old),
            "{old} is no longer declared: 0.8.0 dashboards use it"
        );
    }
    let budget = declared
        .iter()
        .find(|(_, n)| n == "astrid_capsule_route_budget_bytes_in_use")
        .map(|(k, _)| *k);
    assert_eq!(budget, Some(MetricKind::Gauge));
}
