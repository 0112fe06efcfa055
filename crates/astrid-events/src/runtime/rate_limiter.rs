//! Per-(capsule, principal) IPC throughput limiting.
//!
//! # What this module owns
//! [`IpcRateLimiter`] decides whether a capsule acting for a principal may
//! publish an IPC payload of a given size right now. The caller (the bus's
//! publish path) passes the principal's throughput quota on every call, as in
//! 0.8.0, so a profile change takes effect on the next publish without
//! rebuilding the limiter.
//!
//! # Data flow
//! `check_quota` → hard payload cap → quota sanity (zero rate, payload larger
//! than one burst) → hash `(capsule, principal)` once → pick one of 64
//! mutex-protected shards by that hash → look the key up in
//! the shard's table → GCRA test-and-update of the key's single `u64` of state
//! → maybe sweep idle keys of that shard.
//!
//! # Algorithm: byte-weighted GCRA
//! Each key stores one number, its *theoretical arrival time* (TAT), in
//! nanoseconds since the limiter was created. A payload of `n` bytes at rate
//! `r` bytes/s costs `ceil(n · 10⁹ / r)` ns. It is admitted at time `now` iff
//! `max(TAT, now) + cost − now ≤ τ`, and then `TAT := max(TAT, now) + cost`.
//! The tolerance `τ` is [`BURST_WINDOW`] (1 s), i.e. the **burst is one
//! second's worth of the configured rate**: an idle key may send `r` bytes at
//! once, then drains at `r` bytes/s.
//!
//! **Invariant (enforced in `IpcRateLimiter::check_quota_at`):** over any
//! closed time interval of length `L`, the bytes admitted for one key are at
//! most `r · (L + τ)`; for any 1-second interval that is at most
//! `rate + burst = 2 · rate`. Costs are rounded *up*, so rounding never admits
//! extra bytes. Unlike 0.8.0's fixed 1 s window, which admits `2 · rate` within
//! an arbitrarily short span straddling a window edge, a short span here admits
//! at most `r · (L + τ)` → `rate` as `L → 0`.
//!
//! Why one second's worth: any single payload up to `rate` bytes is admissible
//! from idle, exactly as in 0.8.0 (a smaller burst would make such payloads
//! unsendable), and `τ` becomes rate-independent, so the stored TAT needs no
//! rescaling when a principal's quota changes between calls: outstanding debt
//! is a *time* and drains at wall-clock speed whatever the new rate.
//!
//! # Edge cases (decided here)
//! - `size_bytes > MAX_IPC_PAYLOAD_BYTES` → [`QuotaError::PayloadTooLarge`]
//!   with `max = MAX_IPC_PAYLOAD_BYTES`, whatever the rate.
//! - Rate `0` → fail closed: [`QuotaError::RateLimited`] with
//!   `retry_after = Duration::MAX` ("never under this quota"), for every size,
//!   including zero. Treating 0 as "unlimited" would turn a mis-parsed profile
//!   into a bypass.
//! - `size_bytes > rate` → [`QuotaError::PayloadTooLarge`] with `max = rate`:
//!   such a payload exceeds one burst and could never be admitted, so retrying
//!   is pointless (0.8.0 reported this as "rate limited" forever).
//! - `size_bytes == 0` with a non-zero rate is free and touches no state, as in
//!   0.8.0 (it costs no bytes); message-count flooding is the bus's concern.
//! - Huge sizes and rates: all arithmetic is `u128`/saturating; nothing panics.
//!
//! # Memory: pruning policy
//! A key whose `TAT ≤ now` behaves exactly like a key that was never seen, so
//! dropping it is invisible. Each shard sweeps such keys when, after an
//! insertion, its length exceeds a high-water mark; the mark is then reset to
//! `max(MIN_SWEEP_LEN, 2 · survivors)` and the table's capacity is shrunk if it
//! is far above that. Between two sweeps a shard takes at least half as many
//! insertions as the next sweep scans entries, so sweeping is amortised O(1)
//! per check, and a shard never holds more than
//! `max(MIN_SWEEP_LEN, 2 · peak live keys) + 1` entries,
//! where a live key is one that was charged within the last `τ`.
//!
//! # Concurrency
//! All methods take `&self`. State is split over 64 shards, each
//! a `parking_lot::Mutex` around a `hashbrown::HashTable`, cache-line aligned
//! to avoid false sharing. A check holds exactly one shard lock for a table
//! probe and a few integer operations; lookups of existing keys allocate
//! nothing. Keys are hashed with a per-limiter random SipHash key
//! (`std::hash::RandomState`) because principals are attacker-influenced.
//!
//! # Why not `governor`
//! `governor`'s keyed limiter fixes one `Quota` per limiter, while this API
//! takes the rate on every call and rates differ per principal. Using it would
//! mean one direct limiter per key inside our own map (so we would still own
//! the map, the sharding and the pruning), rebuilding a key's limiter whenever
//! its rate changes, and clamping rates to governor's `NonZeroU32` cells per
//! period. The GCRA core is about fifteen lines, so a local implementation is
//! smaller than that adaptation and keeps the quota semantics in one place.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use parking_lot::Mutex;
use uuid::Uuid;

/// What the limiter keeps one budget for: a capsule instance and the
/// principal it acts for.
///
/// In 0.8.0 the principal half is `astrid_core::principal::PrincipalId`. It
/// is that again with the `upstream-types` feature; without it this crate
/// does not depend on `astrid-core` and the half is the principal's string
/// (`PrincipalId` converts with `to_string()`).
#[cfg(not(feature = "upstream-types"))]
pub type RateLimiterKey = (Uuid, String);
/// What the limiter keeps one budget for: a capsule instance and the
/// principal it acts for (0.8.0's type, `upstream-types` feature).
#[cfg(feature = "upstream-types")]
pub type RateLimiterKey = (Uuid, astrid_core::principal::PrincipalId);

/// Absolute upper bound on a single IPC payload, in bytes (5 MiB).
///
/// A denial-of-service guard, not a per-principal dial: it is checked before
/// the caller-supplied rate, so no profile, however generous, can raise it.
pub const MAX_IPC_PAYLOAD_BYTES: usize = 5 * 1024 * 1024;

/// The GCRA tolerance: how much of the rate an idle key may spend at once.
///
/// The burst is one second's worth of the configured rate. Over any 1-second
/// interval a key is admitted at most `rate + burst` (= twice the rate) bytes,
/// and over any interval of length `L` at most `rate · (L + BURST_WINDOW)`.
pub const BURST_WINDOW: Duration = Duration::from_secs(1);

const BURST_WINDOW_NANOS: u64 = 1_000_000_000;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Number of shards; a power of two so the shard index is a bit mask.
const SHARDS: usize = 64;
/// Shard index bits are taken from the middle of the hash: hashbrown uses the
/// low bits for the bucket index and the top 7 bits for its control tag.
const SHARD_SHIFT: u32 = 32;
/// A shard never sweeps below this many entries (keeps tiny shards cheap).
const MIN_SWEEP_LEN: usize = 64;

/// Why a publish was refused by [`IpcRateLimiter::check_quota`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotaError {
    /// The payload can never be admitted: it exceeds the hard cap
    /// ([`MAX_IPC_PAYLOAD_BYTES`]) or one burst of the principal's rate.
    PayloadTooLarge {
        /// Size of the refused payload, in bytes.
        size: usize,
        /// The largest payload that could be admitted, in bytes.
        max: usize,
    },
    /// The principal has spent its budget on this capsule; retrying the same
    /// payload after `retry_after` succeeds if nothing else is sent meanwhile.
    ///
    /// `retry_after == Duration::MAX` means "never": the quota is zero.
    RateLimited {
        /// How long until the same payload would be admitted.
        retry_after: Duration,
    },
}

impl fmt::Display for QuotaError {
    /// Each message starts with 0.8.0's text for the same refusal
    /// ("Payload too large", "Rate limit exceeded") so log searches and
    /// `to_string().contains(..)` checks written for 0.8.0 keep working.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadTooLarge { size, max } => write!(
                f,
                "Payload too large: {size} bytes exceeds the limit of {max} bytes; \
                 split it into smaller messages"
            ),
            Self::RateLimited { retry_after } if *retry_after == Duration::MAX => f.write_str(
                "Rate limit exceeded: the IPC throughput quota is zero for this principal; \
                 no retry will succeed until the quota is raised",
            ),
            Self::RateLimited { retry_after } => write!(
                f,
                "Rate limit exceeded: IPC throughput quota spent for this principal; \
                 retry after {retry_after:?}"
            ),
        }
    }
}

impl std::error::Error for QuotaError {}

/// 0.8.0's `check_quota` returned `Result<(), String>`; this keeps `?` working
/// in callers whose error type is still `String`.
impl From<QuotaError> for String {
    fn from(error: QuotaError) -> Self {
        error.to_string()
    }
}

/// One tracked key and its GCRA state.
struct Slot {
    /// Cached hash of `(capsule, principal)`, so resizes never rehash strings.
    hash: u64,
    capsule: Uuid,
    principal: Box<str>,
    /// Theoretical arrival time, ns since the limiter's epoch.
    tat: u64,
}

struct ShardState {
    table: HashTable<Slot>,
    /// Sweep idle keys once `table.len()` exceeds this.
    sweep_at: usize,
}

impl ShardState {
    /// Drops every key whose state equals a fresh key's (`tat <= now`).
    fn sweep(&mut self, now: u64) {
        self.table.retain(|slot| slot.tat > now);
        let live = self.table.len();
        self.sweep_at = MIN_SWEEP_LEN.max(live.saturating_mul(2));
        if self.table.capacity() > self.sweep_at.saturating_mul(2) {
            self.table.shrink_to(self.sweep_at, |slot| slot.hash);
        }
    }
}

/// Cache-line aligned so two hot shards never share a line.
#[repr(align(128))]
struct Shard(Mutex<ShardState>);

/// Throughput limiter for IPC publishes, keyed by `(capsule, principal)`.
///
/// Alice flooding from capsule `X` does not consume Bob's budget on `X`, nor
/// her own budget on capsule `Y`. See the [module docs](self) for the
/// algorithm (GCRA, burst = one second of rate), edge cases and memory policy.
///
/// # Example
/// ```
/// use astrid_events::IpcRateLimiter;
/// use astrid_events::rate_limiter::{MAX_IPC_PAYLOAD_BYTES, QuotaError};
/// use uuid::Uuid;
///
/// let limiter = IpcRateLimiter::new();
/// let capsule = Uuid::new_v4();
///
/// // An idle principal may send up to one second's worth of its rate at once.
/// assert!(limiter.check_quota(capsule, "alice", 64 * 1024, 64 * 1024).is_ok());
/// // Bob's budget on the same capsule is his own.
/// assert!(limiter.check_quota(capsule, "bob", 64 * 1024, 64 * 1024).is_ok());
///
/// // The 5 MiB hard cap holds whatever the configured rate.
/// assert_eq!(
///     limiter.check_quota(capsule, "alice", MAX_IPC_PAYLOAD_BYTES + 1, usize::MAX),
///     Err(QuotaError::PayloadTooLarge { size: MAX_IPC_PAYLOAD_BYTES + 1, max: MAX_IPC_PAYLOAD_BYTES }),
/// );
/// // A zero quota admits nothing.
/// assert!(matches!(
///     limiter.check_quota(capsule, "carol", 1, 0),
///     Err(QuotaError::RateLimited { .. })
/// ));
/// ```
pub struct IpcRateLimiter {
    shards: Box<[Shard]>,
    hasher: RandomState,
    epoch: Instant,
}

impl IpcRateLimiter {
    /// Creates an empty limiter; its clock starts now.
    #[must_use]
    pub fn new() -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Shard(Mutex::new(ShardState {
                    table: HashTable::new(),
                    sweep_at: MIN_SWEEP_LEN,
                }))
            })
            .collect();
        Self {
            shards,
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// Checks whether `capsule_uuid`, acting for `principal`, may publish a
    /// payload of `size_bytes` under a throughput quota of
    /// `max_throughput_bytes_per_sec`, and charges the payload if so.
    ///
    /// `principal` is anything that reads as the principal's string: `&str`,
    /// `&String`, or the runtime's `&PrincipalId` (which is `AsRef<str>`), so
    /// 0.8.0's call `check_quota(capsule, &principal_id, size, max)` compiles
    /// unchanged.
    ///
    /// # Errors
    /// - [`QuotaError::PayloadTooLarge`] if `size_bytes` exceeds
    ///   [`MAX_IPC_PAYLOAD_BYTES`] or `max_throughput_bytes_per_sec` (one
    ///   burst); retrying cannot help.
    /// - [`QuotaError::RateLimited`] if the key's budget is spent; nothing is
    ///   charged. A zero quota always yields `retry_after == Duration::MAX`.
    pub fn check_quota<P: AsRef<str> + ?Sized>(
        &self,
        capsule_uuid: Uuid,
        principal: &P,
        size_bytes: usize,
        max_throughput_bytes_per_sec: usize,
    ) -> Result<(), QuotaError> {
        self.check_quota_at(
            self.epoch.elapsed(),
            capsule_uuid,
            principal.as_ref(),
            size_bytes,
            max_throughput_bytes_per_sec,
        )
    }

    /// [`check_quota`](Self::check_quota) at an explicit instant, given as the
    /// time elapsed since this limiter was created. Test and bench hook: the
    /// caller must pass non-decreasing instants for the guarantees to hold
    /// (an older instant is handled conservatively, never admitting extra).
    ///
    /// # Errors
    /// As [`check_quota`](Self::check_quota).
    #[doc(hidden)]
    pub fn check_quota_at(
        &self,
        now: Duration,
        capsule_uuid: Uuid,
        principal: &str,
        size_bytes: usize,
        max_throughput_bytes_per_sec: usize,
    ) -> Result<(), QuotaError> {
        let rate = max_throughput_bytes_per_sec;
        if size_bytes > MAX_IPC_PAYLOAD_BYTES {
            return Err(QuotaError::PayloadTooLarge {
                size: size_bytes,
                max: MAX_IPC_PAYLOAD_BYTES,
            });
        }
        if rate == 0 {
            return Err(QuotaError::RateLimited {
                retry_after: Duration::MAX,
            });
        }
        if size_bytes > rate {
            return Err(QuotaError::PayloadTooLarge {
                size: size_bytes,
                max: rate,
            });
        }
        if size_bytes == 0 {
            return Ok(());
        }
        let cost = cost_nanos(size_bytes, rate);
        let now = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let hash = self.hasher.hash_one((capsule_uuid, principal));

        let mut shard = self.shard(hash).0.lock();
        let found = shard.table.find_mut(hash, |s| {
            s.capsule == capsule_uuid && *s.principal == *principal
        });
        if let Some(slot) = found {
            let new_tat = slot.tat.max(now).saturating_add(cost);
            let ahead = new_tat - now;
            if ahead > BURST_WINDOW_NANOS {
                return Err(QuotaError::RateLimited {
                    retry_after: Duration::from_nanos(ahead - BURST_WINDOW_NANOS),
                });
            }
            slot.tat = new_tat;
            return Ok(());
        }
        // A fresh key is always admitted: `cost <= BURST_WINDOW_NANOS` because
        // `size_bytes <= rate`.
        shard.table.insert_unique(
            hash,
            Slot {
                hash,
                capsule: capsule_uuid,
                principal: principal.into(),
                tat: now.saturating_add(cost),
            },
            |s| s.hash,
        );
        if shard.table.len() > shard.sweep_at {
            shard.sweep(now);
        }
        Ok(())
    }

    /// Number of keys currently held in memory, idle or not. Test hook for
    /// the memory bound; locks every shard in turn.
    #[doc(hidden)]
    #[must_use]
    pub fn tracked_keys(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().table.len()).sum()
    }

    fn shard(&self, hash: u64) -> &Shard {
        // Truncation is intended: only the masked bits are used.
        let index = (hash >> SHARD_SHIFT) as usize & (SHARDS - 1);
        &self.shards[index]
    }
}

/// `ceil(size · 10⁹ / rate)` ns, computed in `u128` so it cannot overflow.
/// Callers guarantee `0 < size <= rate`, so the result is in `1..=10⁹`.
fn cost_nanos(size: usize, rate: usize) -> u64 {
    let size = size as u128;
    let rate = rate as u128;
    let cost = (size * NANOS_PER_SEC).div_ceil(rate);
    u64::try_from(cost).unwrap_or(u64::MAX)
}

impl Default for IpcRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for IpcRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpcRateLimiter")
            .field("shards", &self.shards.len())
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fresh_key_may_send_one_full_burst_then_nothing_more() {
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        assert_eq!(rl.check_quota_at(ms(0), cap, "alice", MIB, MIB), Ok(()));
        assert_eq!(
            rl.check_quota_at(ms(0), cap, "alice", 1, MIB),
            Err(QuotaError::RateLimited {
                retry_after: Duration::from_nanos(cost_nanos(1, MIB))
            })
        );
    }

    #[test]
    fn budget_drains_at_the_configured_rate() {
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        rl.check_quota_at(ms(0), cap, "a", 1000, 1000).unwrap();
        // 1000 B/s: after 250 ms exactly 250 bytes fit, 251 do not.
        assert!(rl.check_quota_at(ms(250), cap, "a", 251, 1000).is_err());
        assert_eq!(rl.check_quota_at(ms(250), cap, "a", 250, 1000), Ok(()));
        assert!(rl.check_quota_at(ms(250), cap, "a", 1, 1000).is_err());
    }

    #[test]
    fn retry_after_is_exact() {
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        rl.check_quota_at(ms(0), cap, "a", 1000, 1000).unwrap();
        let Err(QuotaError::RateLimited { retry_after }) =
            rl.check_quota_at(ms(100), cap, "a", 500, 1000)
        else {
            panic!("expected RateLimited");
        };
        assert_eq!(retry_after, ms(400));
        // One nanosecond early is still refused; on time is admitted.
        let at = ms(100) + retry_after;
        assert!(
            rl.check_quota_at(at - Duration::from_nanos(1), cap, "a", 500, 1000)
                .is_err()
        );
        assert_eq!(rl.check_quota_at(at, cap, "a", 500, 1000), Ok(()));
    }

    #[test]
    fn rejected_check_charges_nothing() {
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        rl.check_quota_at(ms(0), cap, "a", 1000, 1000).unwrap();
        for _ in 0..100 {
            assert!(rl.check_quota_at(ms(500), cap, "a", 501, 1000).is_err());
        }
        assert_eq!(rl.check_quota_at(ms(500), cap, "a", 500, 1000), Ok(()));
    }

    #[test]
    fn fixed_window_edge_exploit_is_closed() {
        // 0.8.0: a full window at t=0.999 s and another at t=1.0 s both pass.
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        rl.check_quota_at(ms(0), cap, "a", 1, 1000).unwrap();
        rl.check_quota_at(ms(999), cap, "a", 999, 1000).unwrap();
        assert!(matches!(
            rl.check_quota_at(ms(1000), cap, "a", 1000, 1000),
            Err(QuotaError::RateLimited { .. })
        ));
    }

    #[test]
    fn principals_on_one_capsule_are_independent() {
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        rl.check_quota_at(ms(0), cap, "alice", MIB, MIB).unwrap();
        assert!(rl.check_quota_at(ms(0), cap, "alice", 1, MIB).is_err());
        assert_eq!(rl.check_quota_at(ms(0), cap, "bob", MIB, MIB), Ok(()));
    }

    #[test]
    fn capsules_for_one_principal_are_independent() {
        let rl = IpcRateLimiter::new();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        rl.check_quota_at(ms(0), a, "alice", MIB, MIB).unwrap();
        assert!(rl.check_quota_at(ms(0), a, "alice", 1, MIB).is_err());
        assert_eq!(rl.check_quota_at(ms(0), b, "alice", MIB, MIB), Ok(()));
    }

    #[test]
    fn oversize_payload_rejected_regardless_of_rate_or_history() {
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        for rate in [1, KIB, MAX_IPC_PAYLOAD_BYTES, usize::MAX] {
            assert_eq!(
                rl.check_quota_at(ms(0), cap, "a", MAX_IPC_PAYLOAD_BYTES + 1, rate),
                Err(QuotaError::PayloadTooLarge {
                    size: MAX_IPC_PAYLOAD_BYTES + 1,
                    max: MAX_IPC_PAYLOAD_BYTES
                })
            );
        }
        // Exactly at the cap is fine with a large enough rate.
        assert_eq!(
            rl.check_quota_at(ms(0), cap, "a", MAX_IPC_PAYLOAD_BYTES, usize::MAX),
            Ok(())
        );
        // Oversize rejections charged nothing: no other key was created.
        assert_eq!(rl.tracked_keys(), 1);
    }

    #[test]
    fn payload_larger_than_one_burst_is_too_large_not_rate_limited() {
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        assert_eq!(
            rl.check_quota_at(ms(0), cap, "a", 1001, 1000),
            Err(QuotaError::PayloadTooLarge {
                size: 1001,
                max: 1000
            })
        );
        assert_eq!(rl.tracked_keys(), 0);
    }

    #[test]
    fn zero_rate_rejects_everything_forever() {
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        for size in [0, 1, KIB] {
            for t in [0, 1_000, 1_000_000] {
                assert_eq!(
                    rl.check_quota_at(ms(t), cap, "a", size, 0),
                    Err(QuotaError::RateLimited {
                        retry_after: Duration::MAX
                    })
                );
            }
        }
        assert_eq!(rl.tracked_keys(), 0);
    }

    #[test]
    fn empty_payload_is_free_with_a_nonzero_rate() {
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        rl.check_quota_at(ms(0), cap, "a", 1000, 1000).unwrap();
        assert_eq!(rl.check_quota_at(ms(0), cap, "a", 0, 1000), Ok(()));
    }

    #[test]
    fn rate_change_keeps_outstanding_debt_as_time() {
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        // Spend a full second at 1000 B/s...
        rl.check_quota_at(ms(0), cap, "a", 1000, 1000).unwrap();
        // ...raising the quota tenfold does not erase the debt at once...
        assert!(rl.check_quota_at(ms(0), cap, "a", 1, 10_000).is_err());
        // ...but it drains at wall-clock speed: after 0.5 s, half a second of
        // the new rate fits.
        assert_eq!(rl.check_quota_at(ms(500), cap, "a", 5000, 10_000), Ok(()));
    }

    #[test]
    fn error_messages_are_actionable() {
        let too_large = QuotaError::PayloadTooLarge { size: 10, max: 5 };
        assert_eq!(
            too_large.to_string(),
            "Payload too large: 10 bytes exceeds the limit of 5 bytes; split it into smaller messages"
        );
        let limited = QuotaError::RateLimited {
            retry_after: ms(250),
        };
        assert!(limited.to_string().starts_with("Rate limit exceeded: "));
        assert!(limited.to_string().ends_with("retry after 250ms"));
        let never = QuotaError::RateLimited {
            retry_after: Duration::MAX,
        };
        assert!(never.to_string().starts_with("Rate limit exceeded: "));
        assert!(never.to_string().contains("quota is zero"));
        let _: &dyn std::error::Error = &never;
        assert_eq!(String::from(never), never.to_string());
    }

    /// Largest sum of admitted sizes over any closed window `[t, t + window]`.
    fn max_in_any_window(admitted: &[(u64, usize)], window: u64) -> usize {
        let mut best = 0;
        let mut sum = 0;
        let mut lo = 0;
        for hi in 0..admitted.len() {
            sum += admitted[hi].1;
            while admitted[hi].0 - admitted[lo].0 > window {
                sum -= admitted[lo].1;
                lo += 1;
            }
            best = best.max(sum);
        }
        best
    }

    #[test]
    fn window_helper_sees_edge_straddling_bursts() {
        // The helper itself must be able to fail: two sends 1 s apart count
        // together in a closed 1 s window, 1 s + 1 ns apart they do not.
        let a = [(0, 10), (1_000_000_000, 10)];
        assert_eq!(max_in_any_window(&a, 1_000_000_000), 20);
        let b = [(0, 10), (1_000_000_001, 10)];
        assert_eq!(max_in_any_window(&b, 1_000_000_000), 10);
    }

    /// Greedy sender: offers `size` every `step_ns` from t = 0 for `total_ns`
    /// and records what was admitted.
    fn greedy(rate: usize, size: usize, step_ns: u64, total_ns: u64) -> Vec<(u64, usize)> {
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        let mut admitted = Vec::new();
        let mut t = 0;
        while t <= total_ns {
            if rl
                .check_quota_at(Duration::from_nanos(t), cap, "p", size, rate)
                .is_ok()
            {
                admitted.push((t, size));
            }
            t += step_ns;
        }
        admitted
    }

    #[test]
    fn greedy_sender_at_window_edges_never_exceeds_rate_plus_burst() {
        // Sends land exactly on 1 s boundaries (step divides 1 s).
        let rate = 1000;
        let admitted = greedy(rate, 100, 50_000_000, 10_000_000_000);
        let one_sec = max_in_any_window(&admitted, BURST_WINDOW_NANOS);
        assert!(one_sec <= 2 * rate, "{one_sec} > rate + burst");
        // The limiter is not vacuous: the burst is actually granted...
        assert_eq!(one_sec, 2 * rate);
        // ...and the long-run average is the rate: 10 s ⇒ rate·(10 + 1).
        let total: usize = admitted.iter().map(|a| a.1).sum();
        assert_eq!(total, 11 * rate);
    }

    proptest! {
        #[test]
        fn any_schedule_respects_rate_plus_burst(
            rate in 1usize..=10 * MIB,
            ops in proptest::collection::vec((0u64..300_000_000, 0usize..=10 * MIB), 1..200),
        ) {
            let rl = IpcRateLimiter::new();
            let cap = Uuid::new_v4();
            let mut t = 0u64;
            let mut admitted = Vec::new();
            for (dt, size) in ops {
                t += dt;
                let size = size % (rate + 1);
                if size > 0
                    && rl.check_quota_at(Duration::from_nanos(t), cap, "p", size, rate).is_ok()
                {
                    admitted.push((t, size));
                }
            }
            let bound = u128::try_from(rate).unwrap() * 2;
            let worst = u128::try_from(max_in_any_window(&admitted, BURST_WINDOW_NANOS)).unwrap();
            prop_assert!(worst <= bound, "{} > {}", worst, bound);
            // Over the whole run: at most r·(T + τ).
            let total: u128 = admitted.iter().map(|a| a.1 as u128).sum();
            let span = admitted.last().map_or(0, |l| l.0) - admitted.first().map_or(0, |f| f.0);
            let limit = u128::try_from(rate).unwrap() * (u128::from(span) + 1_000_000_000);
            prop_assert!(total * 1_000_000_000 <= limit);
        }

        #[test]
        fn huge_inputs_never_panic(
            now in any::<u64>(),
            size in any::<usize>(),
            rate in any::<usize>(),
            size2 in any::<usize>(),
            rate2 in any::<usize>(),
        ) {
            let rl = IpcRateLimiter::new();
            let cap = Uuid::nil();
            let _ = rl.check_quota_at(Duration::from_nanos(now), cap, "p", size, rate);
            let _ = rl.check_quota_at(Duration::MAX, cap, "p", size2, rate2);
            let _ = rl.check_quota_at(Duration::from_nanos(now), cap, "p", size2, rate2);
            let res = rl.check_quota_at(Duration::from_nanos(now), cap, "q", size, rate);
            if size > MAX_IPC_PAYLOAD_BYTES {
                let is_too_large = matches!(res, Err(QuotaError::PayloadTooLarge { .. }));
                prop_assert!(is_too_large);
            }
        }
    }

    #[test]
    fn a_million_one_shot_principals_keep_the_map_bounded() {
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        let mut peak = 0;
        // One check per principal, 1 ms apart, each charging half a second:
        // about 500 keys are live (TAT in the future) at any moment.
        for i in 0..1_000_000u64 {
            let name = format!("principal-{i}");
            rl.check_quota_at(ms(i), cap, &name, 500, 1000).unwrap();
            if i % 10_000 == 0 {
                peak = peak.max(rl.tracked_keys());
            }
        }
        peak = peak.max(rl.tracked_keys());
        // Bound: per shard max(MIN_SWEEP_LEN, 2·live) + 1; live ≈ 500 total.
        let bound = SHARDS * (MIN_SWEEP_LEN + 1) + 2 * 501;
        assert!(peak <= bound, "peak {peak} > {bound}");
    }

    #[test]
    fn sweeping_drops_idle_keys_but_never_a_key_in_debt() {
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        let fast = 1_000_000_000; // 1 byte costs 1 ns
        rl.check_quota_at(ms(0), cap, "victim", 1000, 1000).unwrap();
        // Phase 1 at t = 1 ms: 100k keys, all live at that instant, so no
        // sweep may drop them.
        for i in 0..100_000 {
            rl.check_quota_at(ms(1), cap, &format!("k{i}"), 1, fast)
                .unwrap();
        }
        assert_eq!(rl.tracked_keys(), 100_001);
        // Phase 2 at t = 2 ms: phase-1 keys are idle, the victim is still in
        // debt (until t = 1 s). Enough new keys to push every shard past its
        // high-water mark, so every shard sweeps.
        for i in 0..300_000 {
            rl.check_quota_at(ms(2), cap, &format!("n{i}"), 1, fast)
                .unwrap();
        }
        // 2 ms have drained 2 bytes of the victim's full second of debt, so
        // 10 bytes must still be refused; a forgotten key would admit them.
        assert!(rl.check_quota_at(ms(2), cap, "victim", 10, 1000).is_err());
        let tracked = rl.tracked_keys();
        assert!(tracked <= 300_001, "{tracked}: idle phase-1 keys not swept");
    }

    #[test]
    fn concurrent_checks_admit_exactly_one_burst() {
        let rl = IpcRateLimiter::new();
        let cap = Uuid::new_v4();
        let admitted = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if rl.check_quota_at(ms(0), cap, "shared", 10, 1000).is_ok() {
                            admitted.fetch_add(10, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 1000);
    }
}
