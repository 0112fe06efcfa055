//! The demo report: one plain-data struct, rendered as tables or as JSON.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::demo::{Outcome, RUNAWAY};

/// Everything the demo measured, as plain data (the JSON report).
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) seconds: u64,
    pub(crate) capsules: usize,
    pub(crate) principals: usize,
    pub(crate) routed_subscriptions: usize,
    /// Stopped early by SIGINT or SIGTERM.
    pub(crate) interrupted: bool,
    pub(crate) publish_seconds: f64,
    pub(crate) wall_seconds: f64,
    pub(crate) published_total: u64,
    pub(crate) publish_throughput_per_second: f64,
    pub(crate) published_by_class: Vec<ClassRow>,
    pub(crate) receivers: Vec<ReceiverRow>,
    pub(crate) delivered_total: u64,
    /// Reported by `drain_lagged`: budget evictions, overflow, rejections.
    pub(crate) evicted_or_rejected_total: u64,
    /// For every receiver: expected - delivered - reported lag (must be 0).
    pub(crate) lost_without_record: u64,
    /// For every receiver: delivered + reported lag - expected (must be 0).
    pub(crate) unexpected_deliveries: u64,
    /// LLM tokens whose (batched) publish gave up waiting for the lossless
    /// consumer (not published, so not expected anywhere).
    pub(crate) backpressure_timeouts: u64,
    pub(crate) latency_us: Latency,
    pub(crate) flooded_route: Fairness,
    pub(crate) late_joiner: LateJoiner,
    /// Peak resident set (VmHWM), KiB; `null` where unknown.
    pub(crate) peak_rss_kib: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ClassRow {
    pub(crate) class: &'static str,
    pub(crate) published: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReceiverRow {
    pub(crate) group: &'static str,
    pub(crate) receivers: usize,
    pub(crate) expected: u64,
    pub(crate) delivered: u64,
    pub(crate) evicted_or_rejected: u64,
    pub(crate) lost_without_record: u64,
}

/// Publish-to-receive latency, microseconds.
#[derive(Debug, Serialize)]
pub(crate) struct Latency {
    pub(crate) samples: u64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct PrincipalShare {
    pub(crate) principal: String,
    pub(crate) published: u64,
    pub(crate) delivered: u64,
    /// Share of the route's deliveries.
    pub(crate) delivered_share: f64,
}

/// The flooded route: normal principals sharing it with a runaway.
#[derive(Debug, Serialize)]
pub(crate) struct Fairness {
    pub(crate) normal: Vec<PrincipalShare>,
    pub(crate) runaway: Option<PrincipalShare>,
    /// Jain's index over the normal principals' delivery ratios
    /// (delivered / published): 1 is perfectly fair, 1/n is one principal
    /// taking everything. `null` with no normal principal.
    pub(crate) jain_index: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct LateJoiner {
    pub(crate) joined: bool,
    /// Got the retained `registry.v1.active_model_changed` first.
    pub(crate) got_retained_active_model: bool,
}

/// Jain's fairness index of `xs`; `None` if empty or all zero.
pub(crate) fn jain(xs: &[f64]) -> Option<f64> {
    let sum: f64 = xs.iter().sum();
    let squares: f64 = xs.iter().map(|x| x * x).sum();
    (!xs.is_empty() && squares > 0.0).then(|| sum * sum / (xs.len() as f64 * squares))
}

/// Peak resident set size in KiB, from `/proc/self/status` (Linux only).
pub(crate) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Report {
    pub(crate) fn from_outcome(o: &Outcome) -> Self {
        let receivers: Vec<ReceiverRow> = o
            .groups
            .iter()
            .map(|g| ReceiverRow {
                group: g.group.name(),
                receivers: g.receivers,
                expected: g.expected,
                delivered: g.received,
                evicted_or_rejected: g.lagged,
                lost_without_record: g.lost,
            })
            .collect();
        let f = &o.flood;
        let route_total: u64 = f.delivered.iter().sum();
        let share = |i: usize| PrincipalShare {
            principal: f.principals[i].clone(),
            published: f.published[i],
            delivered: f.delivered[i],
            delivered_share: if route_total > 0 {
                f.delivered[i] as f64 / route_total as f64
            } else {
                0.0
            },
        };
        let normal: Vec<PrincipalShare> = (0..f.principals.len())
            .filter(|&i| f.principals[i] != RUNAWAY)
            .map(share)
            .collect();
        let runaway = f.principals.iter().position(|p| p == RUNAWAY).map(share);
        let ratios: Vec<f64> = normal
            .iter()
            .map(|s| s.delivered as f64 / s.published.max(1) as f64)
            .collect();
        let h = &o.latency;
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Report {
            seconds: o.config.seconds,
            capsules: o.config.capsules,
            principals: o.config.principals,
            routed_subscriptions: o.routes,
            interrupted: o.interrupted,
            publish_seconds: o.publish_seconds,
            wall_seconds: o.wall_seconds,
            published_total: o.published,
            publish_throughput_per_second: o.published as f64 / o.publish_seconds.max(1e-9),
            published_by_class: o
                .by_class
                .iter()
                .map(|(c, n)| ClassRow {
                    class: c.name(),
                    published: *n,
                })
                .collect(),
            delivered_total: receivers.iter().map(|r| r.delivered).sum(),
            evicted_or_rejected_total: receivers.iter().map(|r| r.evicted_or_rejected).sum(),
            lost_without_record: o.groups.iter().map(|g| g.lost).sum(),
            unexpected_deliveries: o.groups.iter().map(|g| g.unexpected).sum(),
            receivers,
            backpressure_timeouts: o.backpressure_timeouts,
            latency_us: Latency {
                samples: h.len(),
                p50: us(0.5),
                p99: us(0.99),
                p999: us(0.999),
                max: h.max() as f64 / 1000.0,
            },
            flooded_route: Fairness {
                jain_index: jain(&ratios),
                normal,
                runaway,
            },
            late_joiner: LateJoiner {
                joined: o.late_joiner_joined,
                got_retained_active_model: o.late_joiner_got_retained,
            },
            peak_rss_kib: peak_rss_kib(),
        }
    }

    /// The report as tables for a terminal.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let mut classes = Table::new();
        classes
            .load_preset(UTF8_FULL_CONDENSED)
            .set_header(vec!["class", "published"]);
        for c in &self.published_by_class {
            classes.add_row(vec![c.class.to_owned(), c.published.to_string()]);
        }
        classes.add_row(vec!["total".to_owned(), self.published_total.to_string()]);

        let mut rx = Table::new();
        rx.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "receivers",
            "n",
            "expected",
            "delivered",
            "evicted/rejected",
            "lost without record",
        ]);
        for r in &self.receivers {
            rx.add_row(vec![
                r.group.to_owned(),
                r.receivers.to_string(),
                r.expected.to_string(),
                r.delivered.to_string(),
                r.evicted_or_rejected.to_string(),
                r.lost_without_record.to_string(),
            ]);
        }
        rx.add_row(vec![
            "total".to_owned(),
            String::new(),
            self.receivers
                .iter()
                .map(|r| r.expected)
                .sum::<u64>()
                .to_string(),
            self.delivered_total.to_string(),
            self.evicted_or_rejected_total.to_string(),
            self.lost_without_record.to_string(),
        ]);

        let mut flood = Table::new();
        flood.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "flooded route principal",
            "published",
            "delivered",
            "share of deliveries",
        ]);
        for s in self
            .flooded_route
            .normal
            .iter()
            .chain(&self.flooded_route.runaway)
        {
            flood.add_row(vec![
                s.principal.clone(),
                s.published.to_string(),
                s.delivered.to_string(),
                format!("{:.1}%", s.delivered_share * 100.0),
            ]);
        }

        let l = &self.latency_us;
        let summary = [
            format!(
                "{} s{} on {} capsules, {} principals, {} routed subscriptions",
                format_args!("{:.1}", self.publish_seconds),
                if self.interrupted {
                    " (interrupted)"
                } else {
                    ""
                },
                self.capsules,
                self.principals,
                self.routed_subscriptions
            ),
            format!(
                "publish throughput: {:.0} events/s ({} events)",
                self.publish_throughput_per_second, self.published_total
            ),
            format!(
                "latency publish->receive: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us ({} samples)",
                l.p50, l.p99, l.p999, l.max, l.samples
            ),
            format!(
                "Jain's fairness index (normal principals on the flooded route): {}",
                self.flooded_route
                    .jain_index
                    .map_or("n/a".to_owned(), |j| format!("{j:.4}"))
            ),
            format!(
                "late joiner got retained {}: {}",
                crate::demo::ACTIVE_MODEL_TOPIC,
                if self.late_joiner.got_retained_active_model {
                    "yes"
                } else {
                    "no"
                }
            ),
            format!("llm backpressure timeouts: {}", self.backpressure_timeouts),
            format!(
                "peak RSS: {}",
                self.peak_rss_kib.map_or("n/a".to_owned(), |k| format!(
                    "{:.1} MiB",
                    k as f64 / 1024.0
                ))
            ),
            format!(
                "lost without record: {}   unexpected deliveries: {}",
                self.lost_without_record, self.unexpected_deliveries
            ),
        ];
        out.push_str(&classes.to_string());
        out.push('\n');
        out.push_str(&rx.to_string());
        out.push('\n');
        out.push_str(&flood.to_string());
        out.push('\n');
        out.push_str(&summary.join("\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::jain;

    #[test]
    fn jain_index_bounds() {
        assert_eq!(jain(&[]), None);
        assert_eq!(jain(&[0.0, 0.0]), None);
        assert!((jain(&[1.0, 1.0, 1.0]).unwrap_or(0.0) - 1.0).abs() < 1e-12);
        assert!((jain(&[1.0, 0.0, 0.0, 0.0]).unwrap_or(0.0) - 0.25).abs() < 1e-12);
    }
}
