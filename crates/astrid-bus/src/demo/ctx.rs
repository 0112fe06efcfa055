//! State shared by every task of a run: the clock and deadline, the stop
//! flags, publish counters and the latency histogram.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use astrid_events::monitor::MonitorRecorder;
use astrid_events::{AstridEvent, IpcPayload};
use hdrhistogram::Histogram;

use super::classes::Class;

/// Sampling period of the throughput series and the flood shares.
pub(super) const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Ends a run's publishing early, as a stop signal does (without marking
/// the run interrupted); the run then shuts down and accounts as usual.
#[derive(Debug, Clone, Default)]
pub(crate) struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Asks the run to stop publishing.
    pub(crate) fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub(super) fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// State shared by every task of a run.
pub(super) struct Ctx {
    pub(super) start: Instant,
    pub(super) deadline: Instant,
    /// Set by a stop signal (SIGINT or SIGTERM) or a [`StopHandle`].
    pub(super) stop: StopHandle,
    /// Set by a stop signal: the report says the run was interrupted.
    pub(super) interrupted: AtomicBool,
    /// Set once every paced and streaming publisher has returned.
    pub(super) publishers_done: AtomicBool,
    /// Successful publishes, all classes.
    pub(super) published: AtomicU64,
    pub(super) by_class: [AtomicU64; Class::ALL.len()],
    /// LLM tokens not published: their burst timed out waiting for room.
    pub(super) backpressure_timeouts: AtomicU64,
    /// Publish-to-receive latency, nanoseconds.
    pub(super) latency: std::sync::Mutex<Histogram<u64>>,
    pub(super) recorder: Option<MonitorRecorder>,
}

impl Ctx {
    pub(super) fn publishing(&self) -> bool {
        !self.stop.is_stopped() && Instant::now() < self.deadline
    }

    pub(super) fn now_nanos(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(super) fn count(&self, class: Class) {
        self.count_many(class, 1);
    }

    /// Counts `n` successful publishes of `class`.
    pub(super) fn count_many(&self, class: Class, n: u64) {
        self.published.fetch_add(n, Ordering::Relaxed);
        let i = Class::ALL.iter().position(|c| *c == class).unwrap_or(0);
        self.by_class[i].fetch_add(n, Ordering::Relaxed);
    }
}

/// Latencies buffered by one consumer, flushed into the shared histogram in
/// batches.
pub(super) struct LatencyBuf {
    pub(super) ctx: Arc<Ctx>,
    pub(super) samples: Vec<u64>,
}

impl LatencyBuf {
    pub(super) fn new(ctx: &Arc<Ctx>) -> Self {
        Self {
            ctx: Arc::clone(ctx),
            samples: Vec::new(),
        }
    }

    pub(super) fn record(&mut self, event: &AstridEvent) {
        if let Some(sent) = sent_at(event) {
            let now = self.ctx.now_nanos();
            self.samples.push(now.saturating_sub(sent).max(1));
            if self.samples.len() >= 512 {
                self.flush();
            }
        }
    }

    pub(super) fn flush(&mut self) {
        if self.samples.is_empty() {
            return;
        }
        if let Ok(mut h) = self.ctx.latency.lock() {
            for s in self.samples.drain(..) {
                h.saturating_record(s);
            }
        }
    }
}

impl Drop for LatencyBuf {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The publish instant carried in a demo payload (`t`, nanoseconds since the
/// demo started).
pub(super) fn sent_at(event: &AstridEvent) -> Option<u64> {
    if let AstridEvent::Ipc { message, .. } = event
        && let IpcPayload::Custom { data } = &message.payload
    {
        return data.get("t")?.as_u64();
    }
    None
}
