//! The clock the benches time their measured regions with.
//!
//! Wall time by default. With `ASTRID_BENCH_CLOCK=cpu`, the CPU time of the
//! benchmarking thread instead: every bench here is single-threaded, so on a
//! shared machine (other processes competing for the cores) CPU time leaves
//! out the time the thread sat preempted, which wall time counts as if the
//! bus had spent it. Criterion is unaware of the difference; it only sees
//! the durations `iter_custom` returns.

use std::time::{Duration, Instant};

use cpu_time::ThreadTime;

/// Which clock to time with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// `std::time::Instant`.
    Wall,
    /// The calling thread's CPU time.
    ThreadCpu,
}

impl Clock {
    /// From `ASTRID_BENCH_CLOCK` (`cpu` or `wall`; wall if unset).
    pub fn from_env() -> Self {
        match std::env::var("ASTRID_BENCH_CLOCK").as_deref() {
            Ok("cpu") => Self::ThreadCpu,
            _ => Self::Wall,
        }
    }

    /// How long `f` took on this clock.
    pub fn time<R>(self, f: impl FnOnce() -> R) -> (R, Duration) {
        match self {
            Self::Wall => {
                let start = Instant::now();
                let r = f();
                (r, start.elapsed())
            }
            Self::ThreadCpu => {
                let start = ThreadTime::now();
                let r = f();
                (r, start.elapsed())
            }
        }
    }
}
