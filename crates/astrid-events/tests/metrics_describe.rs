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
