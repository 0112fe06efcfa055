//! What a run measured, as the report and the plot read it.

use hdrhistogram::Histogram;

use super::classes::{Class, Group};
use super::config::DemoConfig;

/// Per-principal deliveries on the flooded route.
#[derive(Debug, Clone)]
pub(crate) struct FloodOutcome {
    /// Normal principals, then the runaway last.
    pub(crate) principals: Vec<String>,
    pub(crate) published: Vec<u64>,
    pub(crate) delivered: Vec<u64>,
    /// `(seconds since start, cumulative deliveries per principal)`.
    pub(crate) samples: Vec<(f64, Vec<u64>)>,
}

/// Delivery accounting of one receiver group.
#[derive(Debug, Clone)]
pub(crate) struct GroupOutcome {
    pub(crate) group: Group,
    pub(crate) receivers: usize,
    pub(crate) expected: u64,
    pub(crate) received: u64,
    pub(crate) lagged: u64,
    /// Sum over receivers of `max(0, expected - received - lagged)`.
    pub(crate) lost: u64,
    /// Sum over receivers of `max(0, received + lagged - expected)`.
    pub(crate) unexpected: u64,
}

/// Everything a run measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) config: DemoConfig,
    pub(crate) interrupted: bool,
    pub(crate) publish_seconds: f64,
    pub(crate) wall_seconds: f64,
    pub(crate) routes: usize,
    pub(crate) published: u64,
    pub(crate) by_class: Vec<(Class, u64)>,
    pub(crate) groups: Vec<GroupOutcome>,
    pub(crate) backpressure_timeouts: u64,
    pub(crate) latency: Histogram<u64>,
    /// `(seconds since start, events published per second)`.
    pub(crate) throughput: Vec<(f64, f64)>,
    pub(crate) flood: FloodOutcome,
    pub(crate) late_joiner_joined: bool,
    pub(crate) late_joiner_got_retained: bool,
}
