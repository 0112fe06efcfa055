//! Security warnings of the bridge, logged under the library's target
//! (`astrid_events::security`) so one filter shows both.
//!
//! Whoever may publish on the bridge's subjects can send rejected messages
//! at any rate, so these warnings are rate limited: at most one per
//! [`WARN_EVERY`] in the process, each saying how many it stands for. The
//! exact counts are in [`BridgeStats`](crate::BridgeStats) and the metric.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The library's target for security events.
const SECURITY_TARGET: &str = "astrid_events::security";

/// Least time between two warnings.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// Rejections not yet reported in a warning.
static UNREPORTED: AtomicU64 = AtomicU64::new(0);
/// When the last warning was logged: nanoseconds after [`epoch`], plus one
/// (0: never).
static LAST_WARNED: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// An import on `subject` was rejected by the signature policy (unsigned
/// where signatures are required, tampered, or signed by an untrusted key).
pub(crate) fn signature_rejected(subject: &str) {
    UNREPORTED.fetch_add(1, Ordering::Relaxed);
    let now = u64::try_from(epoch().elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let last = LAST_WARNED.load(Ordering::Relaxed);
    let due = last == 0
        || now.saturating_sub(last) >= u64::try_from(WARN_EVERY.as_nanos()).unwrap_or(u64::MAX);
    // One caller wins the slot; the others stay counted for the next one.
    if !due
        || LAST_WARNED
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let rejected = UNREPORTED.swap(0, Ordering::Relaxed);
    tracing::warn!(
        target: SECURITY_TARGET,
        subject = ?subject,
        rejected,
        "astrid-events-nats: imports rejected by the signature policy \
         (unsigned, tampered or untrusted); `rejected` counts them since the last such warning"
    );
}
